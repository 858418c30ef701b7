// Field-level encryption of personal data at rest (AES-256-GCM) and keyed hashes for lookups.
// Web Crypto only (crypto.subtle), so the same code runs on Node 20 and Deno 2.
//
// A sealed value is one string, safe to store in any text field:
//   enc1.<keyId>.<iv base64url>.<ciphertext ‖ 16-byte tag, base64url>
// The key id travels with the value so a ring holding old and new keys opens both (rotation), and
// "enc1.<keyId>" is bound as additional authenticated data, so relabelling a value with another key
// id, or editing any part of it, fails authentication instead of decrypting to garbage.

export interface KeyRing {
  activeId: string;
  keys: Record<string, Uint8Array /* 32 bytes */>;
  indexKey: Uint8Array /* 32 bytes, for the keyed hash */;
}

export type LookupKind = 'phone' | 'email' | 'handle';

export const SEALED_PREFIX = 'enc1.';
const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export class FieldCipher {
  readonly activeId: string;

  private constructor(
    private readonly aes: Map<string, CryptoKey>,
    private readonly hmac: CryptoKey,
    activeId: string,
  ) {
    this.activeId = activeId;
  }

  static async create(ring: KeyRing): Promise<FieldCipher> {
    if (!ring || typeof ring !== 'object') throw new Error('key ring: missing');
    const ids = Object.keys(ring.keys ?? {});
    if (ids.length === 0) throw new Error('key ring: no encryption keys');
    const aes = new Map<string, CryptoKey>();
    for (const id of ids) {
      if (!KEY_ID.test(id)) throw new Error(`key ring: key id "${id}" must be 1-64 letters, digits, _ or -`);
      aes.set(id, await importAesKey(ring.keys[id], `key "${id}"`));
    }
    if (!aes.has(ring.activeId)) throw new Error(`key ring: active key id "${ring.activeId}" is not in the ring (${ids.join(', ')})`);
    const index = exact32(ring.indexKey, 'index key');
    const hmac = await crypto.subtle.importKey('raw', own(index), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new FieldCipher(aes, hmac, ring.activeId);
  }

  /** "enc1.<keyId>.<iv base64url>.<ciphertext+tag base64url>" – AES-256-GCM, random 12-byte iv, the key id is also bound as additional data. */
  async seal(plain: string): Promise<string> {
    if (typeof plain !== 'string') throw new Error('seal: value must be a string');
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const key = this.aes.get(this.activeId)!;
    const ct = await gcmEncrypt(key, iv, enc.encode(plain), aadFor(this.activeId));
    return `${SEALED_PREFIX}${this.activeId}.${toBase64Url(iv)}.${toBase64Url(ct)}`;
  }

  /** Opens a sealed value with whichever key of the ring sealed it; throws a clear Error otherwise. */
  async open(sealed: string): Promise<string> {
    const { keyId, iv, ct } = parseSealed(sealed);
    const key = this.aes.get(keyId);
    if (!key) throw new Error(`sealed value: unknown key id "${keyId}" (the ring holds ${[...this.aes.keys()].join(', ')})`);
    let plain: Uint8Array;
    try {
      plain = await gcmDecrypt(key, iv, ct, aadFor(keyId));
    } catch {
      throw new Error(`sealed value: authentication failed for key id "${keyId}" (tampered, or sealed with a different key under that id)`);
    }
    try {
      return dec.decode(plain);
    } catch {
      throw new Error('sealed value: decrypted bytes are not UTF-8');
    }
  }

  keyIdOf(sealed: string): string {
    return parseSealed(sealed).keyId;
  }

  /** Sealed with the active key? (false for anything that is not a well-formed sealed value) */
  isCurrent(sealed: string): boolean {
    return isSealed(sealed) && sealed.startsWith(`${SEALED_PREFIX}${this.activeId}.`);
  }

  /** HMAC-SHA256(indexKey, kind + ':' + normalized value) as base64url: equality lookups without decrypting.
   * The index key is separate from the encryption keys, so rotating those leaves every hash unchanged. */
  async lookupHash(kind: LookupKind, value: string): Promise<string> {
    const normalized = normalizeFor(kind, value);
    const mac = await crypto.subtle.sign('HMAC', this.hmac, own(enc.encode(`${kind}:${normalized}`)));
    return toBase64Url(new Uint8Array(mac));
  }
}

/** Does the string have the shape of a sealed value? (cheap check, no decryption) */
export function isSealed(value: unknown): value is string {
  if (typeof value !== 'string' || !value.startsWith(SEALED_PREFIX)) return false;
  try {
    parseSealed(value);
    return true;
  } catch {
    return false;
  }
}

function normalizeFor(kind: LookupKind, value: string): string {
  if (typeof value !== 'string') throw new Error(`lookupHash: ${kind} must be a string`);
  switch (kind) {
    case 'phone':
      return normalizePhone(value);
    case 'email':
      return normalizeEmail(value);
    case 'handle': {
      // Channel handles (open ids, user names) are case-sensitive on most channels: trim only.
      const h = value.normalize('NFC').trim();
      if (!h) throw new Error('lookupHash: handle is empty');
      return h;
    }
    default:
      throw new Error(`lookupHash: unknown kind "${String(kind)}" (phone, email or handle)`);
  }
}

/**
 * E.164-ish phone normalization, so the same number typed differently hashes the same:
 * - keep the digits and one leading '+'; drop spaces, dashes, dots, brackets and a "(0)" trunk marker;
 * - a leading international prefix "00" becomes '+';
 * - a bare Chinese mobile number (11 digits, 1[3-9]…) becomes +86…, and so does 86 followed by one;
 * - anything else without '+' stays digits only (no country can be guessed safely);
 * - 3 to 15 digits (E.164's maximum), else an Error.
 * '+86 138-1234-5678', '+8613812345678', '008613812345678' and '13812345678' all give '+8613812345678'.
 */
export function normalizePhone(raw: string): string {
  if (typeof raw !== 'string') throw new Error('phone: must be a string');
  const s = raw.normalize('NFKC').trim().replace(/\(0\)/g, '');
  if (/[^\d\s+().\-\/]/.test(s)) throw new Error(`phone: only digits, spaces, + ( ) . - / are allowed (got "${preview(raw)}")`);
  // '+' counts when it comes before the first digit ('+86 …' or '(+86) …'), and only once.
  const plus = s.includes('+');
  const firstDigit = s.search(/\d/);
  if (plus && (s.indexOf('+') !== s.lastIndexOf('+') || (firstDigit >= 0 && s.indexOf('+') > firstDigit))) throw new Error(`phone: '+' may only lead the number (got "${preview(raw)}")`);
  let digits = s.replace(/\D/g, '');
  let intl = plus;
  if (!intl && digits.startsWith('00')) {
    digits = digits.slice(2);
    intl = true;
  }
  if (!intl && /^1[3-9]\d{9}$/.test(digits)) {
    digits = `86${digits}`;
    intl = true;
  } else if (!intl && /^861[3-9]\d{9}$/.test(digits)) {
    intl = true;
  }
  if (digits.length < 3 || digits.length > 15) throw new Error(`phone: must have 3 to 15 digits (got ${digits.length})`);
  return intl ? `+${digits}` : digits;
}

/** Trim and lower-case (also Unicode NFC); must look like local@domain. */
export function normalizeEmail(raw: string): string {
  if (typeof raw !== 'string') throw new Error('email: must be a string');
  const e = raw.normalize('NFC').trim().toLowerCase();
  const at = e.lastIndexOf('@');
  if (at <= 0 || at === e.length - 1 || /\s/.test(e)) throw new Error(`email: must look like name@domain (got "${preview(raw)}")`);
  return e;
}

function preview(s: string): string {
  return s.length > 24 ? `${s.slice(0, 24)}…` : s;
}

function parseSealed(sealed: string): { keyId: string; iv: Uint8Array; ct: Uint8Array } {
  if (typeof sealed !== 'string') throw new Error('sealed value: must be a string');
  const parts = sealed.split('.');
  if (parts.length !== 4 || `${parts[0]}.` !== SEALED_PREFIX) throw new Error('sealed value: malformed (expected enc1.<keyId>.<iv>.<ciphertext>)');
  const [, keyId, ivText, ctText] = parts;
  if (!KEY_ID.test(keyId)) throw new Error('sealed value: malformed key id');
  const iv = fromBase64Url(ivText);
  const ct = fromBase64Url(ctText);
  if (!iv || iv.length !== IV_BYTES) throw new Error('sealed value: malformed iv');
  if (!ct || ct.length < TAG_BYTES) throw new Error('sealed value: malformed ciphertext');
  return { keyId, iv, ct };
}

function aadFor(keyId: string): Uint8Array {
  return enc.encode(`${SEALED_PREFIX}${keyId}`);
}

function exact32(bytes: Uint8Array, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new Error(`key ring: ${what} must be bytes`);
  if (bytes.length !== 32) throw new Error(`key ring: ${what} must be 32 bytes (got ${bytes.length})`);
  return bytes;
}

export async function importAesKey(bytes: Uint8Array, what: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', own(exact32(bytes, what)), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

// The raw primitive (exported for the known-answer test): returns ciphertext ‖ tag, as Web Crypto does.
export async function gcmEncrypt(key: CryptoKey, iv: Uint8Array, plain: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: own(iv), additionalData: own(aad), tagLength: 128 }, key, own(plain)));
}

export async function gcmDecrypt(key: CryptoKey, iv: Uint8Array, ctAndTag: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: own(iv), additionalData: own(aad), tagLength: 128 }, key, own(ctAndTag)));
}

// Web Crypto's types want bytes over a plain ArrayBuffer; a copy is cheap at field sizes.
function own(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(u);
}

// base64url without padding, by hand: Buffer is Node-only and btoa works on binary strings.
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63];
  }
  return out;
}

/** Decodes base64url or standard base64 (padding optional); undefined when it is not base64. */
export function fromBase64Url(text: string): Uint8Array | undefined {
  const s = text.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  if (s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of s) {
    const v = B64_INDEX.get(c);
    if (v === undefined) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits must be zero, so each value has exactly one encoding (no silent tampering room).
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out.subarray(0, o);
}
