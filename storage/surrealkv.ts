// What the embedded surrealkv engine (@surrealdb/node 3.0.3, SurrealDB 3.0.2, surrealkv 0.20.2) needs
// around it so that committed writes survive a graceful stop (measured in storage/durability.test.ts):
//
// - surrealkv writes each commit to its WAL, then to the memtable; a memtable rotation that falls between
//   the two leaves the commit in the new memtable while its WAL record is in the segment the rotation marks
//   flushed. Until that memtable is flushed (the next rotation, about 64 MB later, or the engine's shutdown)
//   the commit is only in memory: a process that ends first loses it, `sync=every` or not.
// - The SDK's close() only drops the engine: its shutdown (which flushes every memtable) runs afterwards on
//   the engine's threads. We wait for it by watching the directory's LOCK, which surrealkv holds (flock)
//   until the shutdown is done.
// - A DEFINE INDEX in a process pins the datastore until that process exits (fixed upstream in SurrealDB
//   3.1.3): close() then never shuts it down. So the schema is applied by a short-lived child process before
//   the store opens the directory; the store's own migrate() then finds every version applied and defines
//   nothing. The child exits without a flush: its few schema writes are replayed from the WAL.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The directory of a `surrealkv://` (or `surrealkv+versioned://`) URL, or undefined for any other engine. */
export function surrealkvDir(url: string): string | undefined {
  const m = /^surrealkv(\+versioned)?:\/\/([^?]+)/.exec(url);
  return m ? m[2] : undefined;
}

/** Whether this process still holds the flock on `dir/LOCK` (Linux /proc/locks; undefined where unknown). */
export function holdsLock(dir: string): boolean | undefined {
  const lock = `${dir}/LOCK`;
  if (!existsSync(lock) || !existsSync('/proc/locks')) return undefined;
  const ino = statSync(lock).ino;
  // e.g. "1: FLOCK  ADVISORY  WRITE 893 fe:00:2171308 0 EOF"
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === 'FLOCK' && f[4] === String(process.pid) && f[5]?.endsWith(`:${ino}`);
    });
}

/**
 * Waits until the engine has released `dir` (its shutdown, memtable flush included, is done).
 * Returns false if it still holds it after `timeoutMs`; true where the lock cannot be observed.
 */
export async function waitForRelease(dir: string, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (holdsLock(dir) !== true) return true;
    if (performance.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Applies the store's migrations to `namespace`/`database` at the surrealkv `url` in a child process of the same runtime. */
export async function migrateInChild(url: string, namespace: string, database: string): Promise<void> {
  const script = fileURLToPath(new URL('./surrealkv-migrate.ts', import.meta.url));
  const deno = 'Deno' in globalThis;
  const args = deno ? ['run', '--allow-all', script, url, namespace, database] : [...loaderArgs(), script, url, namespace, database];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', ok);
  });
  if (code !== 0) throw new Error(`surrealkv: applying the schema to ${url.replace(/\?.*/, '')} failed (exit ${code}): ${out.trim().slice(-500)}`);
}

/** The TypeScript loader this Node process runs with (`--import tsx`), for a child that runs a .ts file. */
function loaderArgs(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (/^--(import|loader|experimental-loader|require)$/.test(argv[i]) && i + 1 < argv.length) out.push(argv[i], argv[++i]);
    else if (/^--(import|loader|experimental-loader|require)=/.test(argv[i])) out.push(argv[i]);
  }
  return out.length ? out : ['--import', 'tsx'];
}
