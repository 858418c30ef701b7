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

test('an agent leg over WebRTC: transports on 127.0.0.1, produce in the caller codec bridged to the SIP leg, consume the caller, pause, stats, close', async () => {
  const c = 'c5';
  await media.call('router.open', { conversationId: c });
  // The SIP leg: a plain transport whose PCMU producer is the caller.
  const leg = await media.call<{ transportId: string }>('plain.create', { conversationId: c, comedia: true });
  await media.call('produce', { conversationId: c, transportId: leg.transportId, codec: 'PCMU', payloadType: 0, ssrc: 1111 });

  type Created = { transportId: string; iceParameters: { usernameFragment: string }; iceCandidates: { address: string; protocol: string; port: number }[]; dtlsParameters: { fingerprints: unknown[] }; routerRtpCapabilities: { codecs: { mimeType: string }[] } };
  const send = await media.call<Created>('webrtc.create', { conversationId: c });
  const recv = await media.call<Created>('webrtc.create', { conversationId: c });
  assert.ok(send.iceParameters.usernameFragment);
  assert.deepEqual(send.iceCandidates.map((x) => [x.address, x.protocol]), [['127.0.0.1', 'udp']]);
  assert.ok(send.dtlsParameters.fingerprints.length > 0);
  assert.ok(send.routerRtpCapabilities.codecs.some((x) => x.mimeType === 'audio/PCMU'));

  await rejected(media.call('webrtc.connect', { conversationId: c, transportId: send.transportId, dtlsParameters: { role: 'client', fingerprints: [] } }), 400, /dtlsParameters\.fingerprints: needs a fingerprint/);
  await rejected(media.call('webrtc.connect', { conversationId: c, transportId: leg.transportId, dtlsParameters: { fingerprints: [{ algorithm: 'sha-256', value: 'AB:CD:EF:01' }] } }), 404, /WebRTC transport .* is not open/);

  // mediasoup does not transcode: opus from the browser cannot reach a PCMU trunk.
  const opus = { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 2222 }] };
  await rejected(media.call('webrtc.produce', { conversationId: c, transportId: send.transportId, kind: 'audio', rtpParameters: opus }), 400, /caller's leg is audio\/pcmu/);
  const pcmu = { mid: '0', codecs: [{ mimeType: 'audio/PCMU', payloadType: 0, clockRate: 8000 }], encodings: [{ ssrc: 3333 }], rtcp: { cname: 'agent' } };
  const produced = await media.call<{ producerId: string; bridged: number }>('webrtc.produce', { conversationId: c, transportId: send.transportId, kind: 'audio', rtpParameters: pcmu });
  assert.equal(produced.bridged, 1, 'the agent is sent out of the SIP leg');

  const caps = { codecs: [{ kind: 'audio' as const, mimeType: 'audio/PCMU', preferredPayloadType: 0, clockRate: 8000 }] };
  const consumed = await media.call<{ consumerId: string; producerId: string; rtpParameters: { codecs: { mimeType: string }[] } }>('webrtc.consume', { conversationId: c, transportId: recv.transportId, rtpCapabilities: caps });
  assert.equal(consumed.rtpParameters.codecs[0].mimeType, 'audio/PCMU');
  await rejected(media.call('webrtc.consume', { conversationId: c, transportId: recv.transportId, rtpCapabilities: { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }] } }), 400, /cannot receive audio\/PCMU/);

  type Info = { producers: { id: string; source: string; mimeType: string; paused: boolean }[]; consumers: { id: string; producerId: string; paused: boolean }[]; plain: string[]; webrtc: string[] };
  let info = await media.call<Info>('call.info', { conversationId: c });
  assert.deepEqual(info.producers.map((p) => [p.source, p.mimeType]).sort(), [['agent', 'audio/PCMU'], ['caller', 'audio/PCMU']]);
  assert.equal(info.consumers.length, 2, "the caller's leg consumes the agent, the agent's browser the caller");
  assert.deepEqual(info.webrtc.sort(), [send.transportId, recv.transportId].sort());

  await media.call('pause', { conversationId: c, id: produced.producerId });
  await media.call('pause', { conversationId: c, id: consumed.consumerId });
  info = await media.call<Info>('call.info', { conversationId: c });
  assert.equal(info.producers.find((p) => p.id === produced.producerId)?.paused, true);
  assert.equal(info.consumers.find((x) => x.id === consumed.consumerId)?.paused, true);
  await media.call('resume', { conversationId: c, id: produced.producerId });
  await rejected(media.call('pause', { conversationId: c, id: 'nope' }), 404, /not a producer or consumer/);

  const st = await media.call<{ stats: { type: string }[] }>('stats', { conversationId: c, id: recv.transportId });
  assert.equal(st.stats[0].type, 'webrtc-transport');

  // Closing the agent's send transport closes its producer and the SIP leg's consumer of it.
  // (The worker tells the consumer its producer closed a moment later; the caller's leg then tries its
  // music, which this node has no prompts for.)
  await media.call('webrtc.close', { conversationId: c, transportId: send.transportId });
  info = await waitFor('the agent consumer gone', async () => {
    const now = await media.call<Info>('call.info', { conversationId: c });
    return now.consumers.length === 1 ? now : undefined;
  }, 5000, 50);
  assert.deepEqual(info.producers.map((p) => p.source), ['caller']);
  assert.deepEqual(info.consumers.map((x) => x.producerId), [info.producers[0].id], "left: the agent's browser consuming the caller");
  await media.call('router.close', { conversationId: c });
});

test('a consulted agent (warm transfer): produced without the bridge, bridged to the SIP leg later, once', async () => {
  const c = 'c6';
  await media.call('router.open', { conversationId: c });
  const leg = await media.call<{ transportId: string }>('plain.create', { conversationId: c, comedia: true });
  const caller = await media.call<{ producerId: string }>('produce', { conversationId: c, transportId: leg.transportId, codec: 'PCMU', payloadType: 0, ssrc: 1112 });
  const send = await media.call<{ transportId: string }>('webrtc.create', { conversationId: c });
  const pcmu = { mid: '0', codecs: [{ mimeType: 'audio/PCMU', payloadType: 0, clockRate: 8000 }], encodings: [{ ssrc: 4444 }], rtcp: { cname: 'colleague' } };
  const produced = await media.call<{ producerId: string; bridged: number }>('webrtc.produce', { conversationId: c, transportId: send.transportId, kind: 'audio', rtpParameters: pcmu, bridge: false });
  assert.equal(produced.bridged, 0, 'the caller does not hear a consult');
  type Info = { consumers: { producerId: string; bridged: boolean }[] };
  assert.deepEqual((await media.call<Info>('call.info', { conversationId: c })).consumers, []);

  await rejected(media.call('bridge', { conversationId: c, producerId: 'nope' }), 404, /producer nope is not in this call/);
  await rejected(media.call('bridge', { conversationId: c, producerId: caller.producerId }), 400, /is not an agent's/);
  assert.equal((await media.call<{ bridged: number }>('bridge', { conversationId: c, producerId: produced.producerId })).bridged, 1);
  assert.equal((await media.call<{ bridged: number }>('bridge', { conversationId: c, producerId: produced.producerId })).bridged, 0, 'bridged once');
  const info = await media.call<Info & { consumers: { id: string; producerId: string; bridged: boolean }[] }>('call.info', { conversationId: c });
  assert.deepEqual(info.consumers.map((x) => [x.producerId, x.bridged]), [[produced.producerId, true]]);
  await media.call('router.close', { conversationId: c });
});
