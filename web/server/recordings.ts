// Call recordings streamed back for playback (GET /api/conversations/:id/recordings/:rid, mounted in
// routes.ts behind the conversation's access check): audio/ogg from the object store, with HTTP Range
// (RFC 9110 §14) so <audio> can seek. The object store reads whole objects, so a range is cut from the
// stream (the bytes before it are read and dropped): fine for recordings of a few MB (32 kbit/s, about
// 14 MB an hour).
import * as v from 'valibot';
import { BlobNotFound, type BlobStore } from '../../storage/blobs/store.ts';

export const RecordingId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]{0,119}$/, 'not a recording id'));

/** Where a conversation's recording is (edges/sip/recording.ts writes it there). */
export const recordingKey = (conversation: string, rid: string) => `recordings/${conversation}/${rid}.opus`;

type Failure = { status: 400 | 404 | 416; error: string; headers?: Record<string, string> };

/** The recording as a Response (200 whole, 206 a range), or why not. */
export async function recordingResponse(blobs: Pick<BlobStore, 'get'>, conversation: string, rid: string, range: string | undefined): Promise<Response | Failure> {
  const id = v.safeParse(RecordingId, rid);
  if (!id.success) return { status: 400, error: `rid: ${id.issues[0].message}` };
  let got;
  try {
    got = await blobs.get(recordingKey(conversation, id.output));
  } catch (e) {
    if (e instanceof BlobNotFound) return { status: 404, error: `conversation ${conversation} has no recording ${id.output}` };
    throw e;
  }
  const headers: Record<string, string> = { 'content-type': 'audio/ogg', 'accept-ranges': 'bytes', 'cache-control': 'private, no-store', 'x-content-type-options': 'nosniff' };
  if (!range) return new Response(got.body, { status: 200, headers: { ...headers, 'content-length': String(got.size) } });
  const r = parseRange(range, got.size);
  if (!r) {
    await got.body.cancel();
    return { status: 416, error: `range ${range} is not satisfiable (the recording has ${got.size} bytes)`, headers: { 'content-range': `bytes */${got.size}` } };
  }
  return new Response(slice(got.body, r.start, r.end), {
    status: 206,
    headers: { ...headers, 'content-length': String(r.end - r.start + 1), 'content-range': `bytes ${r.start}-${r.end}/${got.size}` },
  });
}

/** One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`), clamped to the size; undefined if unsatisfiable. */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '') || size === 0) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start <= end && start < size ? { start, end } : undefined;
}

/** Bytes [start, end] of a stream. */
function slice(body: ReadableStream<Uint8Array>, start: number, end: number): ReadableStream<Uint8Array> {
  let at = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        const from = Math.max(0, start - at);
        const to = Math.min(chunk.length, end + 1 - at);
        if (from < to) out.enqueue(chunk.subarray(from, to));
        at += chunk.length;
      },
    }),
  );
}
