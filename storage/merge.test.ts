import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from './api.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';

exitWhenDone();

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

test('merge moves identities, conversations, messages, tickets and tags to the survivor; unmerge restores exactly that', async () => {
  const { store, surreal } = await openTestStore();
  const s = await store.resolve({ channel: 'wecom', handle: 'zs', displayName: 'Zhang San', phone: '13812345678', verified: { phone: true } });
  const a = await store.resolve({ channel: 'web', handle: 'visitor-9', displayName: 'Visitor 9', email: 'zs@example.com', verified: { email: true } });
  const a2 = await store.resolve({ channel: 'app', handle: 'u-9', email: 'zs@example.com', verified: { email: true } });
  assert.equal(a2.customerId, a.customerId);
  await store.append({ customerId: s.customerId, channel: 'wecom', channelMessageId: 'w1', direction: 'in', text: 'wecom hi', at: NOW - 1000 });
  const chat = await store.append({ customerId: a.customerId, channel: 'webchat', channelMessageId: 'c1', direction: 'in', text: 'web hi', at: NOW });
  await store.append({ customerId: a.customerId, channel: 'webchat', channelMessageId: 'c2', direction: 'out', text: 'web answer', at: NOW + 1 });
  const ticket = await store.call('ticket.create', { subject: 'Where is my parcel?', customerId: a.customerId, conversationIds: [chat.conversationId], by: 'agent-1' });
  await store.call('tag.add', { target: a.customerId, tag: 'parcel', by: 'agent-1' });
  await store.call('tag.add', { target: s.customerId, tag: 'vip', by: 'agent-1' });
  await store.call('tag.add', { target: a.customerId, tag: 'vip', by: 'agent-1' });

  const m = await store.merge({ survivor: s.customerId, absorbed: a.customerId, by: 'sup-1', reason: 'same phone told on chat' });
  assert.deepEqual(m.moved.identities.sort(), [a.identityId, a2.identityId].sort());
  assert.deepEqual(m.moved.conversations, [chat.conversationId]);
  assert.deepEqual(m.moved.tickets, [ticket.id]);
  assert.deepEqual(m.moved.tags, ['parcel'], 'only the tags the survivor did not have');

  const merged = await store.view({ customerId: s.customerId, viewer: 'agent' });
  assert.deepEqual(merged.identities.map((i) => i.channel).sort(), ['app', 'web', 'wecom']);
  assert.deepEqual(merged.messages.map((m) => m.text), ['web answer', 'web hi', 'wecom hi']);
  assert.deepEqual(merged.customer.tags, ['parcel', 'vip']);
  assert.equal((await store.call('ticket.get', { ticketId: ticket.id })).customerId, s.customerId);
  // The absorbed customer's id leads to the survivor; its channel identities resolve to the survivor.
  const redirected = await store.view({ customerId: a.customerId, viewer: 'agent' });
  assert.equal(redirected.customer.id, s.customerId);
  assert.equal(redirected.redirectedFrom, a.customerId);
  assert.equal((await store.resolve({ channel: 'web', handle: 'visitor-9' })).customerId, s.customerId);
  // New messages on a moved conversation stay with the survivor.
  await store.append({ customerId: a.customerId, conversationId: chat.conversationId, channel: 'webchat', channelMessageId: 'c3', direction: 'in', text: 'after merge', at: NOW + 2 });
  // A verified email held by the absorbed customer still links new identities, to the survivor.
  assert.equal((await store.resolve({ channel: 'email', handle: 'zs@example.com', verified: { email: true } })).customerId, s.customerId);

  const u = await store.unmerge({ mergeId: m.mergeId, by: 'sup-2', reason: 'two people after all' });
  assert.deepEqual(u.restored.identities.sort(), m.moved.identities.sort());
  assert.deepEqual(u.restored.conversations, m.moved.conversations);
  assert.deepEqual(u.restored.tickets, m.moved.tickets);
  assert.deepEqual(u.restored.tags, ['parcel']);
  const back = await store.view({ customerId: a.customerId, viewer: 'agent' });
  assert.equal(back.customer.id, a.customerId);
  assert.equal(back.redirectedFrom, undefined);
  assert.deepEqual(back.identities.map((i) => i.channel).sort(), ['app', 'web']);
  assert.deepEqual(back.messages.map((m) => m.text), ['after merge', 'web answer', 'web hi']);
  const survivor = await store.view({ customerId: s.customerId, viewer: 'agent' });
  assert.deepEqual(survivor.identities.map((i) => i.channel).sort(), ['email', 'wecom'], 'what arrived after the merge stays');
  assert.deepEqual(survivor.messages.map((m) => m.text), ['wecom hi']);
  assert.deepEqual(survivor.customer.tags, ['vip']);
  assert.equal((await store.call('ticket.get', { ticketId: ticket.id })).customerId, a.customerId);

  // The audit trail: who, what, why, in order.
  const [audit] = await surreal.db.query<[{ action: string; by: string; detail: { reason: string } }[]]>('SELECT action, by, detail, at FROM audit ORDER BY at').collect();
  assert.deepEqual(audit.map((x) => [x.action, x.by, x.detail.reason]), [
    ['customer.merge', 'sup-1', 'same phone told on chat'],
    ['customer.unmerge', 'sup-2', 'two people after all'],
  ]);
  const [[rec]] = await surreal.db.query<[{ by: string; undone_by: string; undone_at: number }[]]>('SELECT * FROM type::record($id)', { id: m.mergeId }).collect();
  assert.equal(rec.by, 'sup-1');
  assert.equal(rec.undone_by, 'sup-2');
  assert.ok(rec.undone_at > 0);
  await surreal.close();
});

test('merges that cannot be done are refused with the reason', async () => {
  const { store, surreal } = await openTestStore();
  const x = await store.resolve({ channel: 'web', handle: 'x' });
  const y = await store.resolve({ channel: 'web', handle: 'y' });
  const z = await store.resolve({ channel: 'web', handle: 'z' });
  const code = (p: Promise<unknown>) => p.then(() => 0, (e: StoreError) => `${e.code} ${e.reason}`);
  assert.match(String(await code(store.merge({ survivor: x.customerId, absorbed: x.customerId, by: 's', reason: 'r' }))), /^400 .*must be different/);
  assert.match(String(await code(store.merge({ survivor: x.customerId, absorbed: 'customer:nobody', by: 's', reason: 'r' }))), /^404 no such customer/);
  const m1 = await store.merge({ survivor: x.customerId, absorbed: y.customerId, by: 's', reason: 'r' });
  assert.match(String(await code(store.merge({ survivor: z.customerId, absorbed: y.customerId, by: 's', reason: 'r' }))), /^409 absorbed .* was merged into/);
  // x absorbed into z: the first merge cannot be undone before this one.
  const m2 = await store.merge({ survivor: z.customerId, absorbed: x.customerId, by: 's', reason: 'r' });
  assert.equal((await store.resolve({ channel: 'web', handle: 'y' })).customerId, z.customerId, 'identities follow every merge');
  assert.match(String(await code(store.unmerge({ mergeId: m1.mergeId, by: 's' }))), /^409 survivor .* undo that merge first/);
  await store.unmerge({ mergeId: m2.mergeId, by: 's' });
  await store.unmerge({ mergeId: m1.mergeId, by: 's' });
  assert.match(String(await code(store.unmerge({ mergeId: m1.mergeId, by: 's' }))), /^409 .*already undone/);
  assert.match(String(await code(store.unmerge({ mergeId: 'merge:nothing', by: 's' }))), /^404 no such merge/);
  assert.equal((await store.resolve({ channel: 'web', handle: 'y' })).customerId, y.customerId);
  assert.equal((await store.resolve({ channel: 'web', handle: 'x' })).customerId, x.customerId);
  await surreal.close();
});

test('two merges racing for the same absorbed customer: exactly one wins', async () => {
  const { store, surreal } = await openTestStore();
  const [p, q, r] = await Promise.all(['p', 'q', 'r'].map((h) => store.resolve({ channel: 'web', handle: h })));
  const results = await Promise.allSettled([
    store.merge({ survivor: p.customerId, absorbed: r.customerId, by: 's1', reason: 'r' }),
    store.merge({ survivor: q.customerId, absorbed: r.customerId, by: 's2', reason: 'r' }),
  ]);
  assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
  const lost = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
  assert.equal((lost.reason as StoreError).code, 409);
  const [[{ n }]] = await surreal.db.query<[{ n: number }[]]>('SELECT count() AS n FROM merge GROUP ALL').collect();
  assert.equal(n, 1);
  await surreal.close();
});
