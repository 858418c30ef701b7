// Starts and stops a local `nats-server -js` (Debian's package) for embedded defaults and tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

export class NatsServerMissing extends Error {
  constructor() {
    super('nats-server: not found; install it with `sudo apt-get install nats-server` (Debian) or set NATS_URL to a running server');
  }
}

/** The `nats-server` binary: on PATH first, then where Debian and a manual install put it. */
export function findNatsServer(path = process.env.PATH ?? '', candidates = CANDIDATES): string {
  for (const dir of path.split(':')) {
    if (dir && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new NatsServerMissing();
  return found;
}

/** A free TCP port on loopback (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

export interface NatsServerOptions {
  storeDir: string;
  port?: number;
  /** Cluster membership for multi-server tests and hand-run clusters. */
  cluster?: { name: string; port: number; routes: number[] };
  serverName?: string;
}

export interface RunningNatsServer {
  url: string;
  port: number;
  pid: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

export async function startNatsServer(opts: NatsServerOptions): Promise<RunningNatsServer> {
  const bin = findNatsServer();
  const storeDir = resolve(opts.storeDir);
  mkdirSync(storeDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const name = opts.serverName ?? `cc-${port}`;
  const lines = [
    `server_name: ${JSON.stringify(name)}`,
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
  ];
  if (opts.cluster) {
    const routes = opts.cluster.routes.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`)).join(', ');
    lines.push(`cluster { name: ${JSON.stringify(opts.cluster.name)}, listen: "127.0.0.1:${opts.cluster.port}", routes: [${routes}] }`);
  }
  const confFile = join(storeDir, 'nats-server.conf');
  writeFileSync(confFile, lines.join('\n') + '\n');
  const pidFile = join(storeDir, 'nats-server.pid');
  await stopStale(pidFile, bin);
  // Own process group: a Ctrl-C in the terminal reaches the engine, which drains before it stops the server.
  const child: ChildProcess = spawn(bin, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  writeFileSync(pidFile, String(child.pid));
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-8192);
  });
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  const ready = await waitForLine(() => log, /Server is ready/, exited, 15_000);
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error(`nats-server did not start on 127.0.0.1:${port}: ${log.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      rmSync(pidFile, { force: true });
    },
  };
}

async function waitForLine(text: () => string, re: RegExp, exited: Promise<unknown>, ms: number): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !gone) {
    if (re.test(text())) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return re.test(text());
}

/** A server left running by an engine that was killed holds the store: stop it before starting anew. */
async function stopStale(pidFile: string, bin: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.includes(bin) && !cmd.includes('nats-server')) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
}
