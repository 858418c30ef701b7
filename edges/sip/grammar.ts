// SIP messages: the grammar is kirm/sip.js's (`sip` on npm: parse, stringify, makeResponse), checked
// with valibot before the edge trusts it. sip.js drops what it cannot parse without a word, so a message
// too broken to parse is answered here with a 400 built from its raw Via/From/To/Call-ID/CSeq lines
// (RFC 3261 §8.2.6.1 copies them), and the reason in a Warning header.
import { createRequire } from 'node:module';
import * as v from 'valibot';

export interface SipUri {
  schema?: string;
  user?: string;
  host: string;
  port?: number;
  params: Record<string, string | null>;
}
export interface NameAddr {
  name?: string;
  uri: string;
  params: Record<string, string | null | undefined>;
}
export interface Via {
  version: string;
  protocol: string;
  host: string;
  port?: number;
  params: Record<string, string | number | null | undefined>;
}
export interface SipHeaders {
  via: Via[];
  to: NameAddr;
  from: NameAddr;
  'call-id': string;
  cseq: { seq: number; method: string };
  contact?: NameAddr[];
  'content-type'?: string;
  'content-length'?: number;
  [name: string]: unknown;
}
export interface SipRequest {
  method: string;
  uri: string;
  version: string;
  headers: SipHeaders;
  content: string;
}
export interface SipResponse {
  status: number;
  reason: string;
  version: string;
  headers: SipHeaders;
  content: string;
}
export type SipMessage = SipRequest | SipResponse;

interface SipJs {
  parse(data: string): Record<string, unknown> | undefined;
  stringify(m: SipMessage): string;
  makeResponse(rq: SipRequest, status: number, reason: string, extension?: { headers?: Record<string, unknown>; content?: string }): SipResponse;
  parseUri(s: string): SipUri | undefined;
}
// CommonJS without types: loaded through require and given the types above.
const sipjs = createRequire(import.meta.url)('sip') as SipJs;

const Token = v.pipe(v.string(), v.regex(/^[A-Za-z0-9.!%*_+`'~-]+$/, 'is not a SIP token'));
const Addr = v.looseObject({ uri: v.pipe(v.string(), v.regex(/^(sips?|tel):[^\s<>]+$/, 'is not a sip:, sips: or tel: URI')), params: v.record(v.string(), v.unknown()) });
const Headers = v.looseObject({
  via: v.pipe(
    v.array(v.looseObject({ host: v.pipe(v.string(), v.minLength(1)), params: v.looseObject({ branch: v.optional(v.unknown()) }) })),
    v.minLength(1, 'has no Via'),
  ),
  from: Addr,
  to: Addr,
  'call-id': v.pipe(v.string(), v.minLength(1), v.maxLength(256)),
  cseq: v.object({ seq: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 31 - 1)), method: Token }),
  'content-length': v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
const Request = v.looseObject({ method: Token, uri: v.pipe(v.string(), v.regex(/^(sips?|tel):\S+$/, 'is not a SIP URI')), version: v.literal('2.0'), headers: Headers });
const Response = v.looseObject({ status: v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(699)), headers: Headers });

export type Parsed = { ok: true; message: SipMessage } | { ok: false; reason: string };

/** A SIP message, or why it is not one. Never throws. */
export function parseSip(data: Uint8Array): Parsed {
  let raw: Record<string, unknown> | undefined;
  try {
    raw = sipjs.parse(binaryString(data));
  } catch (e) {
    return { ok: false, reason: `unparseable: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (!raw) return { ok: false, reason: 'not a SIP message (no start line and headers)' };
  const isRequest = typeof raw.method === 'string';
  const r = v.safeParse(isRequest ? Request : Response, raw);
  if (!r.success) {
    const i = r.issues[0];
    const path = v.getDotPath(i);
    const missing = i.received === 'undefined';
    return { ok: false, reason: `${path ?? 'message'} ${missing ? 'is missing or malformed' : i.message}` };
  }
  const m = raw as unknown as SipMessage;
  if (isRequest && (m as SipRequest).headers.cseq.method !== (m as SipRequest).method) return { ok: false, reason: 'CSeq method does not match the request method' };
  if (typeof m.content !== 'string') m.content = '';
  return { ok: true, message: m };
}

/** Bytes as a one-char-per-byte string: what sip.js's parser reads (it calls toString('binary')). */
function binaryString(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

export const isRequest = (m: SipMessage): m is SipRequest => 'method' in m;
export const stringifySip = (m: SipMessage): string => sipjs.stringify(m);
export const parseUri = (s: string): SipUri | undefined => {
  try {
    return sipjs.parseUri(s);
  } catch {
    return undefined;
  }
};

export function makeResponse(rq: SipRequest, status: number, reason: string, extra: { headers?: Record<string, unknown>; content?: string } = {}): SipResponse {
  const rs = sipjs.makeResponse(rq, status, reason, { headers: { ...extra.headers } });
  if (extra.content) rs.content = extra.content;
  return rs;
}

const RAW_COPY = /^(via|v|from|f|to|t|call-id|i|cseq)\s*:/i;

/**
 * A 400 for a request too broken to parse, from its raw header lines; undefined when it is not even a
 * request with a Via, a Call-ID and a CSeq (RFC 3261 says to discard those silently).
 */
export function badRequestFromRaw(data: Uint8Array, reason: string): string | undefined {
  const text = new TextDecoder('latin1').decode(data.subarray(0, 8192));
  const head = text.split(/\r?\n\r?\n/)[0].split(/\r?\n/);
  if (!head[0] || /^SIP\/2\.0\s/.test(head[0])) return undefined; // responses are never answered
  const lines = head.slice(1).filter((l) => RAW_COPY.test(l));
  const has = (re: RegExp) => lines.some((l) => re.test(l));
  if (!has(/^(via|v)\s*:/i) || !has(/^(call-id|i)\s*:/i) || !has(/^cseq\s*:/i)) return undefined;
  const toLine = lines.find((l) => /^(to|t)\s*:/i.test(l));
  const out = lines.map((l) => (l === toLine && !/;\s*tag=/i.test(l) ? `${l};tag=${crypto.randomUUID().slice(0, 8)}` : l));
  const warning = reason.replace(/["\\\r\n]/g, "'").slice(0, 200);
  return ['SIP/2.0 400 Bad Request', ...out, `Warning: 399 cc "${warning}"`, 'Content-Length: 0', '', ''].join('\r\n');
}
