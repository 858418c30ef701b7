// Attachments from the widget or an app: the file goes to the object store under the customer's own
// prefix first (POST /webchat/v1/upload), then a message frame names it. Size and type limits answer
// 413 / 415 with the reason; nothing partial is stored.
import type { Context } from 'hono';
import type { BlobStore } from '../../storage/blobs/store.ts';
import type { Attachment } from '../message.ts';

export interface UploadLimits {
  maxBytes: number;
  /** Accepted MIME types (exact, lower case). */
  types: readonly string[];
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxBytes: 10 * 1024 * 1024,
  types: ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain', 'audio/mpeg', 'audio/ogg', 'video/mp4'],
};

const enc = new TextEncoder();
const b64 = (s: string) => btoa(String.fromCharCode(...enc.encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');

/** Every object a customer uploads lives under this prefix; message frames may only name keys under it. */
export async function uploadPrefix(account: string, handle: string): Promise<string> {
  const h = hex(await crypto.subtle.digest('SHA-256', enc.encode(handle))).slice(0, 32);
  return `webchat/${b64(account)}/${h}/`;
}

/** A file name as a key segment: unsafe characters become "_", at most 100 characters, never hidden. */
export function safeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._=+-]/g, '_').replace(/^\.+/, '_').slice(-100);
  return s || 'file';
}

export class UploadRejection extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 413 | 415,
    readonly code: string,
    reason: string,
  ) {
    super(reason);
  }
}

/** Reads at most maxBytes of the body; one byte more is a 413, whatever Content-Length claimed. */
async function readLimited(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new UploadRejection(413, 'too_large', `file is larger than ${maxBytes} bytes`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Checks limits, stores the body and answers the attachment descriptor for a message frame. */
export async function storeUpload(c: Context, blobs: BlobStore, limits: UploadLimits, account: string, handle: string): Promise<Attachment> {
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (!limits.types.includes(type)) throw new UploadRejection(415, 'bad_type', `type ${JSON.stringify(type || '(none)')} is not accepted; accepted: ${limits.types.join(', ')}`);
  const declared = Number(c.req.header('content-length'));
  if (Number.isFinite(declared) && declared > limits.maxBytes) throw new UploadRejection(413, 'too_large', `file is ${declared} bytes, more than ${limits.maxBytes}`);
  const bytes = await readLimited(c.req.raw.body, limits.maxBytes);
  if (bytes.length === 0) throw new UploadRejection(400, 'empty', 'file is empty');
  let name = 'file';
  try {
    name = decodeURIComponent(c.req.header('x-filename') ?? 'file').slice(0, 255) || 'file';
  } catch {
    throw new UploadRejection(400, 'bad_name', 'x-filename must be percent-encoded');
  }
  // The random segment makes the key unguessable: it is what lets the widget fetch the file back.
  const rand = hex(crypto.getRandomValues(new Uint8Array(16)).buffer);
  const key = `${await uploadPrefix(account, handle)}${rand}/${safeName(name)}`;
  const put = await blobs.put(key, bytes, { contentType: type, size: bytes.length, meta: { channel: 'webchat' } });
  return { key, name, contentType: type, size: put.size, sha256: put.sha256 };
}
