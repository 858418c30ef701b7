// Requests on the engine's connections still answer, time out and fail as nats.js documents, with the
// cancel that follows every request sharing one error (platform/nats.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { errors, RequestError, type NatsConnection } from '@nats-io/nats-core';
import { startTestNats, type TestNats } from '../tests/support/nats.ts';

let nats: TestNats;
let nc: NatsConnection;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  nc.subscribe('echo', { callback: (_e, m) => void m.respond(m.data) });
  nc.subscribe('silent', { callback: () => undefined });
  await nc.flush();
});

after(() => nats?.stop());

test('answered requests resolve, many at once, each with its own reply', async () => {
  const got = await Promise.all(Array.from({ length: 500 }, (_, i) => nc.request('echo', `m${i}`, { timeout: 5000 })));
  assert.deepEqual(got.map((m) => m.string()), Array.from({ length: 500 }, (_, i) => `m${i}`));
});

test('a request nobody listens to fails with no responders; one nobody answers times out', async () => {
  await assert.rejects(nc.request('nobody.here', 'x', { timeout: 2000 }), (e: Error) => e instanceof RequestError && e.isNoResponders());
  const t0 = Date.now();
  await assert.rejects(nc.request('silent', 'x', { timeout: 300 }), (e: Error) => e instanceof errors.TimeoutError);
  assert.ok(Date.now() - t0 < 2000);
  // The connection is as good as before.
  assert.equal((await nc.request('echo', 'after', { timeout: 5000 })).string(), 'after');
});
