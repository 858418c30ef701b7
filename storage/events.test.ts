// The conversation status sync on a real nats-server and the embedded SurrealDB: events published to
// CC_EVENTS reach the identity graph once, repeats change nothing, poison is terminated with its reason,
// and an unavailable store is retried until the change lands.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { StoreError } from './api.ts';
import { CONVERSATION_SYNC_CONSUMER, EVENTS_STREAM, ensureEventsStream, startConversationSync, type StatusWriter } from './events.ts';
import type { StoreLog } from './context.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';
import { startTestNats, waitFor, type TestNats } from '../tests/support/nats.ts';
import type { Store } from './store.ts';
import type { SurrealHandle } from './surreal.ts';

exitWhenDone();

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;
let store: Store;
let surreal: SurrealHandle;
const logged: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
const log: StoreLog = {
  debug: (obj, msg) => logged.push({ level: 'debug', obj: obj as Record<string, unknown>, msg }),
  info: (obj, msg) => logged.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
  warn: (obj, msg) => logged.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
  error: (obj, msg) => logged.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
};

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  jsm = await jetstreamManager(nc);
  ({ store, surreal } = await openTestStore());
});

after(async () => {
  await surreal?.close();
  await nats?.stop();
});

const js = () => jsm.jetstream();
const publish = (conversation: string, data: unknown, msgID: string) => js().publish(`cc.events.conversation.${conversation}`, typeof data === 'string' ? data : JSON.stringify(data), { msgID });
const key = (id: string) => id.slice(id.indexOf(':') + 1);
async function statusOf(conversationId: string) {
  const [[r]] = await surreal.db.query<[{ status: string; closed_by?: string; disposition?: string }[]]>('SELECT status, closed_by, disposition FROM type::record($id)', { id: conversationId }).collect();
  return r;
}

test('the stream is created once, by whoever comes first', async () => {
  await Promise.all([ensureEventsStream(jsm), ensureEventsStream(jsm)]);
  const info = await jsm.streams.info(EVENTS_STREAM);
  assert.deepEqual(info.config.subjects, ['cc.events.>']);
  assert.equal(info.config.retention, 'limits');
  assert.equal(info.config.max_age, 30 * 24 * 3600 * 1e9);
});

test('closes and reopens reach the graph; repeats change nothing; poison is terminated with its reason', { timeout: 30_000 }, async () => {
  const { customerId } = await store.resolve({ channel: 'web', handle: 'sync-1' });
  const a = await store.append({ customerId, channel: 'webchat', channelMessageId: 'sync-a', direction: 'in', text: 'hi', at: NOW });
  const sync = await startConversationSync({ jsm, store, log });
  try {
    const close = { type: 'conversation.status', conversation: key(a.conversationId), customer: 'u', channel: 'webchat', status: 'closed', at: NOW + 1000, by: 'agent/ann', disposition: 'resolved' };
    await publish(key(a.conversationId), close, 'c1:0');
    await waitFor('closed in the graph', async () => (await statusOf(a.conversationId)).status === 'closed');
    assert.deepEqual(await statusOf(a.conversationId), { status: 'closed', closed_by: 'agent/ann', disposition: 'resolved' });
    // The same outbox message again is dropped by the stream; the same event under another id (a replay
    // after the dedup window) is applied as a no-op.
    const dup = await publish(key(a.conversationId), close, 'c1:0');
    assert.equal(dup.duplicate, true);
    await publish(key(a.conversationId), close, 'c1:0-replay');
    await waitFor('replay seen', () => sync.stats().unchanged === 1);

    // Poison: not JSON, a wrong shape, a subject naming another conversation. Each is terminated, with the reason logged.
    await publish('x1', '{not json', 'p1');
    await publish('x2', { type: 'conversation.status', conversation: 'x2', status: 'archived', at: NOW }, 'p2');
    await publish('x3', { type: 'conversation.status', conversation: 'x4', status: 'closed', at: NOW }, 'p3');
    await waitFor('poison terminated', () => sync.stats().poison === 3);
    const reasons = logged.filter((l) => l.level === 'error').map((l) => String(l.obj.reason));
    assert.deepEqual(reasons, ['not JSON', 'malformed: status: must be open or closed', 'subject cc.events.conversation.x3 does not name conversation x4']);

    // Nothing to close in the graph: an actor id that is no store key, or no such record; acknowledged.
    await publish('o-1', { type: 'conversation.status', conversation: 'o-1', status: 'closed', at: NOW }, 's1');
    await publish('ghost', { type: 'conversation.status', conversation: 'ghost', status: 'closed', at: NOW }, 's2');
    await waitFor('skipped', () => sync.stats().skipped === 2);

    // The consumer went on after the poison: a reopen applies.
    await publish(key(a.conversationId), { ...close, status: 'open', at: NOW + 5000, by: 'customer', disposition: undefined }, 'c1:1');
    await waitFor('reopened', async () => (await statusOf(a.conversationId)).status === 'open');
    assert.equal(sync.stats().applied, 2);
    // Every message acknowledged or terminated (acks travel asynchronously: wait for the server to count them).
    const info = await waitFor('all acknowledged', async () => {
      const i = await jsm.consumers.info(EVENTS_STREAM, CONVERSATION_SYNC_CONSUMER);
      return i.num_ack_pending === 0 && i.num_pending === 0 ? i : undefined;
    });
    assert.equal(info.delivered.stream_seq, info.ack_floor.stream_seq);
  } finally {
    await sync.stop();
  }

  // A restarted sync (the same durable consumer) does not apply anything again.
  const again = await startConversationSync({ jsm, store, log });
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(again.stats(), { applied: 0, unchanged: 0, skipped: 0, poison: 0, retried: 0 });
  await again.stop();
});

test('an unavailable store is retried with backoff until the close lands', { timeout: 30_000 }, async () => {
  const { customerId } = await store.resolve({ channel: 'web', handle: 'sync-2' });
  const a = await store.append({ customerId, channel: 'webchat', channelMessageId: 'sync-b', direction: 'in', text: 'hi', at: NOW });
  let failures = 2;
  const flaky: StatusWriter = {
    conversationStatus: (req) => (failures-- > 0 ? Promise.reject(new StoreError(503, 'conversation.status: no store service is answering')) : store.conversationStatus(req)),
  };
  const sync = await startConversationSync({ jsm, store: flaky, log });
  try {
    await publish(key(a.conversationId), { type: 'conversation.status', conversation: key(a.conversationId), status: 'closed', at: NOW + 1 }, 'f1');
    await waitFor('closed after retries', async () => (await statusOf(a.conversationId)).status === 'closed', 15_000, 100);
    assert.equal(sync.stats().retried, 2);
    assert.equal(sync.stats().applied, 1);
    assert.ok(logged.some((l) => l.level === 'warn' && /503/.test(String(l.obj.reason))), 'the retry says why');
  } finally {
    await sync.stop();
  }
});
