// Chat links: a signed token that lets whoever holds it continue one conversation in web chat, sent by SMS
// to a caller who could not be answered on the phone (channel failover, edges/sip/failover.ts). It names
// the conversation and the phone it was sent to, so the web visitor joins that conversation and is linked
// to the caller's customer (the SMS reached that phone: as good a proof as the caller id). Web Crypto only.
import * as v from 'valibot';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** How long a chat link works. */
export const CHAT_LINK_TTL_SEC = 24 * 3600;

const PayloadSchema = v.strictObject({
  /** Conversation id. */
  c: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/)),
  /** The phone the link was sent to. */
  p: v.pipe(v.string(), v.regex(/^\+?[0-9]{3,20}$/)),
  /** Expiry, seconds since epoch. */
  e: v.pipe(v.number(), v.integer()),
});

export interface ChatLink {
  conversationId: string;
  phone: string;
  expSec: number;
}

const b64url = (bytes: Uint8Array): string => {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const fromB64url = (s: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
const key = (secret: string, use: 'sign' | 'verify') => crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [use]);

/** `l1.<base64url payload>.<base64url HMAC-SHA256(secret, "l1.<payload>")>`. */
export async function signChatLink(secret: string, link: ChatLink): Promise<string> {
  const body = `l1.${b64url(enc.encode(JSON.stringify({ c: link.conversationId, p: link.phone, e: link.expSec })))}`;
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', await key(secret, 'sign'), enc.encode(body)));
  return `${body}.${b64url(sig)}`;
}

/** The link's conversation and phone, or the reason it is refused (malformed, forged, expired). */
export async function verifyChatLink(secret: string, token: string, nowMs = Date.now()): Promise<{ ok: true; link: ChatLink } | { ok: false; reason: string }> {
  const m = /^(l1\.([A-Za-z0-9_-]{1,400}))\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { ok: false, reason: 'a chat link looks like l1.<payload>.<signature>' };
  const good = await crypto.subtle.verify('HMAC', await key(secret, 'verify'), fromB64url(m[3]), enc.encode(m[1]));
  if (!good) return { ok: false, reason: 'chat link signature does not match' };
  let payload: unknown;
  try {
    payload = JSON.parse(dec.decode(fromB64url(m[2])));
  } catch {
    return { ok: false, reason: 'chat link payload is not JSON' };
  }
  const p = v.safeParse(PayloadSchema, payload);
  if (!p.success) return { ok: false, reason: `chat link payload: ${p.issues[0].message}` };
  if (p.output.e * 1000 < nowMs) return { ok: false, reason: 'chat link expired' };
  return { ok: true, link: { conversationId: p.output.c, phone: p.output.p, expSec: p.output.e } };
}
