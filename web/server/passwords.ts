// Password hashing: scrypt (memory-hard, deliberately slow) behind a tiny adapter so the format is ours.
// node:crypto's scrypt runs on Node and on Deno 2 (its node: compatibility layer); WebCrypto has no scrypt.
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';

/** N=2^15, r=8, p=1: about 32 MiB and tens of ms per hash on this machine's cores — slow for guessers. */
export const SCRYPT = { N: 1 << 15, r: 8, p: 1, keyLen: 32 } as const;

function scrypt(password: string, salt: Buffer, p: { N: number; r: number; p: number; keyLen: number }): Promise<Buffer> {
  return new Promise((ok, fail) =>
    scryptCb(password.normalize('NFKC'), salt, p.keyLen, { N: p.N, r: p.r, p: p.p, maxmem: 128 * p.N * p.r * 2 }, (e, key) => (e ? fail(e) : ok(key))),
  );
}

/** `scrypt$N$r$p$<salt b64>$<key b64>`: the parameters travel with the hash, so they can be raised later. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every((x) => Number.isInteger(x) && x > 0) || N > 1 << 20) return false;
  const want = Buffer.from(parts[5], 'base64');
  const got = await scrypt(password, Buffer.from(parts[4], 'base64'), { N, r, p, keyLen: want.length });
  return got.length === want.length && timingSafeEqual(got, want);
}
