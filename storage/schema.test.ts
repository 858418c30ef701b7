import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FieldCipher } from './crypto.ts';
import { rotateKeys } from './rotation.ts';
import { openStore } from './store.ts';
import { SEALED_FIELDS } from './schema.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';

exitWhenDone();

test('key rotation re-seals every sealed field of the store, and lookups and views keep working', async () => {
  const { store, surreal, ring } = await openTestStore();
  const r = await store.resolve({ channel: 'phone', handle: '13812345678', phone: '13812345678', email: 'old@example.com', verified: { phone: true, email: true } });
  await store.resolve({ channel: 'email', handle: 'old@example.com', verified: { email: true } });
  await surreal.db.query('UPDATE type::record($id) SET address = $a', { id: r.customerId, a: await (await FieldCipher.create(ring)).seal('广东省深圳市南山区科苑路1号') }).collect();
  await store.append({ customerId: r.customerId, channel: 'voice', channelMessageId: 'v1', direction: 'in', text: 'card 6222 0000 1111 2222', sensitive: true, at: 1 });

  // A new active key k2; k1 stays in the ring so old values still open.
  const ring2 = { ...ring, activeId: 'k2', keys: { ...ring.keys, k2: crypto.getRandomValues(new Uint8Array(32)) } };
  const cipher2 = await FieldCipher.create(ring2);
  const result = await rotateKeys(surreal.db, cipher2, SEALED_FIELDS);
  assert.equal(result.unreadable, 0);
  assert.equal(result.rewritten, 4, 'customer, two identity handles, one message');

  const dump = JSON.stringify((await surreal.db.query('SELECT * FROM customer; SELECT * FROM identity; SELECT * FROM message').collect()).flat());
  const sealed = dump.match(/enc1\.[A-Za-z0-9_-]+\./g) ?? [];
  assert.equal(sealed.length, 6, 'phone, email, address, two handles, one text');
  assert.ok(sealed.every((s) => s === 'enc1.k2.'), `all on the new key: ${sealed.join(' ')}`);

  // Only the new key now (k1 dropped): everything still opens and the hash lookups still link.
  const only2 = await openStore({ db: surreal.db, cipher: await FieldCipher.create({ activeId: 'k2', keys: { k2: ring2.keys.k2 }, indexKey: ring.indexKey }), migrate: false });
  const view = await only2.view({ customerId: r.customerId, viewer: 'admin' });
  assert.equal(view.customer.phone, '+8613812345678');
  assert.equal(view.customer.email, 'old@example.com');
  assert.equal(view.customer.address, '广东省深圳市南山区科苑路1号');
  assert.deepEqual(view.messages.map((m) => m.text), ['card 6222 0000 1111 2222']);
  assert.equal((await only2.resolve({ channel: 'wecom', handle: 'w', phone: '+86 138 1234 5678', verified: { phone: true } })).customerId, r.customerId);
  await surreal.close();
});
