import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import {
  FieldCipher,
  fromBase64Url,
  gcmDecrypt,
  gcmEncrypt,
  importAesKey,
  isSealed,
  normalizeEmail,
  normalizePhone,
  toBase64Url,
  type KeyRing,
} from './crypto.ts';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
const random32 = () => crypto.getRandomValues(new Uint8Array(32));

function ring(activeId: string, ids: string[], indexKey = random32(), keys: Record<string, Uint8Array> = {}): KeyRing {
  for (const id of ids) keys[id] ??= random32();
  return { activeId, keys, indexKey };
}

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 14-16 (256-bit key),
// the vectors NIST SP 800-38D's validation refers to.
const TC16 = {
  key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
  iv: 'cafebabefacedbaddecaf888',
  plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
  aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
  cipher: '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
  tag: '76fc6ece0f4e1768cddf8853bb2d551b',
};

test('AES-256-GCM known answers (GCM spec test cases 14 and 16) through crypto.subtle', async () => {
  // Test case 14: zero key, zero iv, one zero block, no AAD.
  const zeroKey = await importAesKey(new Uint8Array(32), 'zero key');
  const out14 = await gcmEncrypt(zeroKey, new Uint8Array(12), new Uint8Array(16), new Uint8Array(0));
  assert.equal(toHex(out14), 'cea7403d4d606b6e074ec5d3baf39d18' + 'd0d1c8a799996bf0265b98b5d48ab919');

  // Test case 16: 60-byte plaintext with 20 bytes of AAD; Web Crypto's output is ciphertext ‖ tag,
  // the layout a sealed value carries.
  const key = await importAesKey(hex(TC16.key), 'tc16');
  const out = await gcmEncrypt(key, hex(TC16.iv), hex(TC16.plain), hex(TC16.aad));
  assert.equal(toHex(out), TC16.cipher + TC16.tag);
  assert.equal(toHex(await gcmDecrypt(key, hex(TC16.iv), out, hex(TC16.aad))), TC16.plain);
  const bad = out.slice();
  bad[bad.length - 1] ^= 1;
  await assert.rejects(gcmDecrypt(key, hex(TC16.iv), bad, hex(TC16.aad)));
});

test('the sealed layout opens with an independent AES-GCM (node:crypto / OpenSSL)', async () => {
  const keys = { k1: random32() };
  const cipher = await FieldCipher.create({ activeId: 'k1', keys, indexKey: random32() });
  const sealed = await cipher.seal('广东省深圳市南山区 · alice@example.com');
  const [prefix, kid, ivText, ctText] = sealed.split('.');
  assert.equal(prefix, 'enc1');
  assert.equal(kid, 'k1');
  const iv = fromBase64Url(ivText)!;
  const ct = fromBase64Url(ctText)!;
  assert.equal(iv.length, 12);
  const d = createDecipheriv('aes-256-gcm', keys.k1, iv);
  d.setAAD(new TextEncoder().encode('enc1.k1'));
  d.setAuthTag(ct.subarray(ct.length - 16));
  const plain = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString('utf8');
  assert.equal(plain, '广东省深圳市南山区 · alice@example.com');
});

test('round trip; a fresh iv each time; key id and isCurrent', async () => {
  const cipher = await FieldCipher.create(ring('a', ['a']));
  for (const plain of ['', '13812345678', 'alice@example.com', '广东省深圳市南山区科技园', 'x'.repeat(10_000), '😀 emoji']) {
    const sealed = await cipher.seal(plain);
    assert.match(sealed, /^enc1\.a\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    assert.equal(await cipher.open(sealed), plain);
    assert.equal(cipher.keyIdOf(sealed), 'a');
    assert.ok(cipher.isCurrent(sealed));
    assert.ok(isSealed(sealed));
  }
  const a = await cipher.seal('same');
  const b = await cipher.seal('same');
  assert.notEqual(a, b, 'random iv: equal plaintexts must not give equal ciphertexts');
  assert.notEqual(a.split('.')[2], b.split('.')[2]);
  assert.equal(cipher.isCurrent('plain text'), false);
  assert.equal(isSealed('enc1.a.not base64.x'), false);
});

test('tampering is detected: any flipped byte, a swapped iv, a relabelled key id', async () => {
  const keys = { a: random32(), b: random32() };
  const cipher = await FieldCipher.create({ activeId: 'a', keys, indexKey: random32() });
  const sealed = await cipher.seal('13812345678');
  const [p, kid, ivText, ctText] = sealed.split('.');
  const ct = fromBase64Url(ctText)!;
  for (let i = 0; i < ct.length; i++) {
    const bad = ct.slice();
    bad[i] ^= 0x01;
    await assert.rejects(cipher.open([p, kid, ivText, toBase64Url(bad)].join('.')), /authentication failed/);
  }
  const iv = fromBase64Url(ivText)!;
  iv[0] ^= 0x80;
  await assert.rejects(cipher.open([p, kid, toBase64Url(iv), ctText].join('.')), /authentication failed/);
  // The same bytes under the other key id of the ring: the AAD binds the id, so it fails.
  await assert.rejects(cipher.open([p, 'b', ivText, ctText].join('.')), /authentication failed for key id "b"/);
  // Truncated tag, malformed parts.
  await assert.rejects(cipher.open([p, kid, ivText, toBase64Url(ct.subarray(0, 10))].join('.')), /malformed ciphertext/);
  await assert.rejects(cipher.open('enc1.a.xx'), /malformed/);
  await assert.rejects(cipher.open('enc2.a.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA'), /malformed/);
  await assert.rejects(cipher.open('13812345678'), /malformed/);
  await assert.rejects(cipher.open([p, kid, ivText + '!', ctText].join('.')), /malformed iv/);
});

test('unknown or wrong key id gives a clear error', async () => {
  const old = await FieldCipher.create(ring('old', ['old']));
  const sealed = await old.seal('alice@example.com');
  const other = await FieldCipher.create(ring('new', ['new']));
  await assert.rejects(other.open(sealed), /unknown key id "old" \(the ring holds new\)/);
  // Same id, different key bytes (a misconfigured ring): authentication fails, naming the id.
  const impostor = await FieldCipher.create(ring('old', ['old']));
  await assert.rejects(impostor.open(sealed), /authentication failed for key id "old"/);
  assert.throws(() => other.keyIdOf('garbage'), /malformed/);
});

test('bad rings are refused with the reason', async () => {
  await assert.rejects(FieldCipher.create({ activeId: 'x', keys: {}, indexKey: random32() }), /no encryption keys/);
  await assert.rejects(FieldCipher.create({ activeId: 'x', keys: { a: random32() }, indexKey: random32() }), /active key id "x" is not in the ring/);
  await assert.rejects(FieldCipher.create({ activeId: 'a', keys: { a: new Uint8Array(16) }, indexKey: random32() }), /key "a" must be 32 bytes \(got 16\)/);
  await assert.rejects(FieldCipher.create({ activeId: 'a', keys: { a: random32() }, indexKey: new Uint8Array(31) }), /index key must be 32 bytes/);
  await assert.rejects(FieldCipher.create({ activeId: 'a.b', keys: { 'a.b': random32() }, indexKey: random32() }), /key id "a.b" must be/);
});

test('rotation: a ring with old and new keys opens both and seals with the new', async () => {
  const keys = { a: random32(), b: random32() };
  const indexKey = random32();
  const before = await FieldCipher.create({ activeId: 'a', keys: { a: keys.a }, indexKey });
  const after = await FieldCipher.create({ activeId: 'b', keys, indexKey });
  const sealedA = await before.seal('13812345678');
  assert.equal(after.isCurrent(sealedA), false);
  assert.equal(await after.open(sealedA), '13812345678');
  const sealedB = await after.seal(await after.open(sealedA));
  assert.equal(after.keyIdOf(sealedB), 'b');
  assert.ok(after.isCurrent(sealedB));
});

test('keyed lookup hash: stable across key rotation and input spelling, different per index key and kind', async () => {
  const indexKey = random32();
  const a = await FieldCipher.create(ring('a', ['a'], indexKey));
  const b = await FieldCipher.create(ring('b', ['a', 'b'], indexKey));
  const h = await a.lookupHash('phone', '+8613812345678');
  assert.match(h, /^[A-Za-z0-9_-]{43}$/); // 32 bytes
  for (const spelling of ['+86 138-1234-5678', '13812345678', '008613812345678', '(+86) 138 1234 5678', '8613812345678']) {
    assert.equal(await a.lookupHash('phone', spelling), h, spelling);
  }
  assert.equal(await b.lookupHash('phone', '138 1234 5678'), h, 'rotating the encryption key keeps the hash');
  assert.equal(await a.lookupHash('email', ' Alice@Example.COM '), await b.lookupHash('email', 'alice@example.com'));
  assert.notEqual(await a.lookupHash('phone', '13812345679'), h);
  const c = await FieldCipher.create(ring('a', ['a']));
  assert.notEqual(await c.lookupHash('phone', '13812345678'), h, 'another index key gives other hashes');
  // The kind is part of the input, so a handle that happens to equal an email does not collide.
  assert.notEqual(await a.lookupHash('handle', 'alice@example.com'), await a.lookupHash('email', 'alice@example.com'));
  assert.equal(await a.lookupHash('handle', ' oAbC123 '), await a.lookupHash('handle', 'oAbC123'));
  assert.notEqual(await a.lookupHash('handle', 'oabc123'), await a.lookupHash('handle', 'oAbC123'), 'handles are case-sensitive');
  // Known answer: HMAC-SHA256(key, "phone:+8613812345678") computed independently with node:crypto.
  const { createHmac } = await import('node:crypto');
  const expected = createHmac('sha256', indexKey).update('phone:+8613812345678').digest('base64url');
  assert.equal(h, expected);
  await assert.rejects(a.lookupHash('phone', 'call me'), /phone: only digits/);
  await assert.rejects(a.lookupHash('email', 'nobody'), /email: must look like/);
  await assert.rejects(a.lookupHash('handle', '  '), /handle is empty/);
});

test('normalizePhone and normalizeEmail', () => {
  assert.equal(normalizePhone('+86 138-1234-5678'), '+8613812345678');
  assert.equal(normalizePhone('+8613812345678'), '+8613812345678');
  assert.equal(normalizePhone('13812345678'), '+8613812345678');
  assert.equal(normalizePhone('0086 138 1234 5678'), '+8613812345678');
  assert.equal(normalizePhone('+44 (0)20 7946 0958'), '+442079460958');
  assert.equal(normalizePhone('+1 (415) 555-2671'), '+14155552671');
  assert.equal(normalizePhone('010-6552 9988'), '01065529988', 'a landline without country stays digits only');
  assert.equal(normalizePhone('10086'), '10086');
  assert.equal(normalizePhone('１３８１２３４５６７８'), '+8613812345678', 'full-width digits');
  assert.throws(() => normalizePhone('12'), /3 to 15 digits/);
  assert.throws(() => normalizePhone('+1234567890123456'), /3 to 15 digits/);
  assert.throws(() => normalizePhone('138+1234'), /'\+' may only lead/);
  assert.throws(() => normalizePhone('tel:138'), /only digits/);
  assert.equal(normalizeEmail('  Alice@Example.COM '), 'alice@example.com');
  assert.throws(() => normalizeEmail('alice@'), /name@domain/);
  assert.throws(() => normalizeEmail('a b@x.com'), /name@domain/);
});

test('base64url helpers round-trip and reject non-canonical input', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = crypto.getRandomValues(new Uint8Array(n));
    const text = toBase64Url(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(fromBase64Url(text), bytes);
    assert.deepEqual(fromBase64Url(Buffer.from(bytes).toString('base64')), bytes, 'standard base64 with padding too');
  }
  assert.equal(fromBase64Url('A'), undefined);
  assert.equal(fromBase64Url('AB'), undefined, 'non-zero trailing bits');
  assert.equal(fromBase64Url('a*b='), undefined);
});
