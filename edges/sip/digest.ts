// Digest authentication toward a trunk (RFC 2617, RFC 7616 hashes as SIP uses them per RFC 8760):
// a 401/407 challenge is answered with an Authorization / Proxy-Authorization header. MD5 is not in
// WebCrypto, so this small adapter hashes with node:crypto (Deno provides it too).
import { createHash, randomBytes } from 'node:crypto';
import * as v from 'valibot';

export interface DigestChallenge {
  realm: string;
  nonce: string;
  algorithm: 'MD5' | 'SHA-256' | 'MD5-sess' | 'SHA-256-sess';
  qop?: 'auth';
  opaque?: string;
}

const ChallengeSchema = v.object({
  realm: v.string(),
  nonce: v.pipe(v.string(), v.minLength(1)),
  algorithm: v.optional(v.picklist(['MD5', 'SHA-256', 'MD5-sess', 'SHA-256-sess'], 'algorithm must be MD5 or SHA-256 (optionally -sess)'), 'MD5'),
  qop: v.optional(v.string()),
  opaque: v.optional(v.string()),
});

export class DigestError extends Error {
  override name = 'DigestError';
}

/** Parses `Digest realm="…", nonce="…", …` from a WWW-Authenticate / Proxy-Authenticate header. */
export function parseChallenge(header: string): DigestChallenge {
  const m = /^\s*Digest\s+(.*)$/is.exec(header);
  if (!m) throw new DigestError('challenge is not a Digest challenge');
  const params: Record<string, string> = {};
  for (const p of m[1].matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3];
  const r = v.safeParse(ChallengeSchema, params);
  if (!r.success) throw new DigestError(`bad Digest challenge: ${v.getDotPath(r.issues[0]) ?? ''} ${r.issues[0].message}`.trim());
  const qops = r.output.qop?.split(',').map((q) => q.trim());
  if (qops && !qops.includes('auth')) throw new DigestError(`challenge asks for qop=${r.output.qop}; only auth is supported`);
  return { realm: r.output.realm, nonce: r.output.nonce, algorithm: r.output.algorithm, qop: qops ? 'auth' : undefined, opaque: r.output.opaque };
}

const h = (alg: string, s: string) => createHash(alg.startsWith('SHA-256') ? 'sha256' : 'md5').update(s, 'utf8').digest('hex');

/** The response digest (RFC 2617 §3.2.2 / RFC 7616 §3.4.1). */
export function digestResponse(o: { challenge: DigestChallenge; username: string; password: string; method: string; uri: string; cnonce: string; nc: number }): string {
  const c = o.challenge;
  let ha1 = h(c.algorithm, `${o.username}:${c.realm}:${o.password}`);
  if (c.algorithm.endsWith('-sess')) ha1 = h(c.algorithm, `${ha1}:${c.nonce}:${o.cnonce}`);
  const ha2 = h(c.algorithm, `${o.method}:${o.uri}`);
  const nc = o.nc.toString(16).padStart(8, '0');
  return c.qop ? h(c.algorithm, `${ha1}:${c.nonce}:${nc}:${o.cnonce}:${c.qop}:${ha2}`) : h(c.algorithm, `${ha1}:${c.nonce}:${ha2}`);
}

/** The Authorization header value answering a challenge. */
export function authorization(o: { challenge: DigestChallenge; username: string; password: string; method: string; uri: string; cnonce?: string; nc?: number }): string {
  const cnonce = o.cnonce ?? randomBytes(12).toString('hex');
  const nc = o.nc ?? 1;
  const response = digestResponse({ ...o, cnonce, nc });
  const c = o.challenge;
  const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;
  const parts = [`username=${q(o.username)}`, `realm=${q(c.realm)}`, `nonce=${q(c.nonce)}`, `uri=${q(o.uri)}`, `response=${q(response)}`, `algorithm=${c.algorithm}`];
  if (c.qop) parts.push(`qop=${c.qop}`, `nc=${nc.toString(16).padStart(8, '0')}`, `cnonce=${q(cnonce)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${q(c.opaque)}`);
  return `Digest ${parts.join(', ')}`;
}
