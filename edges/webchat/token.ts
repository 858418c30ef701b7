// Signed app-user tokens (PROTOCOL.md, "In-app users"): the app's backend signs who its user is with the
// app secret, so the engine can trust the user id and the phone/email it vouches for. Web Crypto only.
import type { AppUser } from './protocol.ts';

const enc = new TextEncoder();
/** Clock difference tolerated between the app's backend and the engine. */
const SKEW_SEC = 30;
/** A token valid longer than this is refused: a leaked token must not live for ever. */
export const MAX_TOKEN_LIFETIME_SEC = 7 * 24 * 3600;

/** The user as signed: only the known fields that are present, in alphabetical order, as compact JSON. */
export function canonicalUser(user: AppUser): string {
  const out: Record<string, string> = {};
  for (const k of ['email', 'id', 'name', 'phone'] as const) if (user[k] !== undefined) out[k] = user[k];
  return JSON.stringify(out);
}

const b64url = (bytes: ArrayBuffer): string => {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const fromB64url = (s: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));

const hmacKey = (secret: string, use: 'sign' | 'verify') => crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [use]);

/** `v1.<exp>.<base64url HMAC-SHA256(secret, "<exp>.<canonical user JSON>")>`, exp in seconds since epoch. */
export async function signUserToken(secret: string, user: AppUser, expSec: number): Promise<string> {
  const sig = await crypto.subtle.sign('HMAC', await hmacKey(secret, 'sign'), enc.encode(`${expSec}.${canonicalUser(user)}`));
  return `v1.${expSec}.${b64url(sig)}`;
}

export type TokenCheck = { ok: true } | { ok: false; code: 'bad_token' | 'expired_token'; reason: string };

export async function verifyUserToken(secret: string, user: AppUser, token: string, nowMs = Date.now()): Promise<TokenCheck> {
  const m = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { ok: false, code: 'bad_token', reason: 'token must look like v1.<exp>.<signature> (see PROTOCOL.md)' };
  const exp = Number(m[1]);
  const ok = await crypto.subtle.verify('HMAC', await hmacKey(secret, 'verify'), fromB64url(m[2]), enc.encode(`${exp}.${canonicalUser(user)}`));
  // The signature first: an expired but forged token is reported as forged.
  if (!ok) return { ok: false, code: 'bad_token', reason: 'token signature does not match this user for this app' };
  const now = Math.floor(nowMs / 1000);
  if (exp + SKEW_SEC < now) return { ok: false, code: 'expired_token', reason: `token expired ${now - exp} s ago` };
  if (exp - now > MAX_TOKEN_LIFETIME_SEC) return { ok: false, code: 'bad_token', reason: `token expiry is more than ${MAX_TOKEN_LIFETIME_SEC / 86400} days ahead` };
  return { ok: true };
}
