// The web chat / in-app edge on real parts: a nats-server, two engine nodes (Hono served on 127.0.0.1),
// the files object store, and real WebSocket clients (`ws`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import vm from 'node:vm';
import { Hono } from 'hono';
import WebSocket from 'ws';
import { Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/nats-core';
import { startTestNats, tempDir, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { serve, type HttpServer } from '../../platform/serve.ts';
import { openBlobStore } from '../../storage/blobs/open.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import type { DeliveryUpdate, InboundMessage, InboundSink } from '../message.ts';
import { webchatRoutes, type Webchat } from './routes.ts';
import { signUserToken } from './token.ts';
import { typingSubject } from './log.ts';
import { bridgeNotices } from './edge.ts';

const SITE = 'site-demo';
const APP = 'app-demo';
const APP_SECRET = randomBytes(32).toString('base64url');
const silent = { info() {}, warn() {}, error() {} };

/** The engine side as an edge sees it: one open conversation per customer, duplicates by channel message id. */
class RecordingSink implements InboundSink {
  delivered: InboundMessage[] = [];
  updates: DeliveryUpdate[] = [];
  private byMessage = new Map<string, string>();
  private open = new Map<string, string>();
  private n = 0;
  async deliver(msg: InboundMessage) {
    this.delivered.push(msg);
    const seen = this.byMessage.get(msg.channelMessageId);
    if (seen) return { conversationId: seen, duplicate: true };
    const key = `${msg.channel}/${msg.account}/${msg.from.handle}`;
    let id = this.open.get(key);
    if (!id) this.open.set(key, (id = `conv${++this.n}_${randomBytes(4).toString('hex')}`));
    this.byMessage.set(msg.channelMessageId, id);
    return { conversationId: id, duplicate: false };
  }
  async delivery(update: DeliveryUpdate) {
    this.updates.push(update);
  }
  unique(conversationId: string) {
    return new Set([...this.byMessage].filter(([, c]) => c === conversationId).map(([m]) => m)).size;
  }
}

type Frame = Record<string, any>;

/** A real WebSocket client that keeps every frame and can wait for one. */
class Client {
  frames: Frame[] = [];
  closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.frames.push(JSON.parse(String(d)));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((ok) => ws.on('close', (code, reason) => ok({ code, reason: String(reason) })));
  }
  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    const c = new Client(ws);
    await new Promise<void>((ok, fail) => {
      ws.once('open', () => ok());
      ws.once('error', fail);
    });
    return c;
  }
  send(f: unknown) {
    this.ws.send(typeof f === 'string' ? f : JSON.stringify(f));
  }
  async next(pred: (f: Frame) => boolean, ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    let from = 0;
    while (true) {
      const i = this.frames.findIndex((f, j) => j >= from && pred(f));
      if (i >= 0) return this.frames[i];
      from = this.frames.length;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(this.frames).slice(0, 600)}`);
      await new Promise<void>((ok) => {
        const t = setTimeout(ok, left);
        this.waiters.push(() => (clearTimeout(t), ok()));
      });
    }
  }
  close() {
    this.ws.close();
    return this.closed;
  }
}

interface EngineNode {
  chat: Webchat;
  http: HttpServer;
  base: string;
  registry: Registry;
}

let nats: TestNats;
let ncA: NatsConnection;
let ncB: NatsConnection;
let blobs: BlobStore;
let blobDir: string;
const sink = new RecordingSink();
let A: EngineNode;
let B: EngineNode;

async function startNode(nc: NatsConnection): Promise<EngineNode> {
  const registry = new Registry();
  const chat = await webchatRoutes({ nc, sink, blobs, sites: { [SITE]: { name: 'Demo shop' } }, apps: { [APP]: { secret: APP_SECRET } }, metrics: registry, log: silent, upload: { maxBytes: 4096 } });
  const root = new Hono();
  root.route('/webchat', chat.routes);
  const http = await serve(root.fetch, 0, '127.0.0.1');
  return { chat, http, registry, base: `127.0.0.1:${http.port}/webchat` };
}
const wsUrl = (n: EngineNode, q = `site=${SITE}`) => `ws://${n.base}/v1/ws?${q}`;

before(async () => {
  nats = await startTestNats();
  ncA = await nats.connect();
  ncB = await nats.connect();
  blobDir = tempDir('webchat-blobs');
  blobs = (await openBlobStore(`file://${blobDir}`, {})).store;
  A = await startNode(ncA);
  B = await startNode(ncB);
});

after(async () => {
  await A?.chat.close();
  await B?.chat.close();
  await A?.http.close();
  await B?.http.close();
  await nats?.stop();
  if (blobDir) rmSync(blobDir, { recursive: true, force: true });
});

/** A visitor that has said hello; returns the socket and the welcome. */
async function visitor(node: EngineNode, hello: Frame = {}) {
  const c = await Client.open(wsUrl(node));
  c.send({ type: 'hello', v: 1, ...hello });
  const welcome = await c.next((f) => f.type === 'welcome');
  return { c, welcome };
}

test('visitor: hello issues a visitor id; a message reaches the sink as a canonical message and is acked with its seq', async () => {
  const { c, welcome } = await visitor(A, { name: 'Ann' });
  assert.match(welcome.visitorId, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(welcome.conversationId, null);
  c.send({ type: 'message', clientMessageId: 'm1', text: 'Hello, where is my order?' });
  const ack = await c.next((f) => f.type === 'ack');
  const msg = sink.delivered.at(-1)!;
  assert.equal(msg.channel, 'webchat');
  assert.equal(msg.account, SITE);
  assert.equal(msg.channelMessageId, `visitor:${welcome.visitorId}:m1`);
  assert.deepEqual(msg.from, { handle: `visitor:${welcome.visitorId}`, displayName: 'Ann' });
  assert.equal(msg.text, 'Hello, where is my order?');
  assert.deepEqual(msg.attachments, []);
  assert.ok(Math.abs(msg.sentAt - Date.now()) < 5000);
  assert.equal(ack.clientMessageId, 'm1');
  assert.equal(ack.duplicate, false);
  assert.ok(ack.seq > 0);
  // The conversation is announced, and the customer's own message comes back from the log with the same seq.
  assert.equal((await c.next((f) => f.type === 'conversation')).conversationId, ack.conversationId);
  const echo = await c.next((f) => f.type === 'message' && f.clientMessageId === 'm1');
  assert.equal(echo.seq, ack.seq);
  assert.equal(echo.from, 'customer');
  await c.close();
});

test('reconnect: the same frame sent again is applied once and acked with the same seq; replies, notices and receipts flow; typing both ways', async () => {
  const first = await visitor(A);
  const visitorId = first.welcome.visitorId;
  first.c.send({ type: 'message', clientMessageId: 'dup1', text: 'one' });
  const ack1 = await first.c.next((f) => f.type === 'ack');
  await first.c.close();

  // The widget did not see the ack in time and sends the frame again after reconnecting.
  const { c, welcome } = await visitor(A, { visitorId, resume: { conversationId: ack1.conversationId, lastSeq: ack1.seq } });
  assert.equal(welcome.visitorId, visitorId);
  assert.equal(welcome.conversationId, ack1.conversationId);
  c.send({ type: 'message', clientMessageId: 'dup1', text: 'one' });
  const ack2 = await c.next((f) => f.type === 'ack');
  assert.equal(ack2.seq, ack1.seq);
  assert.equal(ack2.duplicate, true);
  const sent = sink.delivered.filter((m) => m.channelMessageId === `visitor:${visitorId}:dup1`);
  assert.equal(sent.length, 2, 'the sink saw the delivery twice, with the same channel message id');
  assert.equal(sink.unique(ack1.conversationId), 1);

  // An agent's reply through the edge arrives on the socket.
  const edge = A.chat.edges.webchat;
  const update = await edge.send({ channel: 'webchat', account: SITE, conversationId: ack1.conversationId, messageId: 'out-1', to: { handle: `visitor:${visitorId}` }, text: 'We are on it.', attachments: [] });
  assert.equal(update.state, 'sent');
  const reply = await c.next((f) => f.type === 'message' && f.from === 'agent');
  assert.equal(reply.text, 'We are on it.');
  assert.equal(reply.id, 'out-1');
  assert.equal(String(reply.seq), update.channelMessageId);
  assert.ok(!c.frames.some((f) => f.type === 'message' && f.clientMessageId === 'dup1'), 'no second echo of the re-sent frame (it was before lastSeq)');

  // Sending the same outbound message again (outbox replay) appends it once.
  const again = await edge.send({ channel: 'webchat', account: SITE, conversationId: ack1.conversationId, messageId: 'out-1', to: { handle: `visitor:${visitorId}` }, text: 'We are on it.', attachments: [] });
  assert.equal(again.channelMessageId, update.channelMessageId);

  // The widget shows it: delivered then read come back through the sink, once each.
  c.send({ type: 'delivered', seq: reply.seq });
  c.send({ type: 'read', seq: reply.seq });
  c.send({ type: 'read', seq: reply.seq });
  await waitFor('read update', () => sink.updates.find((u) => u.messageId === 'out-1' && u.state === 'read'), 5000);
  await new Promise((r) => setTimeout(r, 200));
  const forOut1 = sink.updates.filter((u) => u.messageId === 'out-1');
  assert.deepEqual(forOut1.map((u) => u.state), ['delivered', 'read']);
  assert.equal(forOut1[1].conversationId, ack1.conversationId);
  assert.equal(forOut1[1].channel, 'webchat');

  // Notices and agent receipts are frames of the log.
  await A.chat.publishNotice(ack1.conversationId, { kind: 'queue.position', position: 3, estimatedWaitSec: 125.4 });
  const notice = await c.next((f) => f.type === 'notice');
  assert.deepEqual([notice.kind, notice.position, notice.estimatedWaitSec], ['queue.position', 3, 125]);
  await A.chat.publishReceipt(ack1.conversationId, 'read', ack1.seq);
  assert.equal((await c.next((f) => f.type === 'receipt')).upToSeq, ack1.seq);

  // Typing: the agent's comes to the socket (core NATS), the customer's goes out on the same subject.
  const heard: unknown[] = [];
  const sub = ncB.subscribe(typingSubject(ack1.conversationId), { callback: (_e, m) => void heard.push(m.json()) });
  await ncB.flush();
  ncB.publish(typingSubject(ack1.conversationId), JSON.stringify({ from: 'agent', typing: true }));
  assert.equal((await c.next((f) => f.type === 'typing')).typing, true);
  c.send({ type: 'typing', typing: true });
  await waitFor('customer typing', () => heard.find((h) => (h as { from: string }).from === 'customer'), 5000);
  sub.unsubscribe();

  // The conversation actor's notices reach web chat conversations through the bridge; others are left alone.
  const bridge = bridgeNotices(ncA, A.chat.log, silent);
  await ncA.flush();
  ncB.publish(`cc.conversation.${ack1.conversationId}.notice`, JSON.stringify({ kind: 'queue.position', position: 1, estimatedWaitSec: 30 }));
  ncB.publish('cc.conversation.someEmailConversation.notice', JSON.stringify({ kind: 'queue.position', position: 1, estimatedWaitSec: 30 }));
  const bridged = await c.next((f) => f.type === 'notice' && f.position === 1);
  assert.equal(bridged.estimatedWaitSec, 30);
  await new Promise((r) => setTimeout(r, 300));
  const none = await A.chat.log.jsm.streams.getMessage('CC_WEBCHAT', { last_by_subj: 'cc.webchat.someEmailConversation' }).catch(() => null);
  assert.equal(none, null);
  bridge.stop();
  await c.close();
});

test('resume across nodes: frames sent while away arrive exactly once, in order, on another node', async () => {
  const { c, welcome } = await visitor(A);
  c.send({ type: 'message', clientMessageId: 'x1', text: 'hi' });
  const ack = await c.next((f) => f.type === 'ack');
  await c.next((f) => f.seq === ack.seq && f.type === 'message');
  const lastSeq = Math.max(...c.frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq));
  await c.close();

  const cid = ack.conversationId;
  const to = { handle: `visitor:${welcome.visitorId}` };
  const missed: number[] = [];
  for (const [i, text] of ['first', 'second'].entries()) {
    const u = await A.chat.edges.webchat.send({ channel: 'webchat', account: SITE, conversationId: cid, messageId: `away-${i}`, to, text, attachments: [] });
    missed.push(Number(u.channelMessageId));
  }
  missed.push(await A.chat.publishNotice(cid, { kind: 'agent.joined', agentName: 'Bo' }));

  const back = await visitor(B, { visitorId: welcome.visitorId, resume: { conversationId: cid, lastSeq } });
  assert.equal(back.welcome.conversationId, cid);
  await back.c.next((f) => f.seq === missed.at(-1));
  // A reply sent through node A after the resume reaches the socket held by node B.
  const live = await A.chat.edges.webchat.send({ channel: 'webchat', account: SITE, conversationId: cid, messageId: 'live-1', to, text: 'still there?', attachments: [] });
  await back.c.next((f) => f.id === 'live-1');
  await new Promise((r) => setTimeout(r, 200));
  const seqs = back.c.frames.filter((f) => typeof f.seq === 'number' && f.type !== 'ack').map((f) => f.seq);
  assert.deepEqual(seqs, [...missed, Number(live.channelMessageId)]);
  await back.c.close();
});

test('in-app user: a valid token gives channel app with verified contacts; bad and expired tokens close with 4401 and the reason', async () => {
  const user = { id: 'u-1001', name: 'Li Lei', phone: '+8613800000000', email: 'lei@example.com' };
  const token = await signUserToken(APP_SECRET, user, Math.floor(Date.now() / 1000) + 600);
  const c = await Client.open(wsUrl(A, `app=${APP}`));
  c.send({ type: 'hello', v: 1, user, token });
  const welcome = await c.next((f) => f.type === 'welcome');
  assert.equal(welcome.userId, 'u-1001');
  assert.equal(welcome.visitorId, undefined);
  c.send({ type: 'message', clientMessageId: 'a1', text: '你好' });
  await c.next((f) => f.type === 'ack');
  const msg = sink.delivered.at(-1)!;
  assert.equal(msg.channel, 'app');
  assert.equal(msg.account, APP);
  assert.equal(msg.channelMessageId, `${APP}:u-1001:a1`);
  assert.deepEqual(msg.from, { handle: `${APP}:u-1001`, displayName: 'Li Lei', phone: '+8613800000000', email: 'lei@example.com', verified: { phone: true, email: true } });
  await c.close();

  const cases: [string, Frame, string, RegExp][] = [
    ['tampered user', { user: { ...user, phone: '+8613900000000' }, token }, 'bad_token', /signature/],
    ['expired', { user, token: await signUserToken(APP_SECRET, user, Math.floor(Date.now() / 1000) - 3600) }, 'expired_token', /expired/],
    ['no token', { user }, 'bad_token', /needs user and token/],
  ];
  for (const [what, hello, code, reason] of cases) {
    const bad = await Client.open(wsUrl(A, `app=${APP}`));
    bad.send({ type: 'hello', v: 1, ...hello });
    const err = await bad.next((f) => f.type === 'error');
    assert.equal(err.code, code, what);
    assert.match(err.reason, reason, what);
    const closed = await bad.closed;
    assert.equal(closed.code, 4401, what);
    assert.match(closed.reason, reason, what);
  }
});

test('unknown site or app keys are refused before the upgrade with a reason; a wrong protocol version closes 4400', async () => {
  for (const q of ['site=nope-nope', 'app=nope-nope', '']) {
    const ws = new WebSocket(`ws://${A.base}/v1/ws?${q}`);
    const res = await new Promise<{ status: number; reason: string }>((ok, fail) => {
      ws.on('unexpected-response', (_req, r) => ok({ status: r.statusCode ?? 0, reason: String(r.headers['x-cc-reason']) }));
      ws.on('open', () => fail(new Error(`upgrade accepted for ${q}`)));
      ws.on('error', () => undefined);
    });
    ws.terminate();
    assert.equal(res.status, q ? 403 : 400, q);
    assert.match(res.reason, q ? /unknown (site|app) key "nope-nope"/ : /name the site/, q);
  }
  const plain = await fetch(`http://${A.base}/v1/ws?site=${SITE}`);
  assert.equal(plain.status, 426);
  const c = await Client.open(wsUrl(A));
  c.send({ type: 'hello', v: 99 });
  assert.equal((await c.next((f) => f.type === 'error')).code, 'bad_version');
  assert.equal((await c.closed).code, 4400);
  const metrics = await A.registry.metrics();
  assert.match(metrics, /cc_webchat_rejected_total\{code="unknown_site"\} [1-9]/);
});

test('bad frames: malformed JSON, oversize, invalid, before hello and too many get error frames and the socket keeps working', async () => {
  const c = await Client.open(wsUrl(A));
  c.send({ type: 'message', clientMessageId: 'early', text: 'hi' });
  assert.equal((await c.next((f) => f.type === 'error')).code, 'hello_required');
  c.send({ type: 'hello', v: 1 });
  await c.next((f) => f.type === 'welcome');
  c.send('{"type": "message", oops');
  const badJson = await c.next((f) => f.code === 'bad_json');
  assert.match(badJson.reason, /not JSON/);
  c.send({ type: 'message', clientMessageId: 'big', text: 'x'.repeat(20_000) });
  assert.match((await c.next((f) => f.code === 'too_large')).reason, /larger than 16384 bytes/);
  c.send({ type: 'message', clientMessageId: 'long', text: 'y'.repeat(5000) });
  const invalid = await c.next((f) => f.code === 'bad_frame');
  assert.match(invalid.reason, /text must be at most 4000/);
  assert.equal(invalid.ref, 'long');
  c.send({ type: 'shout' });
  assert.ok(await c.next((f) => f.code === 'bad_frame' && /type/.test(f.reason)));
  c.send({ type: 'ping' });
  assert.ok(await c.next((f) => f.type === 'pong'));
  c.send({ type: 'message', clientMessageId: 'ok1', text: 'still works' });
  assert.equal((await c.next((f) => f.type === 'ack')).clientMessageId, 'ok1');
  for (let i = 0; i < 30; i++) c.send({ type: 'ping' });
  const limited = await c.next((f) => f.code === 'rate_limited');
  assert.ok(limited.retryAfterMs > 0);
  const metrics = await A.registry.metrics();
  assert.match(metrics, /cc_webchat_rejected_total\{code="bad_json"\} [1-9]/);
  assert.match(metrics, /cc_webchat_rejected_total\{code="too_large"\} [1-9]/);
  assert.match(metrics, /cc_webchat_rejected_total\{code="rate_limited"\} [1-9]/);
  await c.close();
});

test('uploads: limits answer 413/415 with a reason; a stored file can be sent only by its uploader and read back', async () => {
  const { c, welcome } = await visitor(A);
  const up = (body: Uint8Array<ArrayBuffer> | string, type: string, visitorId = welcome.visitorId) =>
    fetch(`http://${A.base}/v1/upload?site=${SITE}`, { method: 'POST', headers: { 'content-type': type, 'x-cc-visitor': visitorId, 'x-filename': encodeURIComponent('收据 1.png') }, body });
  const html = await up('<script>alert(1)</script>', 'text/html');
  assert.equal(html.status, 415);
  assert.match(((await html.json()) as { error: string }).error, /text\/html.*not accepted/);
  const big = await up(new Uint8Array(5000), 'image/png');
  assert.equal(big.status, 413);
  assert.match(((await big.json()) as { error: string }).error, /more than 4096/);
  const png = new Uint8Array(randomBytes(1000));
  const ok = await up(png, 'image/png');
  assert.equal(ok.status, 201);
  const att = (await ok.json()) as { key: string; name: string; size: number; sha256: string; contentType: string };
  assert.equal(att.name, '收据 1.png');
  assert.equal(att.size, 1000);
  assert.match(att.key, /^webchat\/.+\/[0-9a-f]{32}\/_{2}_1\.png$/);

  c.send({ type: 'message', clientMessageId: 'pic', attachments: [att] });
  await c.next((f) => f.type === 'ack' && f.clientMessageId === 'pic');
  assert.deepEqual(sink.delivered.at(-1)!.attachments, [att]);
  const back = await fetch(`http://${A.base}/v1/files?key=${encodeURIComponent(att.key)}`);
  assert.equal(back.headers.get('content-type'), 'image/png');
  assert.deepEqual(new Uint8Array(await back.arrayBuffer()), png);

  // Another visitor cannot pass this file off as theirs.
  const other = await visitor(A);
  other.c.send({ type: 'message', clientMessageId: 'steal', attachments: [att] });
  const err = await other.c.next((f) => f.type === 'error');
  assert.equal(err.code, 'bad_attachment');
  assert.match(err.reason, /not uploaded by this customer/);
  await other.c.close();
  await c.close();
});

test('widget.js is served as JavaScript, and its protocol client resumes after a restart of the page without loss or duplicates', async () => {
  const res = await fetch(`http://${A.base}/v1/widget.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/javascript/);
  const source = await res.text();
  assert.equal(source, readFileSync(new URL('./widget.js', import.meta.url), 'utf8'));
  // Small: the call button is about 2 KB of it, the rating (csat) about 2.5 KB; the call module itself
  // (/v1/call.js) loads only when pressed.
  assert.ok(source.length < 23_000, `widget is ${source.length} bytes`);

  // The widget's own code, without a DOM: its client over a real socket, with a page's localStorage.
  const ctx = vm.createContext({ WebSocket, setTimeout, clearTimeout, crypto: globalThis.crypto, JSON, Math, Date });
  vm.runInContext(source, ctx);
  /** The widget's protocol client, as much of it as this test drives. */
  interface WidgetClient {
    on(listener: (f: Frame) => void): void;
    send(text: string): void;
    drop(): void;
    close(): void;
    state: { visitorId: string; history: Frame[]; pending: unknown[] };
  }
  const api = (ctx as { CCWebchat: { createClient(o: object): WidgetClient; pickStrings(l: string): { send: string } } }).CCWebchat;
  assert.equal(api.pickStrings('zh-CN').send, '发送');
  assert.equal(api.pickStrings('en-GB').send, 'Send');
  const kept = new Map<string, string>();
  const storage = { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => void kept.set(k, v) };
  const seen: Frame[] = [];
  const page1 = api.createClient({ url: wsUrl(A), site: SITE, storage, backoffMs: 50 });
  page1.on((f: Frame) => seen.push(f));
  await waitFor('welcome', () => seen.find((f) => f.type === 'welcome'), 5000);
  page1.send('from the widget');
  const ack = await waitFor('ack', () => seen.find((f) => f.type === 'ack'), 5000);
  const cid = ack.conversationId as string;
  // A dropped connection reconnects by itself and resumes.
  page1.drop();
  await waitFor('second welcome', () => seen.filter((f) => f.type === 'welcome').length === 2, 5000);
  page1.close();
  const handle = `visitor:${page1.state.visitorId}`;
  await A.chat.edges.webchat.send({ channel: 'webchat', account: SITE, conversationId: cid, messageId: 'w-1', to: { handle }, text: 'reply while the page was closed', attachments: [] });

  const seen2: Frame[] = [];
  const page2 = api.createClient({ url: wsUrl(B), site: SITE, storage, backoffMs: 50 });
  page2.on((f: Frame) => seen2.push(f));
  await waitFor('missed reply', () => seen2.find((f) => f.id === 'w-1'), 5000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(seen2.filter((f) => typeof f.seq === 'number' && f.type !== 'ack').length, 1, 'only the missed frame is sent again');
  assert.deepEqual(page2.state.history.map((f: Frame) => f.text), ['from the widget', 'reply while the page was closed']);
  assert.equal(page2.state.pending.length, 0);
  page2.close();
});

test('protocol v2: v1 clients are served as before, call frames need v2 and an engine with voice, and are checked', async () => {
  const v1 = await visitor(A);
  assert.equal(v1.welcome.v, 1);
  assert.equal('voice' in v1.welcome, false, 'a v1 welcome is unchanged');
  v1.c.send({ type: 'call.start', ref: 'r1' });
  const old = await v1.c.next((f) => f.type === 'error' && f.ref === 'r1');
  assert.equal(old.code, 'bad_frame');
  assert.match(old.reason, /protocol v2/);

  const v2 = await visitor(A, { v: 2 });
  assert.equal(v2.welcome.v, 2);
  assert.equal(v2.welcome.voice, false, 'this edge was started without voice');
  v2.c.send({ type: 'call.start', ref: 'r2' });
  assert.deepEqual(await v2.c.next((f) => f.ref === 'r2'), { type: 'error', code: 'call_unavailable', reason: 'calls are not enabled on this server', ref: 'r2' });
  v2.c.send({ type: 'call.connect', ref: 'r3', direction: 'send', dtlsParameters: { fingerprints: [{ algorithm: 'md5', value: 'zz' }] } });
  const bad = await v2.c.next((f) => f.ref === 'r3');
  assert.equal(bad.code, 'bad_frame');
  assert.match(bad.reason, /dtlsParameters\.fingerprints\.0\.algorithm/);
  const noModule = await fetch(`http://${A.base}/v1/call.js`);
  assert.equal(noModule.status, 404);
  v1.c.ws.close();
  v2.c.ws.close();
});

test('protocol v3: csat frames need v3, are checked, and are refused with the reason where ratings are not collected', async () => {
  const v2 = await visitor(A, { v: 2 });
  v2.c.send({ type: 'csat', conversationId: 'c1', score: 4 });
  const old = await v2.c.next((f) => f.type === 'error' && f.ref === 'c1');
  assert.equal(old.code, 'bad_frame');
  assert.match(old.reason, /protocol v3/);

  const v3 = await visitor(A, { v: 3 });
  assert.equal(v3.welcome.v, 3);
  v3.c.send({ type: 'csat', conversationId: 'c2', score: 6 });
  const high = await v3.c.next((f) => f.type === 'error' && f.ref === 'c2');
  assert.deepEqual([high.code, high.reason], ['bad_frame', 'score: score must be 1 to 5']);
  v3.c.send({ type: 'csat', conversationId: 'c3', score: 4, comment: 'x'.repeat(1001) });
  assert.match((await v3.c.next((f) => f.type === 'error' && f.ref === 'c3')).reason, /comment must be at most 1000 characters/);
  // This edge was started without a rating taker: refused with the reason, the socket stays.
  v3.c.send({ type: 'csat', conversationId: 'c4', score: 4 });
  assert.deepEqual(await v3.c.next((f) => f.ref === 'c4'), { type: 'error', code: 'csat_refused', reason: 'ratings are not collected on this server', ref: 'c4' });
  v3.c.send({ type: 'ping' });
  await v3.c.next((f) => f.type === 'pong');
  v2.c.ws.close();
  v3.c.ws.close();
});
