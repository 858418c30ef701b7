import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { canonicalUser, signUserToken, verifyUserToken, MAX_TOKEN_LIFETIME_SEC } from './token.ts';

const secret = randomBytes(32).toString('base64url');
const user = { id: 'u-42', name: '李雷', phone: '+8613800000000', email: 'lei@example.com' };
const now = Date.UTC(2025, 5, 1);
const exp = now / 1000 + 3600;

test('the canonical user is the present fields in alphabetical order', () => {
  assert.equal(canonicalUser({ name: 'A', id: '1' }), '{"id":"1","name":"A"}');
  assert.equal(canonicalUser(user), '{"email":"lei@example.com","id":"u-42","name":"李雷","phone":"+8613800000000"}');
});

test('a token made as PROTOCOL.md says (any HMAC library) verifies; the signer and the check agree', async () => {
  // What an app backend in another language does, here with node:crypto instead of Web Crypto.
  const sig = createHmac('sha256', secret).update(`${exp}.${canonicalUser(user)}`).digest('base64url');
  const token = `v1.${exp}.${sig}`;
  assert.equal(await signUserToken(secret, user, exp), token);
  assert.deepEqual(await verifyUserToken(secret, user, token, now), { ok: true });
});

test('bad, tampered, expired and too long-lived tokens are refused with a reason', async () => {
  const token = await signUserToken(secret, user, exp);
  const cases: [string, Parameters<typeof verifyUserToken>, string, RegExp][] = [
    ['garbage', [secret, user, 'hello', now], 'bad_token', /v1\.<exp>/],
    ['other secret', [randomBytes(32).toString('base64url'), user, token, now], 'bad_token', /signature/],
    ['another user', [secret, { ...user, id: 'u-43' }, token, now], 'bad_token', /signature/],
    ['a changed phone', [secret, { ...user, phone: '+8613900000000' }, token, now], 'bad_token', /signature/],
    ['expired', [secret, user, token, now + 2 * 3600_000], 'expired_token', /expired 3600 s ago/],
  ];
  for (const [what, args, code, reason] of cases) {
    const r = await verifyUserToken(...args);
    assert.equal(r.ok, false, what);
    if (!r.ok) {
      assert.equal(r.code, code, what);
      assert.match(r.reason, reason, what);
    }
  }
  const far = await signUserToken(secret, user, now / 1000 + MAX_TOKEN_LIFETIME_SEC + 60);
  const r = await verifyUserToken(secret, user, far, now);
  assert.ok(!r.ok && /days ahead/.test(r.reason));
});
