// The `cc` program as a user runs it: embedded defaults, /healthz, /metrics, clean stop; on Node and on Deno.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../engine/nats-server.ts';
import { startTestEngine } from './support/engine.ts';
import { startTestNats, tempDir, waitFor } from './support/nats.ts';
import { ActorClient } from '../actors/client.ts';

const DENO = join('node_modules', 'deno', 'deno');

function run(cmd: string, args: string[], env: Record<string, string>) {
  const child = spawn(cmd, args, { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, exited, output: () => out };
}

async function bootAndStop(cmd: string, args: string[], runtime: string, signal: 'SIGTERM' | 'SIGINT') {
  const dir = tempDir('engine');
  const port = await freePort();
  const p = run(cmd, args, { DATA_DIR: dir, PORT: String(port) });
  try {
    const health = await waitFor(
      'healthz',
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        return r.status === 200 ? ((await r.json()) as Record<string, any>) : undefined;
      },
      60_000,
      200,
    );
    assert.equal(health.status, 'ok');
    assert.equal(health.runtime, runtime);
    assert.equal(health.components.nats.state, 'ok');
    assert.equal(health.components.nats.embedded, true);
    assert.equal(health.components.storage.state, 'ok');
    assert.match(health.components.storage.url, /^surrealkv:\/\//);
    assert.equal(health.components.actors.state, 'ok');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^# TYPE cc_actor_activations_total counter$/m);
    assert.match(metrics, /process_cpu_seconds_total/);
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /no route for GET \/nope/);
    const natsPid = Number(readFileSync(join(dir, 'nats', 'nats-server.pid'), 'utf8'));
    assert.ok(existsSync(`/proc/${natsPid}`), 'embedded nats-server runs');
    // Sent to the launcher a user or a service manager signals (npm, deno task): it must reach the engine.
    p.child.kill(signal);
    assert.equal(await p.exited, 0, p.output());
    assert.match(p.output(), /"msg":"stopped"/);
    assert.ok(!existsSync(`/proc/${natsPid}`) || readFileSync(`/proc/${natsPid}/stat`, 'utf8').includes(' Z '), 'nats-server stopped with the engine');
  } finally {
    p.child.kill('SIGKILL');
  }
}

test('npm start: boots on embedded defaults under Node, answers /healthz and /metrics, and SIGTERM to npm stops it cleanly', async () => {
  await bootAndStop('npm', ['start', '--silent'], 'node', 'SIGTERM');
});

test('deno task start: the same program boots under Deno 2, answers /healthz, and SIGINT stops it cleanly', async () => {
  assert.ok(existsSync(DENO), 'the deno npm package provides the runtime');
  await bootAndStop(DENO, ['task', 'start'], 'deno', 'SIGINT');
});

test('two cc core nodes (ROLE=core, as README runs them by hand) split the shards; SIGTERM to one hands them and its actors to the other', { timeout: 120_000 }, async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const SHARDS = 8;
  const actors = new ActorClient(nc, SHARDS);
  const node = async (id: string) => {
    const port = await freePort();
    const p = run(process.execPath, ['--import', 'tsx', 'main.ts'], { ROLE: 'core', NODE_ID: id, PORT: String(port), NATS_URL: nats.urls[0], ACTOR_SHARDS: String(SHARDS), DATA_DIR: tempDir(id) });
    const owned = async () => {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return r?.status === 200 ? ((await r.json()) as { components: { actors: { shards_owned: number; shards_total: number; members: number } } }).components.actors : undefined;
    };
    return { p, owned };
  };
  const [a, b] = await Promise.all([node('core-a'), node('core-b')]);
  try {
    // Evenly: half the shards each.
    const total = await waitFor('both up, shards split evenly', async () => ((x, y) => (x && y && x.members === 2 && y.members === 2 && x.shards_owned + y.shards_owned === x.shards_total && Math.abs(x.shards_owned - y.shards_owned) <= 1 ? x.shards_total : undefined))(await a.owned(), await b.owned()), 60_000, 200);
    // Agents on every shard, each with a name only its actor keeps.
    const ids = Array.from({ length: 24 }, (_, i) => `probe${i}`);
    for (const id of ids) await actors.tell(`agent/${id}`, { type: 'profile.set', name: `Agent ${id}` });
    await waitFor('names kept', async () => (await Promise.all(ids.map((id) => actors.ask<{ name: string }>(`agent/${id}`, { type: 'get' })))).every((x, i) => x.name === `Agent ${ids[i]}`), 20_000, 100);
    const before = Date.now();
    a.p.child.kill('SIGTERM');
    assert.equal(await a.p.exited, 0, a.p.output());
    assert.match(a.p.output(), /"msg":"stopped"/);
    await waitFor('b owns every shard', async () => (await b.owned())?.shards_owned === total, 30_000, 100);
    const handover = Date.now() - before;
    const names = await Promise.all(ids.map((id) => actors.ask<{ name: string }>(`agent/${id}`, { type: 'get' })));
    assert.deepEqual(names.map((x) => x.name), ids.map((id) => `Agent ${id}`), 'every actor kept its state across the handover');
    console.log(JSON.stringify({ shards: total, handover_ms: handover }));
    // A clean stop hands over at once, well inside the lease time a crash would wait for.
    assert.ok(handover < 5_000, `handover took ${handover} ms`);
  } finally {
    a.p.child.kill('SIGKILL');
    b.p.child.kill('SIGKILL');
    await b.p.exited;
    await nc.close();
    await nats.stop();
  }
});

test('a core-only node answers /healthz and /metrics; its actors are reported down while its heartbeat cannot reach NATS', async () => {
  const t = await startTestEngine('core-only', { ROLE: 'core', LEASE_TTL_MS: '3000' });
  const health = async () => {
    const r = await fetch(`http://127.0.0.1:${t.httpPort}/healthz`);
    return { status: r.status, body: (await r.json()) as { components: Record<string, { state: string; shards_owned?: number }> } };
  };
  try {
    const ok = await waitFor('core healthz', async () => ((h) => (h.status === 200 && h.body.components.actors.shards_owned! > 0 ? h : undefined))(await health()), 30_000, 100);
    assert.deepEqual(Object.keys(ok.body.components).sort(), ['actors', 'nats'], 'a core node has no storage, objects or media of its own');
    // It hosts actors: one asked here is activated on it, and its metrics say so.
    await t.actors.ask('agent/probe', { type: 'get' });
    assert.match(await (await fetch(`http://127.0.0.1:${t.httpPort}/metrics`)).text(), /^cc_actor_activations_total\{[^}]*kind="agent"[^}]*\} 1$/m);
    // The server stops answering (SIGSTOP): the heartbeat lapses, the node fences its shards and says so.
    const pid = t.nats.servers[0].pid;
    process.kill(pid, 'SIGSTOP');
    try {
      const down = await waitFor('actors down', async () => ((h) => (h.status === 503 ? h : undefined))(await health()), 15_000, 200);
      assert.equal(down.body.components.actors.state, 'down');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor('actors back', async () => ((h) => (h.status === 200 && h.body.components.actors.state === 'ok' ? h : undefined))(await health()), 30_000, 200);
  } finally {
    await t.stop();
  }
});

test('bad configuration stops start-up with one line naming the variable', async () => {
  const p = run(process.execPath, ['--import', 'tsx', 'main.ts'], { PORT: 'eighty' });
  assert.equal(await p.exited, 2);
  assert.equal(p.output().trim(), 'config: PORT must be a whole number (got "eighty")');
});

test('a bad field-encryption key stops start-up with one line naming the variable, never the key', async () => {
  const dir = tempDir('badkey');
  const p = run(process.execPath, ['--import', 'tsx', 'main.ts'], { DATA_DIR: dir, PORT: String(await freePort()), FIELD_KEYS: 'k1:c2VjcmV0LXRvby1zaG9ydA==', FIELD_INDEX_KEY: 'aW5kZXg=' });
  assert.equal(await p.exited, 2);
  const lines = p.output().trim().split('\n');
  assert.equal(lines.length, 1, p.output());
  assert.match(lines[0], /^config: FIELD_KEYS/);
  assert.doesNotMatch(lines[0], /c2VjcmV0LXRvby1zaG9ydA/);
});
