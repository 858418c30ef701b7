// Outbound calls through a SIP trunk, on real parts: a whole engine (actors, store, media node with a
// mediasoup worker, the SIP edge with SIP_TRUNK pointing at sipp, the workspace over HTTP) and sipp as the
// trunk's UAS. A web chat escalated to a call by the agent's "call" button: the trunk challenges the
// INVITE and sipp's verifyauth checks our digest, the callee answers, music reaches the trunk's RTP
// address from the media node and the callee's voice reaches the media node, the callee hangs up and the
// conversation goes back to the chat, one conversation throughout. The agent giving up while it rings
// sends CANCEL; a busy line (486) fails a voice outreach with that reason; an opted-out customer and a
// customer without a phone are refused with the reason.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Subscription } from '@nats-io/nats-core';
import { freePort } from '../../engine/nats-server.ts';
import { voiceConfig } from '../../engine/voice.ts';
import { buildRtp } from '../../media/rtp.ts';
import { MediaClient } from '../../media/service.ts';
import { loginCookie } from '../../web/browser.testing.ts';
import { agentOnDuty, answer, chatSocket, conversationOf, startTestEngine, type TestEngine } from '../../tests/support/engine.ts';
import { waitFor } from '../../tests/support/nats.ts';
import { writeRtpPcap } from '../../tests/support/pcap.ts';
import { ear, PROMPTS, promptHeard } from './sipp.testing.ts';

const HERE = import.meta.dirname;
const TRUNK_USER = 'cc-trunk';
const TRUNK_PASSWORD = `pw-${crypto.randomUUID()}`;
const adminPassword = crypto.randomUUID();

let t: TestEngine;
let trunkPort = 0;
let media: MediaClient;
let ann: (path: string, body?: unknown) => Promise<{ status: number; data: Record<string, unknown> }>;
/** Every call notice the workspace would see, by conversation. */
const notices = new Map<string, { state: string; reason?: string }[]>();
let sub: Subscription;

before(async () => {
  assert.ok(existsSync(join(PROMPTS, 'music.hold.ul')), `prompts missing in ${PROMPTS}: run sh scripts/setup-voice.sh`);
  trunkPort = await freePort();
  t = await startTestEngine('outbound', {
    SIP_HOST: '127.0.0.1',
    MEDIA_LISTEN_IP: '127.0.0.1',
    PROMPTS_DIR: PROMPTS,
    SIP_TRUNK: `127.0.0.1:${trunkPort}`,
    SIP_TRUNK_USER: TRUNK_USER,
    SIP_TRUNK_PASSWORD: TRUNK_PASSWORD,
    SIP_FROM_NUMBER: '+862100000000',
    WEBCHAT_SITES: 'shop:Shop',
    ADMIN_PASSWORD: adminPassword,
  });
  const nc = await t.nats.connect();
  media = new MediaClient(nc);
  sub = nc.subscribe('cc.conversation.*.call', {
    callback: (_e, m) => {
      const id = m.subject.split('.')[2];
      notices.set(id, [...(notices.get(id) ?? []), m.json<{ state: string; reason?: string }>()]);
    },
  });
  const base = `http://127.0.0.1:${t.httpPort}`;
  const session = async (user: string, password: string) => {
    const cookie = await loginCookie(base, user, password);
    return async (path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, data: (await res.json()) as Record<string, unknown> };
    };
  };
  const admin = await session('admin', adminPassword);
  assert.equal((await admin('/api/users', { id: 'ann', role: 'agent', password: 'ann-password-1', queues: ['support'] })).status, 201);
  ann = await session('ann', 'ann-password-1');
  await agentOnDuty(t.actors, 'ann');
});

after(async () => {
  sub?.unsubscribe();
  await t?.stop();
});

/** sipp as the trunk (UAS, listening on the trunk port: sipp.testing.ts's sipp() dials the edge instead); its exit code and output. */
function trunk(scenario: string, args: string[], timeoutMs: number, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('sipp', ['-sf', join(HERE, scenario), '-p', String(trunkPort), '-i', '127.0.0.1', '-m', '1', '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error', ...args], { cwd });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

/** A web chat that ann holds; its conversation id. */
async function chatHeldByAnn(text: string) {
  const chat = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=shop`);
  chat.ws.send(JSON.stringify({ type: 'message', clientMessageId: crypto.randomUUID(), text }));
  const ack = await waitFor('ack', () => chat.frames.find((f) => f.type === 'ack'), 20_000);
  const id = String(ack.conversationId);
  await answer(t.actors, 'ann', id);
  // The workspace's index knows it is ann's before her buttons work.
  await waitFor('ann sees it', async () => (await ann(`/api/conversations/${id}`)).status === 200, 10_000, 100);
  return { id, chat };
}

const conv = async (id: string) => conversationOf(t.actors, id);

/** Ann wraps the chat up (her chat slots are few) and the visitor leaves. */
async function done(id: string, ws: { close(): void }) {
  assert.equal((await ann(`/api/conversations/${id}/wrapup`, { disposition: 'done' })).status, 200);
  ws.close();
}

test('a chat escalated to a call: digest auth, answered, RTP both ways, the callee hangs up and the chat goes on', { timeout: 60_000 }, async (tt) => {
  const { id, chat } = await chatHeldByAnn('Can you call me about my order?');
  const e = await ear(); // the trunk's RTP address in its SDP answer: what the callee hears
  // The callee's voice: 2 s of μ-law silence as 20 ms PCMU packets, played by sipp towards our offer.
  writeRtpPcap(join(t.env.DATA_DIR, 'callee.pcap'), Array.from({ length: 100 }, (_, i) => ({ at: i * 20_000, rtp: buildRtp({ payloadType: 0, seq: 1 + i, timestamp: i * 160, ssrc: 0x5eed0001, marker: i === 0, payload: new Uint8Array(160).fill(0xff) }) })));
  const sipp = trunk('uas-auth.xml', ['-key', 'user', TRUNK_USER, '-key', 'pass', TRUNK_PASSWORD, '-key', 'rtp_port', String(e.port), '-mi', '127.0.0.1'], 30_000, t.env.DATA_DIR);

  const placed = await ann(`/api/conversations/${id}/call`, { number: '+86 138 0013 8000' });
  assert.equal(placed.status, 200, JSON.stringify(placed.data));
  assert.equal(placed.data.channel, 'voice');

  await waitFor('answered', async () => (await conv(id)).context.call?.state === 'answered', 15_000, 100);
  const during = (await conv(id)).context;
  assert.equal(during.channel, 'voice', 'the conversation is on voice while the call lasts');
  assert.equal(during.agent, 'ann');

  // Media node → relay → trunk: music on hold until ann's microphone joins.
  await waitFor('RTP at the trunk', () => e.heard.length >= 25, 10_000, 50);
  assert.ok(e.heard.every((h) => h.pt === 0 && h.payload.length === 160), 'PCMU as the trunk answered, 20 ms packets');
  const music = promptHeard(e.heard, 'music.hold');
  assert.ok(music.share * music.frames >= 20, `the music on hold, byte for byte (${Math.round(music.share * music.frames)} of its frames heard)`);
  // Trunk → relay → media node: the callee's voice is the call's producer, for the agent to hear.
  const fromCallee = await waitFor(
    'callee audio at the media node',
    async () => {
      const info = await media.call<{ producers: { id: string; source: string }[] }>('call.info', { conversationId: id });
      const callee = info.producers.find((p) => p.source === 'caller');
      if (!callee) return 0;
      const s = await media.call<{ stats: { type: string; packetCount?: number }[] }>('stats', { conversationId: id, id: callee.id });
      return s.stats.reduce((n, x) => n + (x.packetCount ?? 0), 0);
    },
    10_000,
    100,
  );

  const r = await sipp;
  assert.equal(r.code, 0, `sipp (the trunk) failed, so our digest was refused or the dialogue broke:\n${r.out.slice(-3000)}`);
  await waitFor('ended', async () => (await conv(id)).context.call?.state === 'ended', 10_000, 100);
  const c = await conv(id);
  tt.diagnostic(`RTP packets the trunk heard: ${e.heard.length}; callee packets the media node received: ${fromCallee}`);
  assert.equal(c.value, 'active', 'the conversation goes on after the call');
  assert.equal(c.context.call?.reason, 'the callee hung up');
  assert.equal(c.context.channel, 'webchat', 'back on the chat');
  assert.deepEqual(c.context.channels.map((x) => x.channel), ['webchat', 'voice', 'webchat'], 'one conversation, both channels');
  assert.deepEqual((notices.get(id) ?? []).map((n) => n.state), ['dialing', 'ringing', 'answered', 'ended']);
  await assert.rejects(media.call('call.info', { conversationId: id }), /no open router/, 'the media node closed the call');
  e.close();
  await done(id, chat.ws);
});

test('credentials the trunk does not accept: its verifyauth refuses them (403) and the call fails with that reason', { timeout: 40_000 }, async () => {
  const { id, chat } = await chatHeldByAnn('Call me, please');
  const sipp = trunk('uas-auth.xml', ['-key', 'user', TRUNK_USER, '-key', 'pass', 'not-our-password', '-key', 'rtp_port', '9'], 20_000, t.env.DATA_DIR);
  assert.equal((await ann(`/api/conversations/${id}/call`, { number: '+8613800138003' })).status, 200);
  await waitFor('failed', async () => (await conv(id)).context.call?.state === 'failed', 10_000, 100);
  assert.equal((await conv(id)).context.call?.reason, '403 Forbidden');
  assert.notEqual((await sipp).code, 0, 'sipp fails the call when verifyauth does not pass');
  assert.equal((await conv(id)).context.channel, 'webchat');
  await done(id, chat.ws);
});

test('the agent gives up while it rings: CANCEL, the trunk answers 487', { timeout: 40_000 }, async () => {
  const { id, chat } = await chatHeldByAnn('Please call me');
  const sipp = trunk('uas-ring.xml', [], 20_000, t.env.DATA_DIR);
  assert.equal((await ann(`/api/conversations/${id}/call`, { number: '+8613800138001' })).status, 200);
  await waitFor('ringing', async () => (await conv(id)).context.call?.state === 'ringing', 10_000, 100);
  assert.equal((await ann(`/api/calls/${id}/hangup`, {})).status, 200);
  const r = await sipp;
  assert.equal(r.code, 0, `sipp did not see CANCEL then ACK of its 487:\n${r.out.slice(-3000)}`);
  await waitFor('ended', async () => (await conv(id)).context.call?.state === 'ended', 10_000, 100);
  const c = await conv(id);
  assert.equal(c.context.call?.reason, 'the agent hung up');
  assert.equal(c.context.channel, 'webchat');
  assert.deepEqual((notices.get(id) ?? []).map((n) => n.state), ['dialing', 'ringing', 'ended']);
  await done(id, chat.ws);
});

test('outreach on voice places a call; a busy line fails it with the reason; opt-out and no phone are refused', { timeout: 40_000 }, async () => {
  const { id, chat } = await chatHeldByAnn('Hello');
  const customer = (await conv(id)).context.customer;

  // A call takes a voice slot: with none, ann is told so and nothing is dialled.
  const voiceSlots = async (n: number) => {
    await t.actors.tell('agent/ann', { type: 'profile.set', capacity: { voice: n, chat: 3, email: 5 } });
    await waitFor(`ann has ${n} voice slots`, async () => (await t.actors.ask<{ capacity: { voice: number } }>('agent/ann', { type: 'get' })).capacity.voice === n, 10_000, 50);
  };
  await voiceSlots(0);
  const noSlot = await ann(`/api/conversations/${id}/call`, { number: '+8613800138004' });
  assert.equal(noSlot.status, 409);
  assert.match(String(noSlot.data.error), /no free voice slot \(0\/0\)/);
  // Nor is the visitor's widget rung (they would accept, then land in the voice queue): refused at once.
  const asked = Date.now();
  const noSlotWidget = await ann(`/api/conversations/${id}/call`, {});
  assert.equal(noSlotWidget.status, 409);
  assert.match(String(noSlotWidget.data.error), /no free voice slot/);
  assert.ok(Date.now() - asked < 1_000, 'no ring was waited for');
  assert.equal((await conv(id)).context.channel, 'webchat', 'still on the chat');
  await voiceSlots(1);

  // A chat visitor has no phone: the call button needs a number.
  const noPhone = await ann(`/api/conversations/${id}/call`, {});
  assert.equal(noPhone.status, 409);
  assert.match(String(noPhone.data.error), /no known phone/);
  assert.equal((await ann(`/api/conversations/${id}/call`, { number: 'call me maybe' })).status, 400);

  await t.actors.tell(`customer/${customer}`, { type: 'consent.opt_out', channel: 'voice', source: 'test' });
  const refused = await ann('/api/outreach', { customerId: `customer:${customer}`, channel: 'voice', handle: '+8613800138002', text: 'About your order' });
  assert.equal(refused.status, 403);
  assert.match(String(refused.data.error), /opted out on voice/);
  await t.actors.tell(`customer/${customer}`, { type: 'consent.opt_in', channel: 'voice', source: 'test' });

  const sipp = trunk('uas-busy.xml', [], 20_000, t.env.DATA_DIR);
  const out = await ann('/api/outreach', { customerId: `customer:${customer}`, channel: 'voice', handle: '+8613800138002', text: 'About your order' });
  assert.equal(out.status, 200, JSON.stringify(out.data));
  const callConv = String(out.data.conversationId);
  assert.ok(out.data.callId, 'the call was placed');
  const r = await sipp;
  assert.equal(r.code, 0, `sipp (busy) failed:\n${r.out.slice(-3000)}`);
  await waitFor('closed', async () => (await conv(callConv)).value === 'closed', 10_000, 100);
  const c = (await conv(callConv)).context;
  assert.deepEqual({ state: c.call?.state, reason: c.call?.reason, outcome: c.outcome, channel: c.channel }, { state: 'failed', reason: '486 Busy Here', outcome: 'abandoned', channel: 'voice' });
  await done(id, chat.ws);
});

test('the trunk settings are checked at start-up, one line naming the variable', () => {
  const trunk = (env: Record<string, string>) => voiceConfig(env).trunk;
  assert.deepEqual(trunk({ SIP_TRUNK: 'sip.carrier.test', SIP_TRUNK_USER: 'acct', SIP_TRUNK_PASSWORD: 'pw' }), { host: 'sip.carrier.test', port: 5060, user: 'acct', password: 'pw', fromNumber: 'acct' });
  assert.deepEqual(trunk({ SIP_TRUNK: '10.0.0.5:5080', SIP_FROM_NUMBER: '+862100000000' }), { host: '10.0.0.5', port: 5080, user: undefined, password: undefined, fromNumber: '+862100000000' });
  assert.equal(trunk({}), undefined, 'no trunk: this edge places no calls');
  assert.throws(() => trunk({ SIP_TRUNK: 'sip://carrier' }), /^Error: config: SIP_TRUNK must be host:port/);
  assert.throws(() => trunk({ SIP_TRUNK: 'carrier:70000', SIP_FROM_NUMBER: '1' }), /SIP_TRUNK port must be from 1 to 65535/);
  assert.throws(() => trunk({ SIP_TRUNK: 'carrier', SIP_TRUNK_USER: 'acct' }), /SIP_TRUNK_USER and SIP_TRUNK_PASSWORD go together/);
  assert.throws(() => trunk({ SIP_TRUNK: 'carrier' }), /SIP_FROM_NUMBER is required with SIP_TRUNK/);
});
