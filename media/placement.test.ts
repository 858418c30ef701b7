// Two media nodes on one nats-server, each with a real mediasoup worker: a call opened on either is
// reached by every later command from any client (the open's answer, or the cc_media_calls bucket for a
// client that did not open it); opening an open call again answers from the node holding it; a node that
// stops leaves its calls answering 503 with the reason, and reopening one places it on the survivor.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from '@nats-io/nats-core';
import { startTestNats, type TestNats } from '../tests/support/nats.ts';
import { callKey } from './placement.ts';
import { MediaClient, MediaError, startMediaService, type MediaService } from './service.ts';

let nats: TestNats;
let nc: NatsConnection;
let a: MediaService;
let b: MediaService;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  const opts = { pool: { size: 1, logLevel: 'none' as const }, promptsDir: '/nonexistent', listenIp: '127.0.0.1' };
  [a, b] = await Promise.all([startMediaService(nc, { ...opts, nodeId: 'media-a' }), startMediaService(nc, { ...opts, nodeId: 'media-b' })]);
});

after(async () => {
  await a?.stop();
  await b?.stop();
  await nc?.close();
  await nats?.stop();
});

test('calls placed on two media nodes are reached by every client; a stopped node answers 503 and its call reopens elsewhere', async () => {
  const opener = new MediaClient(nc);
  // Open calls until both nodes hold some (the queue group places them), with SIP-style ids (':' in them).
  const opened: { id: string; node: string }[] = [];
  for (let i = 0; i < 40 && !(a.calls().length && b.calls().length); i++) {
    const id = `call:${i}.trunk`;
    const r = await opener.call<{ node: string }>('router.open', { conversationId: id });
    opened.push({ id, node: r.node });
  }
  assert.ok(a.calls().length > 0 && b.calls().length > 0, `both nodes took calls (${a.calls().length} / ${b.calls().length})`);
  for (const o of opened) assert.ok((o.node === 'media-a' ? a : b).calls().includes(o.id), `${o.id} is held by ${o.node}`);
  assert.equal(callKey('call:1.trunk'), 'call=3A1.trunk');

  // Every command of every call reaches its node: from the opener (its memory) and from a fresh client (the bucket).
  const other = new MediaClient(nc);
  for (const { id } of opened) {
    const leg = await opener.call<{ transportId: string }>('plain.create', { conversationId: id });
    const info = await other.call<{ plain: string[] }>('call.info', { conversationId: id });
    assert.deepEqual(info.plain, [leg.transportId]);
  }
  // Opening an open call again (another client, any node) answers from its node: one router, not two.
  for (const { id, node } of opened) assert.equal((await other.call<{ node: string }>('router.open', { conversationId: id })).node, node);
  assert.equal(a.calls().length + b.calls().length, opened.length);

  // A call nobody opened is a 404 with the reason; a bad request never leaves the client.
  await assert.rejects(other.call('call.info', { conversationId: 'never' }), (e: unknown) => e instanceof MediaError && e.code === 404 && /no open router on any media node/.test(e.reason));
  await assert.rejects(other.call('plain.create', { conversationId: 'bad id!' }), (e: unknown) => e instanceof MediaError && e.code === 400);

  // Node A stops: a client that remembers it gets 503 (or 404 once the bucket no longer names a node).
  const onA = opened.find((o) => o.node === 'media-a')!;
  const stale = new MediaClient(nc);
  await stale.call('call.info', { conversationId: onA.id }); // remembers media-a
  await a.stop();
  await assert.rejects(stale.call('call.info', { conversationId: onA.id }), (e: unknown) => e instanceof MediaError && (e.code === 503 || e.code === 404));
  // Reopened, the call lands on the survivor, and every client follows it there.
  assert.equal((await stale.call<{ node: string }>('router.open', { conversationId: onA.id })).node, 'media-b');
  assert.ok(b.calls().includes(onA.id));
  assert.deepEqual((await other.call<{ plain: string[] }>('call.info', { conversationId: onA.id })).plain, []);
});
