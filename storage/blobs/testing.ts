// Test-only helpers: a local S3-protocol server (testing-s3-server.ts) in a child process on a
// free loopback port, with a freshly generated key pair, and the request lines it logged.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

export const TEST_DATA = resolve('.test-data');

export function tempDir(prefix: string): string {
  mkdirSync(TEST_DATA, { recursive: true });
  return mkdtempSync(join(TEST_DATA, `${prefix}-`));
}

export interface TestS3 {
  endpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** "METHOD /bucket/key?query STATUS", one per request the server answered. */
  requests: string[];
  stop(): Promise<void>;
}

export async function startTestS3(opts: { bucket?: string; region?: string } = {}): Promise<TestS3> {
  const dir = tempDir('s3');
  const cfg = {
    dir,
    bucket: opts.bucket ?? 'cc-blobs',
    region: opts.region ?? 'test-1',
    accessKey: `AK${randomBytes(9).toString('hex').toUpperCase()}`,
    secretKey: randomBytes(24).toString('base64url'),
  };
  const script = join(dirname(fileURLToPath(import.meta.url)), 'testing-s3-server.ts');
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const requests: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`test S3 server did not start in 20 s: ${stderr}`)), 20_000);
    child.once('exit', (c) => reject(new Error(`test S3 server exited (${c}): ${stderr}`)));
    lines.on('line', (line) => {
      if (line.startsWith('REQ ')) requests.push(line.slice(4));
      else if (line.startsWith('{')) {
        clearTimeout(timer);
        resolvePort((JSON.parse(line) as { port: number }).port);
      }
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: cfg.region,
    bucket: cfg.bucket,
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    requests,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

import type { Shelf } from './shelf.ts';

/**
 * A shelf that "dies" at its n-th operation (1-based): that call and every later one throw, as if
 * the process had crashed there. `ops()` counts the calls, to find every crash point of a run.
 */
export function crashingShelf(shelf: Shelf, dieAt = Infinity): Shelf & { ops(): number } {
  let n = 0;
  const step = () => {
    n++;
    if (n >= dieAt) throw new Error(`simulated crash at operation ${n}`);
  };
  return {
    kind: shelf.kind,
    location: shelf.location,
    ops: () => n,
    async write(p, b, o) {
      step();
      return shelf.write(p, b, o);
    },
    async read(p) {
      step();
      return shelf.read(p);
    },
    async stat(p) {
      step();
      return shelf.stat(p);
    },
    async copy(s, d, o) {
      step();
      return shelf.copy(s, d, o);
    },
    async remove(p) {
      step();
      return shelf.remove(p);
    },
    async *list(p) {
      step();
      for await (const e of shelf.list(p)) {
        step();
        yield e;
      }
    },
    async check() {
      return shelf.check();
    },
  };
}

/** A deterministic pseudo-random body of `size` bytes, made chunk by chunk (never held whole). */
export function generatedStream(size: number, seed = 1, chunk = 256 * 1024): ReadableStream<Uint8Array> {
  let left = size;
  let x = seed >>> 0 || 1;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left === 0) return controller.close();
      const n = Math.min(chunk, left);
      const buf = new Uint8Array(n);
      const words = new Uint32Array(buf.buffer, 0, n >>> 2);
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x >>> 0;
      }
      left -= n;
      controller.enqueue(buf);
    },
  });
}
