// The SIP edge against a real trunk (sipp) with a real engine (in process), a real media node
// (mediasoup worker + the media service over NATS) and real prompts (scripts/setup-voice.sh):
// a caller hears the IVR, presses 1 as RFC 4733 RTP, is queued with the IVR's attributes, an agent
// answers, the caller hangs up and the conversation ends; a malformed request gets a 400 and the edge
// keeps serving. Digest auth toward the trunk is checked against the RFCs' vectors.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ActorClient } from '../../actors/client.ts';
import { loadConfig } from '../../engine/config.ts';
import { freePort } from '../../engine/nats-server.ts';
import { startEngine, type Engine } from '../../engine/start.ts';
import type { ConversationContext } from '../../machines/conversation.ts';
import { parseMenu } from '../../machines/ivr.ts';
import { DEFAULT_MENU } from '../../engine/voice.ts';
import { writeRtpPcap } from '../../tests/support/pcap.ts';
import { buildRtp, buildTelephoneEvent, parseRtp } from '../../media/rtp.ts';
import { startMediaService, type MediaService } from '../../media/service.ts';
import { StoreClient } from '../../storage/client.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { authorization, digestResponse, parseChallenge } from './digest.ts';
import { startSipEdge, type SipEdge } from './edge.ts';
import { engineVoice } from './voice.ts';

const HERE = import.meta.dirname;
const PROMPTS = process.env.PROMPTS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cc', 'prompts');

let nats: TestNats;
let engine: Engine;
let mediaService: MediaService;
let edge: SipEdge;
let actors: ActorClient;
let dir: string;

const menu = parseMenu(DEFAULT_MENU);

before(async () => {
  assert.ok(existsSync(join(PROMPTS, 'welcome.en.ul')), `prompts missing in ${PROMPTS}: run sh scripts/setup-voice.sh`);
  nats = await startTestNats();
  dir = tempDir('sip');
  const env = { NATS_URL: nats.urls[0], DATA_DIR: dir, SURREAL_URL: 'mem://', PORT: String(await freePort()), SMTP_PORT: String(await freePort()), ACTOR_SHARDS: '4', ROLE: 'core,edge,store', SIP_PORT: String(await freePort()) };
  engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
  const nc = await nats.connect();
  actors = new ActorClient(nc, 4);
  mediaService = await startMediaService(nc, { pool: { size: 1, logLevel: 'error' }, promptsDir: PROMPTS, listenIp: '127.0.0.1' });
  edge = await startSipEdge({
    port: 0,
    host: '127.0.0.1',
    nc,
    voice: engineVoice({ store: new StoreClient(nc), actors }),
    menu,
    account: '+862100000000',
    holdPrompt: 'music.hold',
  });
  await actors.tell('agent/ann', { type: 'profile.set', skills: { en: 1, zh: 1 }, queues: ['support'] });
  await actors.tell('agent/ann', { type: 'login' });
});

after(async () => {
  await edge?.stop();
  await mediaService?.stop();
  await engine?.stop();
  await nats?.stop();
});

/** Runs sipp as the trunk; resolves with its exit code and output. */
function sipp(scenario: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('sipp', ['127.0.0.1:' + edge.port, '-sf', join(HERE, scenario), '-m', '1', '-i', '127.0.0.1', '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error', ...args], { cwd: dir });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

/** A pcap of one key press ('1') as RFC 4733 packets, as sipp's play_pcap_audio expects (Ethernet/IPv4/UDP). */
function dtmfPcap(path: string): void {
  const packets: Uint8Array[] = [];
  const ts = 160 * 50;
  for (let i = 0; i < 8; i++) {
    const end = i >= 5;
    const duration = Math.min(i + 1, 6) * 160;
    packets.push(buildRtp({ payloadType: 101, seq: 100 + i, timestamp: ts, ssrc: 0x1234abcd, marker: i === 0, payload: buildTelephoneEvent({ digit: '1', end, volume: 10, duration }) }));
  }
  writeRtpPcap(path, packets.map((rtp, i) => ({ at: 1_000_000 + i * 20_000, rtp })));
}

const conversation = (id: string) => actors.ask<{ value: string; context: ConversationContext }>(`conversation/${id}`, { type: 'get' });

test('an inbound call hears the IVR, presses 1, queues with the IVR attributes, is answered and hangs up', { timeout: 60_000 }, async (t) => {
  // The trunk's RTP address in the offer: counts what the caller hears.
  const ear = createSocket('udp4');
  await new Promise<void>((ok) => ear.bind(0, '127.0.0.1', ok));
  const heard: { pt: number; bytes: number }[] = [];
  ear.on('message', (b) => {
    const p = parseRtp(new Uint8Array(b));
    if (p) heard.push({ pt: p.payloadType, bytes: p.payload.length });
  });
  dtmfPcap(join(dir, 'dtmf-1.pcap'));
  const run = sipp('uac-ivr.xml', ['-key', 'rtp_port', String(ear.address().port), '-key', 'caller', '+8613800138000', '-mi', '127.0.0.1', '-mp', String(await freePort())], 45_000);

  const callId = await waitFor('call set up', () => [...edge.calls.keys()][0], 10_000, 50);
  await waitFor('prompt heard', () => heard.length >= 50, 10_000, 50);
  assert.ok(heard.every((h) => h.pt === 0 && h.bytes === 160), 'the prompt arrives as PCMU, 20 ms packets, as negotiated');

  const conversationId = await waitFor('queued after DTMF 1', () => edge.calls.get(callId)?.conversationId, 15_000, 50);
  assert.deepEqual(edge.calls.get(callId)?.digits, ['1'], 'one key press, counted once across its RFC 4733 packets');
  const queued = await conversation(conversationId);
  assert.equal(queued.context.channel, 'voice');
  assert.equal(queued.context.queue, 'support');
  assert.equal(queued.context.task?.attrs.intent, 'sales', "the IVR's attributes are the task's");
  assert.equal(queued.context.task?.attrs.callId, callId);

  // The agent answers.
  await waitFor('offer to ann', async () => (await conversation(conversationId)).value === 'offered', 15_000, 100);
  const ann = await actors.ask<{ context?: { offers: Record<string, { task: { id: string } }> }; offers?: Record<string, { task: { id: string } }> }>('agent/ann', { type: 'get' });
  const offers = ann.offers ?? ann.context?.offers ?? {};
  const rid = Object.keys(offers).find((k) => offers[k].task.id === conversationId);
  assert.ok(rid, 'ann holds the offer');
  await actors.tell('agent/ann', { type: 'offer.accept', reservationId: rid });
  await waitFor('active', async () => (await conversation(conversationId)).value === 'active', 10_000, 100);

  // sipp hangs up: the call closes and the conversation ends into wrap-up.
  const r = await run;
  t.diagnostic(`RTP packets the caller heard (welcome prompt, then music on hold): ${heard.length}`);
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  await waitFor('wrap-up', async () => (await conversation(conversationId)).value === 'wrapup', 10_000, 100);
  assert.equal(edge.calls.size, 0);
  assert.ok(!mediaService.calls().length, 'the media node closed the call');
  ear.close();
});

test('a malformed request gets a 400 and the edge keeps serving OPTIONS', { timeout: 30_000 }, async () => {
  const before = edge.stats.malformed;
  const r = await sipp('uac-malformed.xml', [], 15_000);
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  assert.equal(edge.stats.malformed, before + 1);
});

test('digest auth toward a trunk matches RFC 2617 and RFC 7616 vectors', () => {
  // RFC 2617 §3.5 (MD5, qop=auth).
  const md5 = parseChallenge('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"');
  assert.equal(digestResponse({ challenge: md5, username: 'Mufasa', password: 'Circle Of Life', method: 'GET', uri: '/dir/index.html', cnonce: '0a4f113b', nc: 1 }), '6629fae49393a05397450978507c4ef1');
  // RFC 7616 §3.9.1 (SHA-256 and MD5, qop=auth), the hashes RFC 8760 brings to SIP.
  const rfc7616 = (alg: string) =>
    parseChallenge(`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`);
  const common = { username: 'Mufasa', password: 'Circle of Life', method: 'GET', uri: '/dir/index.html', cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ', nc: 1 };
  assert.equal(digestResponse({ challenge: rfc7616('SHA-256'), ...common }), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  assert.equal(digestResponse({ challenge: rfc7616('MD5'), ...common }), '8ca523f5e9506fed4657c9700eebdbec');
  const header = authorization({ challenge: rfc7616('SHA-256'), ...common });
  assert.match(header, /^Digest username="Mufasa", realm="http-auth@example.org", .*response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="f2\/wE4/);
  assert.throws(() => parseChallenge('Basic realm="x"'), /not a Digest challenge/);
  assert.throws(() => parseChallenge('Digest realm="x", nonce="n", algorithm=SHA-512'), /algorithm/);
});
