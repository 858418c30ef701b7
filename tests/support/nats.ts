// Real nats-server processes for tests: each on a free loopback port with its own store under .test-data.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { connectNats } from '../../platform/nats.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { freePort, startNatsServer, type RunningNatsServer } from '../../engine/nats-server.ts';

export const TEST_DATA = resolve('.test-data');

export function tempDir(prefix: string): string {
  mkdirSync(TEST_DATA, { recursive: true });
  return mkdtempSync(join(TEST_DATA, `${prefix}-`));
}

export interface TestNats {
  servers: RunningNatsServer[];
  urls: string[];
  dir: string;
  connect(): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function startTestNats(opts: { cluster?: number; dir?: string } = {}): Promise<TestNats> {
  const dir = opts.dir ?? tempDir('nats');
  const n = opts.cluster ?? 1;
  const servers: RunningNatsServer[] = [];
  if (n === 1) {
    servers.push(await startNatsServer({ storeDir: join(dir, 's0') }));
  } else {
    const clientPorts = await Promise.all(Array.from({ length: n }, () => freePort()));
    const routePorts = await Promise.all(Array.from({ length: n }, () => freePort()));
    servers.push(
      ...(await Promise.all(
        clientPorts.map((port, i) =>
          startNatsServer({ storeDir: join(dir, `s${i}`), port, serverName: `s${i}`, cluster: { name: 'cc-test', port: routePorts[i], routes: routePorts.filter((_, j) => j !== i) } }),
        ),
      )),
    );
  }
  const urls = servers.map((s) => s.url);
  const conns: NatsConnection[] = [];
  if (n > 1) await jetStreamReady(urls);
  return {
    servers,
    urls,
    dir,
    async connect() {
      const nc = await connectNats(urls);
      conns.push(nc);
      return nc;
    },
    async stop() {
      await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
      await Promise.all(servers.map((s) => s.stop()));
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, ms = 20_000, every = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** A new cluster serves JetStream only once it has elected a meta leader. */
export async function jetStreamReady(urls: string[]): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    await waitFor('JetStream meta leader', async () => {
      const jsm = await jetstreamManager(nc, { timeout: 2000 });
      await jsm.getAccountInfo();
      return true;
    }, 60_000, 250);
  } finally {
    await nc.close();
  }
}
