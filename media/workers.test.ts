// The worker pool against the real mediasoup-worker (built by scripts/setup-media.sh): placement, one
// router per conversation, RTP actually arriving over UDP, and a worker killed with SIGKILL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { cachedWorkerBin, findWorkerBin, WorkerBinError } from './worker-bin.ts';
import { MediaPoolError, WorkerPool, type WorkerDeath } from './workers.ts';
import { Registry } from 'prom-client';
import { mediaMetrics } from './metrics.ts';

const failed: Array<{ id: string; reason: string }> = [];
const deaths: WorkerDeath[] = [];
let pool: WorkerPool;

before(async () => {
  pool = await WorkerPool.start(
    { size: 2, logLevel: 'error' },
    { onCallFailed: (id, reason) => failed.push({ id, reason }), onWorkerDied: (d) => deaths.push(d) },
  );
});
after(async () => {
  await pool?.stop();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An RTP packet (RFC 3550 fixed header, no CSRC/extension) with a payload that only has to be bytes. */
function rtp(pt: number, seq: number, timestamp: number, ssrc: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80; // version 2
  b[1] = pt & 0x7f;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(timestamp >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  b.set(payload, 12);
  return b;
}

test('the worker binary is found, and a missing one is a clear error naming the set-up script', () => {
  const bin = findWorkerBin({ ...process.env });
  assert.ok(bin.endsWith('mediasoup-worker'), bin);
  assert.equal(cachedWorkerBin({ XDG_CACHE_HOME: '/x/cache' }, '9.9.9'), '/x/cache/cc/mediasoup-9.9.9/mediasoup-worker');
  assert.equal(cachedWorkerBin({ HOME: '/home/u' }, '9.9.9'), '/home/u/.cache/cc/mediasoup-9.9.9/mediasoup-worker');
  assert.throws(() => findWorkerBin({ MEDIASOUP_WORKER_BIN: '/nonexistent/mediasoup-worker' }), (e: unknown) => {
    assert.ok(e instanceof WorkerBinError);
    assert.match(e.message, /MEDIASOUP_WORKER_BIN=\/nonexistent\/mediasoup-worker is not an executable file/);
    assert.match(e.message, /scripts\/setup-media\.sh/);
    return true;
  });
  assert.throws(() => findWorkerBin({ XDG_CACHE_HOME: '/nonexistent' }), /not found at \/nonexistent\/cc\/mediasoup-.*run `sh scripts\/setup-media\.sh`/);
});

test('bad settings and ids are refused with the reason', async () => {
  await assert.rejects(WorkerPool.start({ size: 0 }), (e: unknown) => e instanceof MediaPoolError && /size/.test(e.message));
  await assert.rejects(WorkerPool.start({ rtcMinPort: 50000, rtcMaxPort: 40000 }), /rtcMinPort must not be above rtcMaxPort/);
  assert.throws(() => pool.router(''), MediaPoolError);
  assert.throws(() => pool.router('a b/c'), /letters, digits/);
  assert.throws(() => pool.router(42 as unknown as string), MediaPoolError);
});

test('the pool starts its workers, one router per conversation spread over them', async () => {
  const pids = pool.pids();
  assert.equal(pids.length, 2);
  assert.notEqual(pids[0], pids[1]);
  assert.ok(pids.every(alive));

  const [r1, r1again, r2] = await Promise.all([pool.router('conv-1'), pool.router('conv-1'), pool.router('conv-2')]);
  assert.equal(r1, r1again, 'the same conversation gets the same router');
  assert.notEqual(r1.id, r2.id);
  assert.notEqual(pool.workerOf('conv-1'), pool.workerOf('conv-2'), 'least loaded: the second call goes to the other worker');
  assert.deepEqual(pool.stats().workers.map((w) => w.calls), [1, 1]);
  const registry = new Registry();
  mediaMetrics(pool, registry);
  const text = await registry.metrics();
  assert.match(text, /^cc_media_calls\{slot="0"\} 1$/m);
  assert.match(text, /^cc_media_calls\{slot="1"\} 1$/m);
  assert.match(text, /^cc_media_workers_live 2$/m);
  assert.match(text, /^cc_media_routers_created_total 2$/m);

  const codecs = r1.rtpCapabilities.codecs!.map((c) => `${c.mimeType}/${c.clockRate}${c.channels ? `/${c.channels}` : ''}`);
  for (const want of ['audio/opus/48000/2', 'audio/PCMU/8000/1', 'audio/PCMA/8000/1', 'audio/telephone-event/8000/1', 'audio/telephone-event/48000/1']) {
    assert.ok(codecs.includes(want), `${want} in ${codecs.join(', ')}`);
  }

  assert.equal(await pool.close('conv-1'), true);
  assert.equal(r1.closed, true);
  assert.equal(await pool.close('conv-1'), false, 'closing twice is a no-op');
  const r1new = await pool.router('conv-1');
  assert.notEqual(r1new.id, r1.id, 'a closed conversation gets a fresh router');
  await pool.close('conv-1');
  await pool.close('conv-2');
  assert.equal(pool.stats().calls, 0);
});

test('a comedia PlainTransport receives RTP sent over UDP', async () => {
  const router = await pool.router('conv-rtp');
  const transport = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: true, comedia: true });
  const ssrc = 0x1234abcd;
  const pt = router.rtpCapabilities.codecs!.find((c) => c.mimeType === 'audio/opus')!.preferredPayloadType!;
  const producer = await transport.produce({
    kind: 'audio',
    rtpParameters: { codecs: [{ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: pt }], encodings: [{ ssrc }] },
  });

  const sock = createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const sent = 100;
  const seq0 = 65500; // crosses the 16-bit wrap on purpose
  for (let i = 0; i < sent; i++) {
    const pkt = rtp(pt, seq0 + i, 1000 + i * 960, ssrc, randomBytes(60));
    await new Promise<void>((resolve, reject) => sock.send(pkt, transport.tuple.localPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
  }

  // The worker counts asynchronously: poll its stats until all packets are in (or 5 s pass).
  let received = 0;
  const deadline = Date.now() + 5000;
  while (received < sent && Date.now() < deadline) {
    received = (await producer.getStats()).reduce((n, st) => n + st.packetCount, 0);
    if (received < sent) await new Promise((r) => setTimeout(r, 50));
  }
  const tstats = (await transport.getStats())[0];
  const senderPort = sock.address().port;
  sock.close();

  assert.equal(received, sent, `producer counted ${received} of ${sent} RTP packets`);
  assert.equal(transport.tuple.remotePort, senderPort, 'comedia learned the sender port');
  assert.ok(tstats.rtpBytesReceived >= sent * (12 + 60), `rtpBytesReceived ${tstats.rtpBytesReceived}`);
  assert.equal(transport.tuple.remoteIp, '127.0.0.1', 'comedia learned the sender address');
  await pool.close('conv-rtp');
  assert.equal(transport.closed, true, 'closing the conversation closes its transports');
});

test('a worker killed with SIGKILL: its calls fail with the reason, survivors take new calls, a replacement starts', async () => {
  const ids = ['k1', 'k2', 'k3', 'k4'];
  await Promise.all(ids.map((id) => pool.router(id)));
  const victim = pool.workerOf('k1')!;
  const onVictim = ids.filter((id) => pool.workerOf(id) === victim);
  const onSurvivor = ids.filter((id) => pool.workerOf(id) !== victim);
  assert.equal(onVictim.length, 2);
  const survivor = pool.workerOf(onSurvivor[0])!;
  const survivorRouter = await pool.router(onSurvivor[0]);
  const before = pool.stats();

  process.kill(victim, 'SIGKILL');
  await until('the death to be reported', () => deaths.length === 1);

  // Right after the death, before any replacement can be up: new calls go to the survivor.
  const fresh = await pool.router('after-death');
  assert.equal(pool.workerOf('after-death'), survivor);

  assert.deepEqual(failed.map((f) => f.id).sort(), onVictim.sort());
  for (const f of failed) {
    assert.match(f.reason, new RegExp(`media worker ${victim} died`));
    assert.match(f.reason, /SIGKILL/);
  }
  assert.equal(deaths[0].pid, victim);
  assert.deepEqual(deaths[0].conversations.sort(), onVictim.sort());
  assert.equal(survivorRouter.closed, false, "the survivor's calls are untouched");
  assert.equal(fresh.closed, false);
  for (const id of onVictim) assert.equal(pool.workerOf(id), undefined, `${id} no longer has a router`);

  assert.equal(await pool.full(10_000), true, 'the replacement worker started');
  const pids = pool.pids();
  assert.equal(pids.length, 2);
  assert.ok(!pids.includes(victim));
  assert.ok(pids.includes(survivor));
  const replacement = pids.find((p) => p !== survivor)!;
  assert.ok(alive(replacement));

  // The replacement is the least loaded worker now, so the next call lands there, and it works.
  const next = await pool.router('after-replacement');
  assert.equal(pool.workerOf('after-replacement'), replacement);
  await pool.router('after-replacement-2'); // 3 calls on the survivor, 1 on the replacement: not round-robin
  assert.equal(pool.workerOf('after-replacement-2'), replacement);
  assert.ok(next.rtpCapabilities.codecs!.length > 0);
  // A conversation that failed can get media again (the conversation actor decides whether it should).
  await pool.router(onVictim[0]);

  const s = pool.stats();
  assert.equal(s.workerDeaths, before.workerDeaths + 1);
  assert.equal(s.workersReplaced, before.workersReplaced + 1);
  assert.equal(s.callsFailed, before.callsFailed + 2);
  assert.equal(s.live, 2);
  assert.equal(s.calls, onSurvivor.length + 4);

  const all = pool.pids();
  await pool.stop();
  await until('the workers to exit after stop', () => !all.some(alive));
});
