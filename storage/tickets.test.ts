import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from './api.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';

exitWhenDone();

test('tickets: create, get, update, list with filters and pages', async () => {
  let clock = Date.UTC(2026, 10, 25, 9, 0, 0);
  const { store, surreal } = await openTestStore({ now: () => (clock += 1000) });
  const c = await store.resolve({ channel: 'web', handle: 'v1', displayName: 'Ada' });
  const conv = await store.append({ customerId: c.customerId, channel: 'webchat', channelMessageId: 'm1', direction: 'in', text: 'broken', at: clock });
  const t1 = await store.call('ticket.create', { subject: 'Screen broken', customerId: c.customerId, conversationIds: [conv.conversationId, conv.conversationId], tags: ['Hardware', 'hardware'], priority: 'high', by: 'agent-1' });
  assert.equal(t1.status, 'open');
  assert.equal(t1.priority, 'high');
  assert.deepEqual(t1.conversationIds, [conv.conversationId]);
  assert.deepEqual(t1.tags, ['hardware']);
  assert.deepEqual(await store.call('ticket.get', { ticketId: t1.id }), t1);

  const t1b = await store.call('ticket.update', { ticketId: t1.id, by: 'agent-1', status: 'pending', assignee: 'agent-7' });
  assert.equal(t1b.status, 'pending');
  assert.equal(t1b.assignee, 'agent-7');
  assert.ok(t1b.updatedAt > t1.updatedAt);
  const t1c = await store.call('ticket.update', { ticketId: t1.id, by: 'agent-7', assignee: null, status: 'solved' });
  assert.equal(t1c.assignee, undefined, 'null unassigns');

  for (let i = 0; i < 5; i++) await store.call('ticket.create', { subject: `Question ${i}`, assignee: 'agent-7', tags: i % 2 ? ['billing'] : [], by: 'agent-2' });
  const all: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.call('ticket.list', { limit: 2, cursor });
    all.push(...page.tickets.map((t) => t.subject));
    cursor = page.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  assert.deepEqual(all, ['Question 4', 'Question 3', 'Question 2', 'Question 1', 'Question 0', 'Screen broken'], 'latest change first');
  assert.equal(pages, 3);
  assert.deepEqual((await store.call('ticket.list', { customerId: c.customerId })).tickets.map((t) => t.id), [t1.id]);
  assert.deepEqual((await store.call('ticket.list', { status: 'solved' })).tickets.map((t) => t.id), [t1.id]);
  assert.deepEqual((await store.call('ticket.list', { assignee: 'agent-7' })).tickets.length, 5);
  assert.deepEqual((await store.call('ticket.list', { tag: 'billing' })).tickets.map((t) => t.subject), ['Question 3', 'Question 1']);

  const code = (p: Promise<unknown>) => p.then(() => 0, (e: StoreError) => `${e.code} ${e.reason}`);
  assert.match(String(await code(store.call('ticket.get', { ticketId: 'ticket:none' }))), /^404 no such ticket/);
  assert.match(String(await code(store.call('ticket.update', { ticketId: 'ticket:none', by: 'a', status: 'closed' }))), /^404 no such ticket/);
  assert.match(String(await code(store.call('ticket.update', { ticketId: t1.id, by: 'a' }))), /^400 .*nothing to update/);
  assert.match(String(await code(store.call('ticket.update', { ticketId: t1.id, by: 'a', status: 'done' as never }))), /^400 ticket\.update: status: must be one of open, pending, solved, closed/);
  assert.match(String(await code(store.call('ticket.create', { subject: 'x', customerId: 'customer:ghost', by: 'a' }))), /^404 no such customer/);
  assert.match(String(await code(store.call('ticket.create', { subject: 'x', conversationIds: ['conversation:ghost'], by: 'a' }))), /^404 no such conversation: conversation:ghost/);
  await surreal.close();
});

test('tags: add and remove on customers and conversations, search customers by tag', async () => {
  const { store, surreal } = await openTestStore();
  const a = await store.resolve({ channel: 'web', handle: 'a', displayName: 'Ann' });
  const b = await store.resolve({ channel: 'web', handle: 'b', displayName: 'Bo' });
  const conv = await store.append({ customerId: a.customerId, channel: 'webchat', channelMessageId: 'x1', direction: 'in', text: 'hi', at: 1 });
  assert.deepEqual(await store.call('tag.add', { target: a.customerId, tag: ' VIP ', by: 'agent-1' }), { target: a.customerId, tags: ['vip'] });
  // Adding twice, and concurrently, keeps one tag.
  await Promise.all(Array.from({ length: 5 }, () => store.call('tag.add', { target: a.customerId, tag: 'vip', by: 'agent-2' })));
  await store.call('tag.add', { target: a.customerId, tag: '投诉', by: 'agent-1' });
  await store.call('tag.add', { target: b.customerId, tag: 'vip', by: 'agent-1' });
  assert.deepEqual((await store.call('tag.add', { target: conv.conversationId, tag: 'refund', by: 'agent-1' })).tags, ['refund']);
  const view = await store.view({ customerId: a.customerId, viewer: 'agent' });
  assert.deepEqual(view.customer.tags, ['vip', '投诉']);
  assert.deepEqual(view.conversations[0].tags, ['refund']);
  assert.deepEqual((await store.search({ viewer: 'agent', tag: 'vip' })).customers.map((c) => c.name).sort(), ['Ann', 'Bo']);
  assert.deepEqual((await store.search({ viewer: 'agent', tag: 'refund' })).customers, [], 'conversation tags do not make customers match');

  assert.deepEqual((await store.call('tag.remove', { target: a.customerId, tag: 'vip', by: 'agent-1' })).tags, ['投诉']);
  assert.deepEqual((await store.call('tag.remove', { target: a.customerId, tag: 'vip', by: 'agent-1' })).tags, ['投诉'], 'removing again is harmless');
  assert.deepEqual((await store.search({ viewer: 'agent', tag: 'vip' })).customers.map((c) => c.name), ['Bo']);

  const code = (p: Promise<unknown>) => p.then(() => 0, (e: StoreError) => `${e.code} ${e.reason}`);
  assert.match(String(await code(store.call('tag.add', { target: 'customer:ghost', tag: 'x', by: 'a' }))), /^404 no such customer/);
  assert.match(String(await code(store.call('tag.add', { target: a.customerId, tag: '#!', by: 'a' }))), /^400 tag\.add: tag: must be 1-64/);
  assert.match(String(await code(store.call('tag.add', { target: 'ticket:1', tag: 'x', by: 'a' }))), /^400 tag\.add: target: must be a customer or conversation id/);
  await surreal.close();
});
