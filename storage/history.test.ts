import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from './api.ts';
import { exitWhenDone, openTestStore, testRing } from '../tests/support/store.ts';
import { tempDir } from '../tests/support/nats.ts';
import { spawnSync } from 'node:child_process';
import { toBase64Url } from './crypto.ts';

exitWhenDone();

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

test('a message appended twice (same channel message id) is stored once, also when the copies race', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId } = await store.resolve({ channel: 'web', handle: 'v1' });
  const msg = { customerId, channel: 'webchat' as const, channelMessageId: 'wc-1', direction: 'in' as const, text: 'hello', at: NOW };
  const first = await store.append(msg);
  assert.equal(first.duplicate, false);
  const again = await store.append(msg);
  assert.deepEqual(again, { ...first, duplicate: true, created: false, reopened: false });
  // Twenty copies of a new message at once (a redelivery storm): one stored, all answered with its id.
  const storm = await Promise.all(Array.from({ length: 20 }, () => store.append({ ...msg, channelMessageId: 'wc-2', at: NOW + 1 })));
  assert.equal(new Set(storm.map((r) => r.messageId)).size, 1);
  assert.equal(storm.filter((r) => !r.duplicate).length, 1);
  // The same id on another channel is another message.
  const other = await store.append({ ...msg, channel: 'sms', channelMessageId: 'wc-1' });
  assert.equal(other.duplicate, false);
  const [[{ n }]] = await surreal.db.query<[{ n: number }[]]>('SELECT count() AS n FROM message GROUP ALL').collect();
  assert.equal(n, 3);
  const [[conv]] = await surreal.db.query<[{ message_count: number }[]]>('SELECT message_count FROM $c', { c: (await surreal.db.query<[unknown]>('RETURN type::record($id)', { id: first.conversationId }).collect())[0] }).collect();
  assert.equal(conv.message_count, 2, 'the conversation counted each stored message once');
  await surreal.close();
});

test('the customer view shows every channel newest first, paged by cursor', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId } = await store.resolve({ channel: 'phone', handle: '13812345678', displayName: 'Li Lei', verified: { phone: true } });
  await store.resolve({ channel: 'wechat_openid', handle: 'oLi', phone: '13812345678', verified: { phone: true } });
  await store.resolve({ channel: 'email', handle: 'li@example.com', phone: '13812345678', verified: { phone: true, email: true } });
  // Email last month (3 messages), voice last week (2), chat today (4; two at the same millisecond, which
  // the page size of 3 splits across pages, so the (at, id) cursor must keep ties apart).
  const add = (channel: 'email' | 'voice' | 'wechat', i: number, at: number, extra: Record<string, unknown> = {}) =>
    store.append({ customerId, channel, channelMessageId: `${channel}-${i}`, direction: i % 2 ? 'out' : 'in', text: `${channel} ${i}`, at, ...extra });
  for (let i = 0; i < 3; i++) await add('email', i, NOW - 30 * DAY + i * 60_000, { subject: 'Invoice' });
  for (let i = 0; i < 2; i++) await add('voice', i, NOW - 7 * DAY + i * 1000, i === 0 ? { attachments: [{ objectKey: 'rec/call-1.ogg', contentType: 'audio/ogg', size: 48_000 }] } : {});
  for (let i = 0; i < 4; i++) await add('wechat', i, NOW - 3600_000 + Math.max(i, 1) * 1000);

  const seen: string[] = [];
  const ats: number[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.view({ customerId, viewer: 'agent', limit: 3, cursor });
    pages++;
    if (pages === 1) {
      assert.equal(page.identities.length, 3);
      assert.deepEqual(page.conversations.map((c) => c.channel), ['wechat', 'voice', 'email']);
      assert.deepEqual(page.conversations.map((c) => c.messageCount), [4, 2, 3]);
      assert.equal(page.conversations[2].subject, 'Invoice');
    }
    seen.push(...page.messages.map((m) => m.text!));
    ats.push(...page.messages.map((m) => m.at));
    cursor = page.nextCursor;
  } while (cursor && pages < 10);
  assert.equal(pages, 3);
  assert.equal(seen.length, 9);
  assert.equal(new Set(seen).size, 9, 'no message twice across pages');
  assert.deepEqual([...ats].sort((a, b) => b - a), ats, 'newest first');
  assert.deepEqual(seen.slice(0, 2), ['wechat 3', 'wechat 2']);
  assert.deepEqual(new Set(seen.slice(2, 4)), new Set(['wechat 1', 'wechat 0']));
  assert.deepEqual(seen.slice(4, 6), ['voice 1', 'voice 0']);
  assert.deepEqual(seen.slice(6), ['email 2', 'email 1', 'email 0']);
  const full = await store.view({ customerId, viewer: 'agent', limit: 50 });
  assert.equal(full.nextCursor, undefined);
  assert.deepEqual(full.messages.find((m) => m.text === 'voice 0')?.attachments, [{ objectKey: 'rec/call-1.ogg', contentType: 'audio/ogg', size: 48_000 }]);

  await assert.rejects(store.view({ customerId, viewer: 'agent', cursor: 'bogus!' }), (e: StoreError) => e.code === 400 && /cursor/.test(e.reason));
  await assert.rejects(store.view({ customerId: 'customer:nobody', viewer: 'agent' }), (e: StoreError) => e.code === 404);
  await surreal.close();
});

test('the view masks phone, email, address and sensitive text per viewer', async () => {
  const { store, surreal } = await openTestStore();
  const { customerId } = await store.resolve({ channel: 'email', handle: 'alice@example.com', phone: '+86 139 8765 4321', verified: { email: true, phone: true } });
  await store.append({ customerId, channel: 'email', channelMessageId: 'e1', direction: 'in', text: 'My ID card is 110101199001011234', sensitive: true, at: NOW });
  await store.append({ customerId, channel: 'email', channelMessageId: 'e2', direction: 'out', text: 'Thanks, noted.', at: NOW + 1 });
  const [[stored]] = await surreal.db.query<[Record<string, unknown>[]]>("SELECT * FROM message WHERE channel_message_id = 'e1'").collect();
  assert.equal(stored.text, undefined);
  assert.match(String(stored.text_sealed), /^enc1\./);

  const as = async (viewer: 'agent' | 'supervisor' | 'admin') => {
    const v = await store.view({ customerId, viewer });
    return { phone: v.customer.phone, email: v.customer.email, handle: v.identities[0].handle, texts: v.messages.map((m) => m.text), sensitive: v.messages.map((m) => m.sensitive) };
  };
  assert.deepEqual(await as('agent'), { phone: '+86139****4321', email: 'a***@example.com', handle: 'a***@example.com', texts: ['Thanks, noted.', '***'], sensitive: [false, true] });
  assert.deepEqual(await as('supervisor'), { phone: '+8613987654321', email: 'alice@example.com', handle: 'alice@example.com', texts: ['Thanks, noted.', '***'], sensitive: [false, true] });
  assert.deepEqual(await as('admin'), { phone: '+8613987654321', email: 'alice@example.com', handle: 'alice@example.com', texts: ['Thanks, noted.', 'My ID card is 110101199001011234'], sensitive: [false, true] });
  await surreal.close();
});

test('append refuses a message for an unknown customer or without content', async () => {
  const { store, surreal } = await openTestStore();
  await assert.rejects(store.append({ customerId: 'customer:ghost', channel: 'sms', channelMessageId: 's1', direction: 'in', text: 'hi', at: NOW }), (e: StoreError) => e.code === 404 && /no such customer/.test(e.reason));
  await assert.rejects(store.append({ customerId: 'customer:ghost', channel: 'sms', channelMessageId: 's1', direction: 'in', at: NOW }), (e: StoreError) => e.code === 400 && /text or attachments/.test(e.reason));
  await assert.rejects(store.call('append', { customerId: 'person:1', channel: 'sms', channelMessageId: 's1', direction: 'in', text: 'x', at: NOW }), (e: StoreError) => e.code === 400 && /customerId: must be a customer id/.test(e.reason));
  await surreal.close();
});

test('surrealkv: history written by a process that has exited is there when the store opens again', async () => {
  // The writer is another process: it closes and exits, as a store node does on shutdown. (The embedded
  // engine cannot reopen a surrealkv path in a process that defined an index on it: close() leaves it
  // held; storage/surrealkv.ts.)
  const dir = tempDir('store-kv');
  const ring = testRing();
  const url = `surrealkv://${dir}/db`;
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'tests/support/store-writer.ts'], {
    env: { ...process.env, STORE_URL: url, STORE_AT: String(NOW), STORE_RING: JSON.stringify({ activeId: ring.activeId, keys: { k1: toBase64Url(ring.keys.k1) }, indexKey: toBase64Url(ring.indexKey) }) },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(child.status, 0, child.stderr);
  const written = JSON.parse(child.stdout.trim().split('\n').pop()!) as { resolved: { customerId: string }; appended: { messageId: string; conversationId: string } };

  const { store, surreal } = await openTestStore({ url, ring });
  const again = await store.resolve({ channel: 'phone', handle: '13811112222', verified: { phone: true } });
  assert.equal(again.customerId, written.resolved.customerId);
  const dup = await store.append({ customerId: again.customerId, channel: 'dingtalk', channelMessageId: 'd1', direction: 'in', text: 'durable?', at: NOW });
  assert.deepEqual(dup, { ...written.appended, duplicate: true, created: false, reopened: false });
  const view = await store.view({ customerId: again.customerId, viewer: 'admin' });
  assert.deepEqual(view.messages.map((m) => m.text), ['durable?']);
  assert.equal(view.customer.phone, '+8613811112222');
  await surreal.close(); // the dir stays under .test-data (npm test clears it)
});
