// SMS text on the wire: GSM 03.38 default alphabet (one septet per byte, unpacked, as SMPP carries
// it) or UCS-2 when any character is outside it (Chinese, emoji); long texts split into parts with
// an 8-bit concatenation UDH. Plus the parsing of concatenation headers and delivery receipts.
// Web-standard only (no Buffer), so it runs anywhere.

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1BÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT: Record<string, number> = { '\f': 0x0a, '^': 0x14, '{': 0x28, '}': 0x29, '\\': 0x2f, '[': 0x3c, '~': 0x3d, ']': 0x3e, '|': 0x40, '€': 0x65 };
const BASIC_CODE = new Map([...GSM_BASIC].map((c, i) => [c, i]));

export const DATA_CODING_GSM = 0x00;
export const DATA_CODING_UCS2 = 0x08;
export const ESM_UDHI = 0x40;

/** GSM septets of text, or undefined when a character is outside the default alphabet. */
export function gsmSeptets(text: string): number[] | undefined {
  const out: number[] = [];
  for (const c of text) {
    const basic = BASIC_CODE.get(c);
    if (basic !== undefined && c !== '\x1B') out.push(basic);
    else if (c in GSM_EXT) out.push(0x1b, GSM_EXT[c]);
    else return undefined;
  }
  return out;
}

function utf16be(units: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < units.length; i++) {
    const u = units.charCodeAt(i);
    out.push(u >> 8, u & 0xff);
  }
  return out;
}

export interface SmsPart {
  dataCoding: number;
  esmClass: number;
  /** UDH (when split) followed by the encoded text. */
  bytes: Uint8Array;
}

export interface EncodeOptions {
  /** Concatenation reference shared by the parts (0-255). */
  ref: number;
  /** Refuse texts needing more parts than this. */
  maxParts?: number;
}

export class SmsTooLong extends Error {}

function chunk(units: number[], size: number, unsafeEnd: (last: number) => boolean): number[][] {
  const parts: number[][] = [];
  let i = 0;
  while (i < units.length) {
    let end = Math.min(i + size, units.length);
    // Never cut an escape from its character, nor a surrogate pair in two.
    if (end < units.length && unsafeEnd(units[end - 1])) end--;
    parts.push(units.slice(i, end));
    i = end;
  }
  return parts;
}

/** Splits text into submit_sm parts: one when it fits (160 GSM-7 / 70 UCS-2), else 153 / 67 per part with UDH. */
export function encodeSms(text: string, o: EncodeOptions): SmsPart[] {
  const septets = gsmSeptets(text);
  const ucs2 = septets === undefined;
  const single = ucs2 ? 70 : 160;
  const per = ucs2 ? 67 : 153;
  const units = ucs2 ? Array.from({ length: text.length }, (_, i) => text.charCodeAt(i)) : septets;
  const encode = (u: number[]) => (ucs2 ? utf16be(String.fromCharCode(...u)) : u);
  const dataCoding = ucs2 ? DATA_CODING_UCS2 : DATA_CODING_GSM;
  if (units.length <= single) return [{ dataCoding, esmClass: 0, bytes: Uint8Array.from(encode(units)) }];
  const chunks = chunk(units, per, ucs2 ? (u) => u >= 0xd800 && u <= 0xdbff : (u) => u === 0x1b);
  const max = Math.min(o.maxParts ?? 255, 255);
  if (chunks.length > max) throw new SmsTooLong(`text needs ${chunks.length} SMS parts, at most ${max} are allowed`);
  return chunks.map((c, i) => ({
    dataCoding,
    esmClass: ESM_UDHI,
    bytes: Uint8Array.from([0x05, 0x00, 0x03, o.ref & 0xff, chunks.length, i + 1, ...encode(c)]),
  }));
}

export interface Concat {
  ref: number;
  total: number;
  seq: number;
}

/** The concatenation information element among a part's UDH elements (8-bit 0x00 or 16-bit 0x08 ref). */
export function concatInfo(udh: ReadonlyArray<Uint8Array> | undefined): Concat | undefined {
  for (const ie of udh ?? []) {
    if (ie[0] === 0x00 && ie[1] === 3 && ie.length >= 5) return valid({ ref: ie[2], total: ie[3], seq: ie[4] });
    if (ie[0] === 0x08 && ie[1] === 4 && ie.length >= 6) return valid({ ref: (ie[2] << 8) | ie[3], total: ie[4], seq: ie[5] });
  }
  return undefined;
}

function valid(c: Concat): Concat | undefined {
  return c.total >= 1 && c.seq >= 1 && c.seq <= c.total ? c : undefined;
}

export interface Receipt {
  id: string;
  stat: string;
  err?: string;
}

/** Parses the de-facto receipt text `id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:000 text:…`. */
export function parseReceipt(text: string): Receipt | undefined {
  const id = /\bid:\s*([^\s]+)/i.exec(text)?.[1];
  const stat = /\bstat:\s*([A-Za-z_]+)/i.exec(text)?.[1];
  if (!id || !stat) return undefined;
  const err = /\berr:\s*([^\s]+)/i.exec(text)?.[1];
  return { id, stat: stat.toUpperCase(), ...(err ? { err } : {}) };
}

/** SMPP 3.4 message_state TLV values to the receipt words. */
export const MESSAGE_STATES: Record<number, string> = { 1: 'ENROUTE', 2: 'DELIVRD', 3: 'EXPIRED', 4: 'DELETED', 5: 'UNDELIV', 6: 'ACCEPTD', 7: 'UNKNOWN', 8: 'REJECTD' };

/** What a receipt status means for the message: delivered, failed (and whether for good), or nothing yet. */
export function receiptOutcome(stat: string): { state: 'delivered' } | { state: 'failed'; permanent: boolean } | undefined {
  switch (stat) {
    case 'DELIVRD':
      return { state: 'delivered' };
    case 'UNDELIV':
    case 'REJECTD':
    case 'DELETED':
      return { state: 'failed', permanent: true };
    // The handset stayed unreachable for the validity period, or the SMSC lost track: worth a later try.
    case 'EXPIRED':
    case 'UNKNOWN':
      return { state: 'failed', permanent: false };
    default:
      return undefined; // ENROUTE, ACCEPTD: still on the way
  }
}

/** Phone handles: `+<digits>` for international numbers; SMPP addresses carry the digits only. */
export function smppAddress(handle: string): string {
  return handle.replace(/^\+/, '').replace(/[\s().-]/g, '');
}
