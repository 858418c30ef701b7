// Channel failover on a real engine: nobody in the queue can take calls, so after the menu the IVR asks
// the queue (staffing), offers SMS and web chat, and sipp presses 1. The engine's SMS edge sends the link
// to an SMSC on loopback (submit_sm to the caller's number), the call ends with our BYE, and the
// conversation the call opened stays open as a chat (a chat agent takes it): its history holds the call
// and the SMS, and the link's token names that same conversation. Last, with the media node stopped, an
// INVITE is answered 503 and the caller gets the chat link by SMS all the same.
/// <reference path="../sms/smpp.d.ts" />
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import smpp from 'smpp';
import { DEFAULT_MENU } from '../../engine/voice.ts';
import { freePort } from '../../engine/nats-server.ts';
import { parseMenu } from '../../machines/ivr.ts';
import { startMediaService, type MediaService } from '../../media/service.ts';
import { answer, chatSocket, conversationOf, startTestEngine, type TestEngine } from '../../tests/support/engine.ts';
import { waitFor } from '../../tests/support/nats.ts';
import { verifyChatLink } from '../webchat/link.ts';
import { startSipEdge, type SipEdge } from './edge.ts';
import { engineFailover } from './failover.ts';
import { ear, keysPcap, promptHeard, PROMPTS, sipp } from './sipp.testing.ts';
import { engineVoice } from './voice.ts';
import { startSmsc, type TestSmsc } from '../../tests/support/peers.ts';

const CALLER = '+8613800138222';
const LINK_SECRET = randomBytes(32).toString('base64url');

let t: TestEngine;
let media: MediaService;
let edge: SipEdge;
let smsc: TestSmsc;

before(async () => {
  assert.ok(existsSync(join(PROMPTS, 'failover.offer.en.ul')), `prompts missing in ${PROMPTS}: run sh scripts/setup-voice.sh`);
  smsc = await startSmsc();
  t = await startTestEngine('sip-failover', {
    ROLE: 'core,edge,store',
    SMS_ACCOUNTS: '10690001',
    SMSC_URL: `smpp://127.0.0.1:${smsc.port}`,
    SMSC_SYSTEM_ID: 'cc',
    SMSC_PASSWORD: randomBytes(6).toString('hex'),
    // The engine's web chat takes the links this test's edge signs.
    CHAT_LINK_URL: 'https://shop.example.test/help',
    CHAT_LINK_SECRET: LINK_SECRET,
  });
  const nc = await t.nats.connect();
  media = await startMediaService(nc, { pool: { size: 1, logLevel: 'error' }, promptsDir: PROMPTS, listenIp: '127.0.0.1' });
  edge = await startSipEdge({
    port: 0,
    host: '127.0.0.1',
    nc,
    voice: engineVoice({ store: t.store, actors: t.actors }),
    menu: parseMenu(DEFAULT_MENU),
    account: '+862100000000',
    holdPrompt: 'music.hold',
    failover: engineFailover({ store: t.store, actors: t.actors, smsAccount: '10690001', queue: 'support', link: { url: 'https://shop.example.test/help', secret: LINK_SECRET } }),
  });
  // An agent who takes chats only: on duty in the queue, but nobody can take a call.
  await t.actors.tell('agent/cleo', { type: 'profile.set', skills: { en: 1 }, queues: ['support'], capacity: { voice: 0, chat: 3, email: 5 } });
  await t.actors.tell('agent/cleo', { type: 'login' });
});

after(async () => {
  await edge?.stop();
  await media?.stop();
  await t?.stop();
  await smsc?.close();
});

/** The SMS text as sent: its parts (UDH-concatenated when long) joined in order. */
function smsText(pdus: smpp.PDU[]): string {
  const parts = pdus.map((p) => {
    const sm = p.short_message as { message?: string | Buffer; udh?: Buffer[] | Buffer } | string | Buffer;
    const message = typeof sm === 'object' && sm !== null && 'message' in sm ? sm.message : sm;
    const udh = typeof sm === 'object' && sm !== null && 'udh' in sm ? sm.udh : undefined;
    const h = Array.isArray(udh) ? udh[0] : udh;
    return { n: h ? h[h.length - 1] : 1, text: String(message) };
  });
  return parts
    .sort((a, b) => a.n - b.n)
    .map((p) => p.text)
    .join('');
}

test('no voice agent on duty: the caller presses 1 for SMS, gets the chat link, and the conversation goes on', { timeout: 90_000 }, async (tt) => {
  const staffing = await t.actors.ask<{ onDuty: number }>('queue/support', { type: 'staffing', channel: 'voice' });
  assert.equal(staffing.onDuty, 0, 'nobody in support takes calls');

  const caller = await ear();
  keysPcap(join(t.env.DATA_DIR, 'keys-1-1.pcap'), [
    { digit: '1', atMs: 0 },
    { digit: '1', atMs: 4000 },
  ]);
  const run = sipp({ port: edge.port, scenario: 'uac-failover.xml', args: ['-key', 'rtp_port', String(caller.port), '-key', 'caller', CALLER, '-mi', '127.0.0.1', '-mp', String(await freePort())], timeoutMs: 60_000, cwd: t.env.DATA_DIR });

  const callId = await waitFor('call set up', () => [...edge.calls.keys()][0], 10_000, 50);
  const conversationId = await waitFor('conversation after the offer was accepted', () => edge.calls.get(callId)?.conversationId, 20_000, 50);
  assert.equal(edge.calls.get(callId)?.continuedOn, 'sms');
  assert.deepEqual(edge.calls.get(callId)?.digits, ['1', '1'], 'the menu key, then the offer key');

  // The SMS with the link reaches the SMSC, addressed to the caller, from our number.
  const mine = await waitFor('submit_sm with the link', () => {
    const to = smsc.submits.filter((p) => p.destination_addr === CALLER.slice(1) || p.destination_addr === CALLER);
    const text = smsText(to);
    return text.includes('cc_link=') && /or reply to this message\.$/.test(text) ? { to, text } : undefined;
  }, 20_000, 100);
  assert.equal(mine.to[0].source_addr, '10690001');
  const url = new URL(/https:\S+/.exec(mine.text)![0]);
  assert.equal(url.origin + url.pathname, 'https://shop.example.test/help');
  const link = await verifyChatLink(LINK_SECRET, url.searchParams.get('cc_link')!);
  assert.ok(link.ok, `the link verifies: ${link.ok ? '' : link.reason}`);
  assert.equal(link.link.conversationId, conversationId, 'the link continues the conversation the call opened');
  assert.equal(link.link.phone, CALLER);

  // The caller heard the offer, then the goodbye; the engine hung up (sipp answered our BYE).
  const r = await run;
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  const offer = promptHeard(caller.heard, 'failover.offer.en');
  const bye = promptHeard(caller.heard, 'failover.sent.en');
  assert.ok(offer.share > 0.2, `the offer was heard (${Math.round(offer.share * 100)}% of it before the key)`);
  assert.ok(bye.share >= 0.9 && bye.lastIndex > offer.lastIndex, `the goodbye was heard in full after the offer (${Math.round(bye.share * 100)}%)`);
  await waitFor('call gone', () => edge.calls.size === 0, 5000, 50);

  // The conversation stays open as a chat, with the SMS delivered to the SMSC and the call in its history.
  const c = await waitFor('SMS sent', async () => {
    const x = await conversationOf(t.actors, conversationId);
    return x.context.deliveries?.[`failover-${conversationId}`]?.state === 'sent' ? x : undefined;
  }, 20_000, 100);
  assert.ok(['queued', 'offered'].includes(c.value), `waiting for a chat agent, not ended by the hang-up (${c.value})`);
  assert.equal(c.context.channel, 'sms');
  assert.equal(c.context.task?.attrs.callId, callId);
  assert.equal(c.context.task?.attrs.failoverFrom, 'voice');
  assert.deepEqual(c.context.replyTo?.sms, { account: '10690001', handle: CALLER });
  const view = await t.store.view({ customerId: `customer:${c.context.customer}`, viewer: 'system', limit: 20 });
  const here = view.messages.filter((m) => m.conversationId === `conversation:${conversationId}`);
  assert.deepEqual(here.map((m) => [m.channel, m.direction]).sort(), [['sms', 'out'], ['voice', 'in']], 'the call and the SMS, one conversation');
  await answer(t.actors, 'cleo', conversationId);
  assert.equal((await conversationOf(t.actors, conversationId)).context.agent, 'cleo', 'a chat agent holds the conversation the call opened');

  // The caller answers the SMS: it lands in the same conversation, after the call and the link.
  const status = await new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: CALLER.slice(1), source_addr_ton: 1, destination_addr: '10690001', short_message: 'Thanks, I will write here' }), (r) => ok(r.command_status)));
  assert.equal(status, 0);
  const history = await waitFor('the SMS reply in the conversation', async () => {
    const v = await t.store.view({ customerId: `customer:${c.context.customer}`, viewer: 'system', limit: 20 });
    const m = v.messages.filter((x) => x.conversationId === `conversation:${conversationId}`);
    return m.some((x) => x.channel === 'sms' && x.direction === 'in') ? m : undefined;
  }, 15_000, 100);
  assert.deepEqual(history.map((m) => [m.channel, m.direction]), [['sms', 'in'], ['sms', 'out'], ['voice', 'in']], 'newest first: the reply, the link, the call');

  // The caller opens the link: the widget says hello with it, joins that conversation, and writes there.
  const chat = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`, { link: url.searchParams.get('cc_link') });
  assert.equal(chat.welcome.conversationId, conversationId, 'the chat link joins the conversation the call opened');
  chat.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm1', text: 'Here on the chat now' }));
  const ack = await waitFor('ack', () => chat.frames.find((f) => f.type === 'ack'));
  assert.equal(ack.conversationId, conversationId);
  const joined = await waitFor('the chat message in the conversation', async () => {
    const v = await t.store.view({ customerId: `customer:${c.context.customer}`, viewer: 'system', limit: 20 });
    return v.messages.find((x) => x.conversationId === `conversation:${conversationId}` && x.channel === 'webchat') ? v : undefined;
  }, 15_000, 100);
  assert.ok(joined.identities.some((i) => i.channel === 'web'), "the visitor is linked to the caller's customer");
  // A forged link is refused with the reason; the visitor still chats, in a conversation of their own.
  const forged = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`, { link: `${url.searchParams.get('cc_link')!.slice(0, -2)}AA` });
  assert.equal(forged.welcome.conversationId, null);
  assert.match(String((await waitFor('bad_link', () => forged.frames.find((f) => f.code === 'bad_link'))).reason ?? ''), /signature/);
  chat.ws.close();
  forged.ws.close();
  tt.diagnostic(`SMS (${mine.to.length} part${mine.to.length > 1 ? 's' : ''}): ${mine.text}`);
  caller.close();
});

test('chat links: a forged, altered, expired or malformed token is refused with the reason', async () => {
  const { signChatLink } = await import('../webchat/link.ts');
  const now = Date.UTC(2026, 0, 1);
  const token = await signChatLink(LINK_SECRET, { conversationId: 'c42', phone: CALLER, expSec: now / 1000 + 60 });
  assert.deepEqual(await verifyChatLink(LINK_SECRET, token, now), { ok: true, link: { conversationId: 'c42', phone: CALLER, expSec: now / 1000 + 60 } });
  assert.deepEqual(await verifyChatLink('another secret of at least 32 chars!', token, now), { ok: false, reason: 'chat link signature does not match' });
  const [l1, payload, sig] = token.split('.');
  const other = Buffer.from(JSON.stringify({ c: 'c43', p: CALLER, e: now / 1000 + 60 })).toString('base64url');
  assert.equal((await verifyChatLink(LINK_SECRET, `${l1}.${other}.${sig}`, now)).ok, false, 'another conversation under the same signature');
  assert.deepEqual(await verifyChatLink(LINK_SECRET, token, now + 61_000), { ok: false, reason: 'chat link expired' });
  assert.deepEqual(await verifyChatLink(LINK_SECRET, `${payload}`, now), { ok: false, reason: 'a chat link looks like l1.<payload>.<signature>' });
});

// Last: it stops the media node.
test('the media node is down at the INVITE: 503, and the caller gets the chat link by SMS', { timeout: 30_000 }, async () => {
  await media.stop();
  const caller = '+8613800138333';
  const sock = createSocket('udp4');
  await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', ok));
  const answers: string[] = [];
  sock.on('message', (b) => answers.push(b.toString()));
  const sdp = ['v=0', 'o=trunk 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n');
  const local = `127.0.0.1:${sock.address().port}`;
  const invite = [
    `INVITE sip:ivr@127.0.0.1:${edge.port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${local};branch=z9hG4bK-media-down;rport`,
    `From: <sip:${caller}@${local}>;tag=md1`,
    `To: <sip:ivr@127.0.0.1:${edge.port}>`,
    'Call-ID: media-down-1@test',
    'CSeq: 1 INVITE',
    `Contact: <sip:${caller}@${local}>`,
    'Max-Forwards: 70',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n');
  sock.send(invite, edge.port, '127.0.0.1');
  const final = await waitFor('a final answer', () => answers.find((a) => /^SIP\/2\.0 [2-6]\d\d /.test(a)), 10_000, 50);
  assert.match(final, /^SIP\/2\.0 503 Service Unavailable/);
  sock.close();
  const text = await waitFor('the SMS with the link', () => {
    // A long SMS comes in parts: wait for the last one, or the link may be cut short.
    const x = smsText(smsc.submits.filter((p) => p.destination_addr === caller.slice(1) || p.destination_addr === caller));
    return x.includes('cc_link=') && /or reply to this message\.$/.test(x) ? x : undefined;
  }, 20_000, 100);
  const link = await verifyChatLink(LINK_SECRET, new URL(/https:\S+/.exec(text)![0]).searchParams.get('cc_link')!);
  assert.ok(link.ok, `the link verifies: ${link.ok ? '' : link.reason}`);
  const c = await conversationOf(t.actors, link.link.conversationId);
  assert.equal(c.context.channel, 'sms');
  assert.equal(c.context.task?.attrs.reason, 'media unavailable');
  assert.equal(c.context.task?.attrs.callId, 'media-down-1@test');
});
