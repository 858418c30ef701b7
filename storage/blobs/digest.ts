// Streaming SHA-256 and byte counting. Web Crypto only hashes whole buffers, so this small adapter
// uses node:crypto's incremental hash (Deno provides node:crypto too); large bodies are never buffered.
import { createHash } from 'node:crypto';
import { BlobError } from './store.ts';

export interface Digest {
  update(chunk: Uint8Array): void;
  /** Hex SHA-256 of everything seen; call once. */
  hex(): string;
  readonly bytes: number;
}

export function sha256Digest(): Digest {
  const h = createHash('sha256');
  let bytes = 0;
  return {
    update(chunk) {
      h.update(chunk);
      bytes += chunk.byteLength;
    },
    hex: () => h.digest('hex'),
    get bytes() {
      return bytes;
    },
  };
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A pass-through that hashes and counts what flows through it, refusing more than `limit` bytes
 * (the declared size) as soon as it is passed, so an oversized body is not streamed to the end.
 */
export function hashingStream(digest: Digest, limit?: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      if (!(chunk instanceof Uint8Array)) throw new BlobError('bad_input', 'blob put: the body stream must yield Uint8Array chunks');
      digest.update(chunk);
      if (limit !== undefined && digest.bytes > limit) throw new BlobError('bad_input', `blob put: body is longer than the declared size ${limit}`);
      controller.enqueue(chunk);
    },
  });
}

/** Reads a whole (small) stream; used for JSON records, never for object bodies. */
export async function readAll(stream: ReadableStream<Uint8Array>, max = 1 << 20): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.byteLength;
    if (n > max) throw new BlobError('bad_input', `record larger than ${max} bytes`);
    parts.push(chunk);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Hashes a stream to its end: the tier mover's verification of a copy. */
export async function hashStream(stream: ReadableStream<Uint8Array>): Promise<{ size: number; sha256: string }> {
  const d = sha256Digest();
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) d.update(chunk);
  return { size: d.bytes, sha256: d.hex() };
}
