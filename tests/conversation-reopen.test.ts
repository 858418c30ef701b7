// One engine (ROLE=all) on real parts: a web chat visitor's conversation is answered, wrapped up and
// closed; the close reaches the identity graph through CC_EVENTS; the visitor writing again after the
// reopen window gets a NEW conversation (queued and offered), and writing within the window reopens it.
//
// Time: the pipeline stamps everything with the message's sentAt (the store's window, the machine's
// guard, its timers), so the later messages are handed to the engine's inbound sink (edges/inbound.ts,
// the code every edge delivers through) with sentAt a day ahead, instead of waiting a day.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import pino from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadConfig } from '../engine/config.ts';
import { freePort } from '../engine/nats-server.ts';
import { startEngine, type Engine } from '../engine/start.ts';
import { ActorClient } from '../actors/client.ts';
import { StoreClient } from '../storage/client.ts';
import { engineSink } from '../edges/inbound.ts';
import type { InboundSink } from '../edges/message.ts';
import type { ConversationContext } from '../machines/conversation.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from './support/nats.ts';
import { exitWhenDone } from './support/store.ts';

exitWhenDone();

const HOUR = 3_600_000;
let nats: TestNats;
let engine: Engine;
let httpPort: number;
let actors: ActorClient;
let store: StoreClient;
let sink: InboundSink;

before(async () => {
  nats = await startTestNats();
  httpPort = await freePort();
  const env = {
    NATS_URL: nats.urls[0],
    DATA_DIR: tempDir('reopen'),
    SURREAL_URL: 'mem://',
    PORT: String(httpPort),
    SMTP_PORT: String(await freePort()),
    SIP_PORT: String(await freePort()),
    MEDIA_WORKERS: '1',
    ACTOR_SHARDS: '4',
    WEBCHAT_SITES: 'shop:Shop',
  };
  const log = pino({ level: 'warn' });
  engine = await startEngine(loadConfig(env), log, env);
  const nc = await nats.connect();
  actors = new ActorClient(nc, 4);
  store = new StoreClient(nc);
  sink = engineSink({ store, actors, log });
  await actors.tell('agent/ann', { type: 'profile.set', skills: { en: 1, zh: 1 }, queues: ['support'] });
  await actors.tell('agent/ann', { type: 'login' });
});

after(async () => {
  await engine?.stop();
  await nats?.stop();
});

const conversation = (id: string) => actors.ask<{ value: string; context: ConversationContext }>(`conversation/${id}`, { type: 'get' });
const key = (id: string) => id.slice(id.indexOf(':') + 1);

async function answer(conversationId: string): Promise<void> {
  await waitFor(`offer of ${conversationId} to ann`, async () => (await conversation(conversationId)).value === 'offered', 20_000, 100);
  const ann = await actors.ask<{ context?: { offers: Record<string, { task: { id: string } }> }; offers?: Record<string, { task: { id: string } }> }>('agent/ann', { type: 'get' });
  const offers = ann.offers ?? ann.context?.offers ?? {};
  const rid = Object.keys(offers).find((k) => offers[k].task.id === conversationId);
  assert.ok(rid, `ann holds an offer for ${conversationId}`);
  await actors.tell('agent/ann', { type: 'offer.accept', reservationId: rid });
  await waitFor('active', async () => (await conversation(conversationId)).value === 'active', 10_000, 100);
}

/** Wrap-up and close, as the workspace does; then wait until the identity graph says closed. */
async function closeConversation(customerId: string, conversationId: string, at?: number): Promise<void> {
  await actors.tell(`conversation/${conversationId}`, { type: 'wrapup', ...(at ? { at } : {}) });
  await actors.tell(`conversation/${conversationId}`, { type: 'close', disposition: 'resolved', ...(at ? { at: at + 1000 } : {}) });
  await waitFor(`${conversationId} closed in the graph`, async () => (await graphStatus(customerId, conversationId)) === 'closed', 20_000, 100);
}

async function graphStatus(customerId: string, conversationId: string) {
  const view = await store.view({ customerId, viewer: 'system' });
  return view.conversations.find((c) => key(c.id) === conversationId)?.status;
}

test('after the reopen window a web chat visitor gets a new conversation; within it the old one reopens', { timeout: 90_000 }, async () => {
  // 1. The visitor writes on the socket; the conversation is answered and closed.
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/webchat/v1/ws?site=shop`);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d))));
  await new Promise((ok, fail) => {
    ws.once('open', ok);
    ws.once('error', fail);
  });
  ws.send(JSON.stringify({ type: 'hello', v: 1 }));
  const welcome = await waitFor('welcome', () => frames.find((f) => f.type === 'welcome'));
  ws.send(JSON.stringify({ type: 'message', clientMessageId: 'c1', text: 'My order is late' }));
  const ack = await waitFor('ack', () => frames.find((f) => f.type === 'ack'), 20_000);
  ws.close();
  const first = String(ack.conversationId);
  const handle = `visitor:${String(welcome.visitorId)}`;
  await answer(first);
  const customerId = `customer:${(await conversation(first)).context.customer}`;
  await closeConversation(customerId, first);
  const closedAt = (await conversation(first)).context.closedAt!;
  assert.equal((await conversation(first)).value, 'closed');

  // 2. A day and an hour later the visitor writes again, the widget still naming the old conversation.
  const later = closedAt + 25 * HOUR;
  const again = await sink.deliver({ channel: 'webchat', account: 'shop', channelMessageId: `${handle}:c2`, from: { handle }, text: 'Still nothing arrived', attachments: [], sentAt: later, thread: { conversationId: first }, meta: {} });
  const second = again.conversationId;
  assert.notEqual(second, first, 'a new conversation');
  assert.equal(again.duplicate, false);
  // It is queued and offered like any new one; the old one stays closed, in the graph and as an actor.
  await answer(second);
  assert.equal((await conversation(first)).value, 'closed');
  assert.equal(await graphStatus(customerId, first), 'closed');
  assert.equal(await graphStatus(customerId, second), 'open');
  const ctx = (await conversation(second)).context;
  assert.equal(ctx.openedAt, later, 'opened at the message time');
  assert.equal(ctx.customer, key(customerId));

  // 3. Closed again; the visitor writes within the window (an hour later): the same conversation reopens.
  await closeConversation(customerId, second, later + 60_000);
  const within = await sink.deliver({ channel: 'webchat', account: 'shop', channelMessageId: `${handle}:c3`, from: { handle }, text: 'One more thing', attachments: [], sentAt: later + 2 * HOUR, thread: { conversationId: second }, meta: {} });
  assert.equal(within.conversationId, second, 'reopened, not a new one');
  await waitFor('reopened conversation offered again', async () => (await conversation(second)).value === 'offered', 20_000, 100);
  assert.equal(await graphStatus(customerId, second), 'open');
  const view = await store.view({ customerId, viewer: 'system' });
  assert.deepEqual(
    view.conversations.map((c) => [key(c.id), c.status, c.messageCount]).sort(),
    [
      [first, 'closed', 1],
      [second, 'open', 2],
    ].sort(),
  );
  // The actor's own reopen event (applied by the engine's store role) changes nothing more in the graph.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await graphStatus(customerId, second), 'open');
});
