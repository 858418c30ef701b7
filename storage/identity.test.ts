import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError } from './api.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';

exitWhenDone();

test('the same channel identity resolves to the same customer', async () => {
  const { store, surreal } = await openTestStore();
  const a = await store.resolve({ channel: 'wechat_openid', handle: 'oAbc123', displayName: 'Li Lei' });
  assert.equal(a.created, true);
  assert.equal(a.linkedBy, undefined);
  const b = await store.resolve({ channel: 'wechat_openid', handle: 'oAbc123' });
  assert.deepEqual(b, { customerId: a.customerId, identityId: a.identityId, created: false, linkedBy: 'identity', suggestions: [] });
  // Same handle on another channel kind is another identity (and, with nothing else known, another customer).
  const c = await store.resolve({ channel: 'douyin', handle: 'oAbc123' });
  assert.notEqual(c.customerId, a.customerId);
  await surreal.close();
});

test('a verified phone links a new identity on another channel to the known customer', async () => {
  const { store, surreal } = await openTestStore();
  const wecom = await store.resolve({ channel: 'wecom', handle: 'zhangsan', phone: '+86 138-1234-5678', verified: { phone: true } });
  // The same number typed differently, arriving as a call: one customer for every channel.
  const call = await store.resolve({ channel: 'phone', handle: '13812345678', verified: { phone: true } });
  assert.equal(call.customerId, wecom.customerId);
  assert.equal(call.created, false);
  assert.equal(call.linkedBy, 'phone');
  assert.notEqual(call.identityId, wecom.identityId);
  // An email verified on the web links too.
  const web1 = await store.resolve({ channel: 'web', handle: 'visitor-1', email: 'Zhang.San@Example.com', verified: { email: true } });
  const app = await store.resolve({ channel: 'app', handle: 'u-77', email: 'zhang.san@example.com', verified: { email: true } });
  assert.equal(app.customerId, web1.customerId);
  assert.equal(app.linkedBy, 'email');
  const view = await store.view({ customerId: wecom.customerId, viewer: 'admin' });
  assert.deepEqual(view.identities.map((i) => i.channel).sort(), ['phone', 'wecom']);
  assert.equal(view.customer.phone, '+8613812345678');
  await surreal.close();
});

test('an unverified match is suggested to agents, never merged', async () => {
  const { store, surreal } = await openTestStore();
  const known = await store.resolve({ channel: 'wecom', handle: 'lisi', phone: '13900001111', verified: { phone: true } });
  // The claim is not verified: a new customer, and a suggestion pointing at the known one.
  const sms = await store.resolve({ channel: 'wechat_openid', handle: 'oLisi', phone: '13900001111' });
  assert.equal(sms.created, true);
  assert.notEqual(sms.customerId, known.customerId);
  assert.deepEqual(sms.suggestions, [{ customerId: known.customerId, reason: 'phone' }]);
  // The stored value is not verified: a verified claim does not link to it either.
  const weak = await store.resolve({ channel: 'web', handle: 'v-2', email: 'x@example.com' });
  const strong = await store.resolve({ channel: 'app', handle: 'u-2', email: 'x@example.com', verified: { email: true } });
  assert.notEqual(strong.customerId, weak.customerId);
  assert.deepEqual(strong.suggestions, [{ customerId: weak.customerId, reason: 'email' }]);
  // Both sides see the suggestion in the customer view; the customers stay apart.
  const v1 = await store.view({ customerId: known.customerId, viewer: 'agent' });
  const v2 = await store.view({ customerId: sms.customerId, viewer: 'agent' });
  assert.deepEqual(v1.suggestions.map((s) => [s.customerId, s.reason]), [[sms.customerId, 'phone']]);
  assert.deepEqual(v2.suggestions.map((s) => [s.customerId, s.reason]), [[known.customerId, 'phone']]);
  assert.equal(v1.identities.length, 1);
  assert.equal(v2.identities.length, 1);
  // Resolving again does not duplicate the suggestion.
  await store.resolve({ channel: 'wechat_openid', handle: 'oLisi', phone: '13900001111' });
  const [[{ n }]] = await surreal.db.query<[{ n: number }[]]>('SELECT count() AS n FROM suggestion GROUP ALL').collect();
  assert.equal(n, 2);
  await surreal.close();
});

test('many simultaneous first messages from one new identity make one customer', async () => {
  const { store, surreal } = await openTestStore();
  const results = await Promise.all(
    Array.from({ length: 40 }, () => store.resolve({ channel: 'xiaohongshu', handle: 'xhs-42', displayName: 'Mei', phone: '13700000000', verified: { phone: true } })),
  );
  assert.equal(new Set(results.map((r) => r.customerId)).size, 1, 'one customer');
  assert.equal(new Set(results.map((r) => r.identityId)).size, 1, 'one identity');
  assert.equal(results.filter((r) => r.created).length, 1, 'created once');
  // Concurrently, a verified phone on several new channels: all land on one customer too.
  const more = await Promise.all(['wecom', 'dingtalk', 'app', 'web'].map((ch, i) => store.resolve({ channel: ch as 'wecom', handle: `h${i}`, phone: '13700000000', verified: { phone: true } })));
  assert.deepEqual(new Set(more.map((r) => r.customerId)), new Set([results[0].customerId]));
  const [[counts]] = await surreal.db
    .query<[{ customers: number; identities: number; edges: number }[]]>(
      'RETURN [{ customers: count(SELECT id FROM customer), identities: count(SELECT id FROM identity), edges: count(SELECT id FROM identifies) }]',
    )
    .collect();
  assert.deepEqual(counts, { customers: 1, identities: 5, edges: 5 });
  await surreal.close();
});

test('phone and email are stored sealed, found by keyed hash, and masked in search per viewer', async () => {
  const { store, surreal } = await openTestStore();
  const r = await store.resolve({ channel: 'email', handle: 'Wang.Wu@Example.COM', displayName: 'Wang Wu', phone: '13512345678', verified: { email: true, phone: true } });
  const [[row]] = await surreal.db.query<[Record<string, unknown>[]]>('SELECT * FROM customer').collect();
  assert.match(String(row.phone), /^enc1\.k1\./);
  assert.match(String(row.email), /^enc1\.k1\./);
  assert.ok(!JSON.stringify(row).includes('13512345678') && !JSON.stringify(row).toLowerCase().includes('wang.wu@'), 'no clear value at rest');
  const [[ident]] = await surreal.db.query<[Record<string, unknown>[]]>('SELECT * FROM identity').collect();
  assert.equal(ident.handle, undefined);
  assert.match(String(ident.handle_sealed), /^enc1\./);

  const byPhoneAgent = await store.search({ viewer: 'agent', phone: '+86 135 1234 5678' });
  assert.deepEqual(byPhoneAgent.customers, [{ id: r.customerId, name: 'Wang Wu', phone: '+86135****5678', email: 'w***@example.com', tags: [] }]);
  const byEmailSup = await store.search({ viewer: 'supervisor', email: 'wang.wu@example.com' });
  assert.equal(byEmailSup.customers[0].email, 'wang.wu@example.com');
  assert.equal(byEmailSup.customers[0].phone, '+8613512345678');
  const byName = await store.search({ viewer: 'agent', namePrefix: 'WANG' });
  assert.deepEqual(byName.customers.map((c) => c.id), [r.customerId]);
  assert.deepEqual((await store.search({ viewer: 'agent', namePrefix: 'wax' })).customers, []);
  await surreal.close();
});

test('bad input is refused with a reason', async () => {
  const { store, surreal } = await openTestStore();
  const bad = async (input: unknown, reason: RegExp) => {
    const e = await store.call('resolve', input).then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof StoreError, `expected a StoreError for ${JSON.stringify(input)}`);
    assert.equal(e.code, 400);
    assert.match(e.reason, reason);
  };
  await bad({ channel: 'fax', handle: '1' }, /channel: must be one of/);
  await bad({ channel: 'web', handle: '   ' }, /handle: must not be empty/);
  await bad({ channel: 'phone', handle: 'call me' }, /handle: .*only digits/);
  await bad({ channel: 'web', handle: 'v', email: 'not-an-email' }, /email: must look like/);
  await bad(null, /resolve: /);
  await assert.rejects(store.search({ viewer: 'agent', phone: '1', email: 'a@b.c' } as never), /exactly one of/);
  await surreal.close();
});
