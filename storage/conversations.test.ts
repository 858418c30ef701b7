// Conversations close in the graph too: the status operation, and where a customer's next message goes
// after a close (the same conversation reopened within the window, a new one after it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from './api.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';
import type { Store } from './store.ts';

exitWhenDone();

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

async function statusOf(store: Store, customerId: string, conversationId: string) {
  const view = await store.view({ customerId, viewer: 'system' });
  return view.conversations.find((c) => c.id === conversationId)?.status;
}

async function row(store: Store, conversationId: string) {
  const [[r]] = await store.ctx.db
    .query<[{ status: string; status_at?: number; closed_at?: number; closed_by?: string; disposition?: string }[]]>('SELECT status, status_at, closed_at, closed_by, disposition FROM type::record($id)', { id: conversationId })
    .collect();
  // Fields a row does not have come back as undefined: leave them out for comparing.
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as typeof r;
}

test('conversation.status closes and reopens; repeats and older news change nothing', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId } = await store.resolve({ channel: 'web', handle: 'v-status' });
  const first = await store.append({ customerId, channel: 'webchat', channelMessageId: 'st-1', direction: 'in', text: 'hi', at: NOW });
  assert.equal(first.created, true);
  const c = first.conversationId;

  const closed = await store.conversationStatus({ conversationId: c, status: 'closed', at: NOW + 60_000, by: 'agent/ann', disposition: 'resolved' });
  assert.deepEqual(closed, { conversationId: c, status: 'closed', statusAt: NOW + 60_000, changed: true });
  assert.deepEqual(await row(store, c), { status: 'closed', status_at: NOW + 60_000, closed_at: NOW + 60_000, closed_by: 'agent/ann', disposition: 'resolved' });
  assert.equal(await statusOf(store, customerId, c), 'closed', 'the customer view shows it closed');

  // The same close again (a redelivery): nothing written.
  assert.equal((await store.conversationStatus({ conversationId: c, status: 'closed', at: NOW + 60_000, by: 'agent/ann' })).changed, false);
  // An open older than the close (late news from before it): ignored.
  const stale = await store.conversationStatus({ conversationId: c, status: 'open', at: NOW + 30_000 });
  assert.deepEqual(stale, { conversationId: c, status: 'closed', statusAt: NOW + 60_000, changed: false });
  // A reopen after the close applies and clears the closing details.
  assert.equal((await store.conversationStatus({ conversationId: c, status: 'open', at: NOW + 90_000 })).changed, true);
  assert.deepEqual(await row(store, c), { status: 'open', status_at: NOW + 90_000 });
  // The first close, redelivered after the reopen, does not undo it.
  assert.equal((await store.conversationStatus({ conversationId: c, status: 'closed', at: NOW + 60_000 })).changed, false);
  assert.equal(await statusOf(store, customerId, c), 'open');

  await assert.rejects(store.conversationStatus({ conversationId: 'conversation:nobody', status: 'closed', at: NOW }), (e: StoreError) => e.code === 404 && /no such conversation/.test(e.reason));
  await assert.rejects(store.call('conversation.status', { conversationId: c, status: 'archived', at: NOW }), (e: StoreError) => e.code === 400 && /status: must be open or closed/.test(e.reason));
  await assert.rejects(store.call('conversation.status', { conversationId: 'customer:x', status: 'closed', at: NOW }), (e: StoreError) => e.code === 400 && /conversationId/.test(e.reason));
  await assert.rejects(store.call('conversation.status', { conversationId: c, status: 'closed', at: -1 }), (e: StoreError) => e.code === 400 && /at: must not be negative/.test(e.reason));
  await surreal.close();
});

test('a message within the reopen window reopens the closed conversation; after it, a new one starts', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId, identityId } = await store.resolve({ channel: 'web', handle: 'v-window' });
  const msg = (id: string, at: number) => store.append({ customerId, identityId, channel: 'webchat', channelMessageId: id, direction: 'in', text: id, at });

  const a = await msg('w-1', NOW);
  const closedAt = NOW + HOUR;
  await store.conversationStatus({ conversationId: a.conversationId, status: 'closed', at: closedAt, by: 'agent/ann' });

  // 23 h after the close: the same conversation, open again.
  const b = await msg('w-2', closedAt + 23 * HOUR);
  assert.equal(b.conversationId, a.conversationId);
  assert.equal(b.reopened, true);
  assert.equal(b.created, false);
  assert.deepEqual(await row(store, a.conversationId), { status: 'open', status_at: closedAt + 23 * HOUR });
  // The actor's own reopen of it (same time) arrives later: already open, nothing to do.
  assert.equal((await store.conversationStatus({ conversationId: a.conversationId, status: 'open', at: closedAt + 23 * HOUR })).changed, false);
  // A message while it is open just appends.
  const c = await msg('w-3', closedAt + 23 * HOUR + 1000);
  assert.deepEqual([c.conversationId, c.reopened, c.created], [a.conversationId, false, false]);

  // Closed again; the customer comes back 25 h later: a new conversation, the old one stays closed.
  const closedAgain = closedAt + 24 * HOUR;
  await store.conversationStatus({ conversationId: a.conversationId, status: 'closed', at: closedAgain });
  const d = await msg('w-4', closedAgain + 25 * HOUR);
  assert.notEqual(d.conversationId, a.conversationId);
  assert.equal(d.created, true);
  assert.equal(d.reopened, false);
  assert.equal(await statusOf(store, customerId, a.conversationId), 'closed');
  assert.equal(await statusOf(store, customerId, d.conversationId), 'open');
  // Its next message goes to the new open one.
  const e = await msg('w-5', closedAgain + 25 * HOUR + 5000);
  assert.equal(e.conversationId, d.conversationId);
  // A redelivered old message is still answered with where it was stored.
  assert.deepEqual(await msg('w-2', closedAt + 23 * HOUR), { messageId: b.messageId, conversationId: a.conversationId, duplicate: true, created: false, reopened: false });
  await surreal.close();
});

test('the reopen window is a store option', async () => {
  const { store: base, surreal } = await openTestStore();
  const { openStore } = await import('./store.ts');
  const store = await openStore({ db: surreal.db, cipher: base.ctx.cipher, reopenWindowMs: 10 * 60_000 });
  const { customerId } = await store.resolve({ channel: 'web', handle: 'v-option' });
  const a = await store.append({ customerId, channel: 'webchat', channelMessageId: 'o-1', direction: 'in', text: 'x', at: NOW });
  await store.conversationStatus({ conversationId: a.conversationId, status: 'closed', at: NOW + 1000 });
  const within = await store.append({ customerId, channel: 'webchat', channelMessageId: 'o-2', direction: 'in', text: 'x', at: NOW + 1000 + 9 * 60_000 });
  assert.equal(within.reopened, true);
  await store.conversationStatus({ conversationId: a.conversationId, status: 'closed', at: NOW + 20 * 60_000 });
  const after = await store.append({ customerId, channel: 'webchat', channelMessageId: 'o-3', direction: 'in', text: 'x', at: NOW + 31 * 60_000 });
  assert.equal(after.created, true, 'eleven minutes after the close is beyond a ten-minute window');
  await surreal.close();
});

test('a thread naming a conversation: reopened within the window, a new conversation after it, said in the reply', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId } = await store.resolve({ channel: 'email', handle: 'thread@example.test', verified: { email: true } });
  const mail = (id: string, at: number, conversationId?: string, direction: 'in' | 'out' = 'in') =>
    store.append({ customerId, conversationId, channel: 'email', channelMessageId: id, direction, text: id, subject: 'Refund', at });

  const first = await mail('<m1@x>', NOW);
  const t = first.conversationId;
  await store.conversationStatus({ conversationId: t, status: 'closed', at: NOW + HOUR });
  // A newer, unrelated conversation on the same channel is open meanwhile.
  const other = await store.append({ customerId, conversationId: 'conversation:newer1', channel: 'email', channelMessageId: '<n1@x>', direction: 'in', text: 'other', at: NOW + 2 * HOUR });
  assert.equal(other.created, true, 'a named conversation that does not exist yet is created with that id');
  await store.conversationStatus({ conversationId: other.conversationId, status: 'closed', at: NOW + 2 * HOUR + 1 });

  // A reply in the old thread 2 h after its close: that thread reopens (the name wins over the newer one).
  const r1 = await mail('<m2@x>', NOW + 3 * HOUR, t);
  assert.deepEqual([r1.conversationId, r1.reopened, r1.created, r1.previousConversationId], [t, true, false, undefined]);
  await store.conversationStatus({ conversationId: t, status: 'closed', at: NOW + 4 * HOUR });

  // An agent's message in the closed thread (direction out) goes there and does not reopen it.
  const out = await mail('<o1@x>', NOW + 5 * HOUR, t, 'out');
  assert.deepEqual([out.conversationId, out.reopened, out.created], [t, false, false]);
  assert.equal((await row(store, t)).status, 'closed');

  // Three days later the customer answers the old thread: a new conversation, naming the one it left.
  const late = await mail('<m3@x>', NOW + 4 * HOUR + 72 * HOUR, t);
  assert.notEqual(late.conversationId, t);
  assert.notEqual(late.conversationId, other.conversationId);
  assert.equal(late.created, true);
  assert.equal(late.reopened, false);
  assert.equal(late.previousConversationId, t);
  assert.equal((await row(store, t)).status, 'closed');
  const view = await store.view({ customerId, viewer: 'system' });
  assert.equal(view.conversations.find((c) => c.id === late.conversationId)?.subject, 'Refund');
  assert.equal(view.conversations.find((c) => c.id === late.conversationId)?.messageCount, 1);
  await surreal.close();
});
