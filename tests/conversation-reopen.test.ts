// One engine (ROLE=all) on real parts: a web chat visitor's conversation is answered, wrapped up and
// closed; the close reaches the identity graph through CC_EVENTS; the visitor writing again after the
// reopen window gets a NEW conversation (queued and offered), and writing within the window reopens it.
//
// Time: the pipeline stamps everything with the message's sentAt (the store's window, the machine's
// guard, its timers), so the later messages are handed to the engine's inbound sink (edges/inbound.ts,
// the code every edge delivers through) with sentAt a day ahead, instead of waiting a day.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { ActorClient } from '../actors/client.ts';
import type { StoreClient } from '../storage/client.ts';
import { engineSink } from '../edges/inbound.ts';
import type { InboundSink } from '../edges/message.ts';
import { agentOnDuty, answer as answerBy, chatSocket, conversationOf, startTestEngine, type TestEngine } from './support/engine.ts';
import { waitFor } from './support/nats.ts';
import { exitWhenDone } from './support/store.ts';

exitWhenDone();

const HOUR = 3_600_000;
let t: TestEngine;
let httpPort: number;
let actors: ActorClient;
let store: StoreClient;
let sink: InboundSink;

before(async () => {
  t = await startTestEngine('reopen', { WEBCHAT_SITES: 'shop:Shop' });
  ({ actors, store, httpPort } = t);
  sink = engineSink({ store, actors, log: pino({ level: 'warn' }) });
  await agentOnDuty(actors, 'ann');
});

after(async () => {
  await t?.stop();
});

const conversation = (id: string) => conversationOf(actors, id);
const answer = (id: string) => answerBy(actors, 'ann', id);
const key = (id: string) => id.slice(id.indexOf(':') + 1);

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
  const { ws, frames, welcome } = await chatSocket(`ws://127.0.0.1:${httpPort}/webchat/v1/ws?site=shop`);
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
