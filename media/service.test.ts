// The media service over a real nats-server with a real mediasoup worker: bad requests are answered
// with 400 and a reason, unknown calls 404, routers and transports open and close, and a worker's death
// is published on cc.media.call.failed for the call it took.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNats, waitFor, type TestNats } from '../tests/support/nats.ts';
import type { NatsConnection } from '@nats-io/nats-core';
import { CALL_FAILED_SUBJECT, MediaClient, MediaError, startMediaService, type MediaService } from './service.ts';

let nats: TestNats;
let nc: NatsConnection;
let svc: MediaService;
let media: MediaClient;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  svc = await startMediaService(nc, { pool: { size: 1, logLevel: 'none', replaceRetryMs: 50 }, promptsDir: '/nonexistent', listenIp: '127.0.0.1' });
  media = new MediaClient(nc);
});

after(async () => {
  await svc?.stop();
  await nc?.close();
  await nats?.stop();
});

const rejected = async (p: Promise<unknown>, code: number, re: RegExp) => {
  const e = await p.then(() => undefined, (x: unknown) => x);
  assert.ok(e instanceof MediaError, `expected a MediaError, got ${String(e)}`);
  assert.equal(e.code, code);
  assert.match(e.reason, re);
};

test('bad requests get 400 with the reason; unknown calls 404', async () => {
  await rejected(media.call('router.open', { conversationId: 'bad id!' }), 400, /conversationId: letters, digits/);
  await rejected(media.call('plain.connect', { conversationId: 'c1', transportId: 't', ip: 'nope', port: 5 }), 400, /ip: must be an IPv4/);
  await rejected(media.call('plain.create', { conversationId: 'never-opened' }), 404, /no open router/);
  const raw = await nc.request('cc.media.v1.router.open', new TextEncoder().encode('{not json'));
  assert.equal(raw.headers?.get('Nats-Service-Error-Code'), '400');
});

test('a call opens a router and a plain transport, a missing prompt is a 404, and closing frees it', async () => {
  await media.call('router.open', { conversationId: 'c2' });
  const leg = await media.call<{ transportId: string; ip: string; port: number }>('plain.create', { conversationId: 'c2' });
  assert.equal(leg.ip, '127.0.0.1');
  assert.ok(leg.port > 0);
  await media.call('plain.connect', { conversationId: 'c2', transportId: leg.transportId, ip: '127.0.0.1', port: 40000 });
  await rejected(media.call('play', { conversationId: 'c2', transportId: leg.transportId, prompt: 'welcome.en', codec: 'PCMU' }), 404, /prompt welcome\.en .*not found/);
  assert.deepEqual(svc.calls(), ['c2']);
  assert.deepEqual(await media.call('router.close', { conversationId: 'c2' }), { closed: true });
  assert.deepEqual(svc.calls(), []);
});

test("a worker's death is published for its calls and a replacement takes new ones", async () => {
  const failed: { conversationId: string; reason: string }[] = [];
  const sub = nc.subscribe(CALL_FAILED_SUBJECT, { callback: (_e, m) => void failed.push(m.json()) });
  const { workerPid } = await media.call<{ workerPid: number }>('router.open', { conversationId: 'c3' });
  process.kill(workerPid, 'SIGKILL');
  const f = await waitFor('call failed published', () => failed.find((x) => x.conversationId === 'c3'), 10_000);
  assert.match(f.reason, new RegExp(`media worker ${workerPid} died`));
  assert.ok(await svc.pool.full(10_000), 'a replacement worker started');
  const next = await media.call<{ workerPid: number }>('router.open', { conversationId: 'c4' });
  assert.notEqual(next.workerPid, workerPid);
  sub.unsubscribe();
});
