// S3 backend through @bradenmacdonald/s3-lite-client (path-style, SigV4). Small bodies (already in
// memory) go up in one PUT with their SHA-256 in the metadata. Streams go up as a multipart upload
// (parts of `partSize`, at most four in flight, so memory stays a few parts whatever the size) to a
// temporary "_incoming/" key while they are hashed, and a server-side copy then places them under
// their final path with the hash in their metadata: the object appears whole, with its checksum,
// in one step.
import { S3Client, S3Errors } from '@bradenmacdonald/s3-lite-client';
import { BlobError, BlobNotFound, type Body } from './store.ts';
import { hashingStream, sha256Digest, sha256Hex } from './digest.ts';
import type { Shelf, ShelfMeta, ShelfWrite } from './shelf.ts';

export interface S3ShelfOptions {
  endpoint: string;
  region: string;
  bucket: string;
  /** Key prefix inside the bucket ("" or ending with "/"). */
  prefix?: string;
  accessKey?: string;
  secretKey?: string;
  /** Multipart part size in bytes (S3's minimum, and the default, is 5 MiB). An upload holds about 11 parts in memory. */
  partSize?: number;
  /** Called for each request the store makes (method and query): metrics and tests. */
  onRequest?: (req: { method: string; query: string; path: string }) => void;
  /** How long a read (GET, HEAD) may wait for the server's answer before it is sent again or given up; default 30 s. */
  timeoutMs?: number;
}

/** Tries per read: one that gets no answer is sent again. */
const TRIES = 3;

const META = 'x-amz-meta-';
const USER = 'u-';

/** Turns the client's errors into the store's: missing objects, refused credentials, unreachable servers. */
export function s3Error(e: unknown, what: string): Error {
  if (e instanceof BlobError) return e;
  if (e instanceof S3Errors.ServerError) {
    if (e.statusCode === 404 || e.code === 'NoSuchKey') return new BlobNotFound(what);
    if (e.statusCode === 403 || ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied'].includes(e.code)) {
      return new BlobError('access_denied', `S3 refused the request for ${what} (${e.code}): check S3_ACCESS_KEY and S3_SECRET_KEY and the bucket's policy`, { cause: e });
    }
    return new BlobError('unavailable', `S3 error for ${what}: ${e.statusCode} ${e.code}: ${e.message}`, { cause: e });
  }
  if (e instanceof S3Errors.S3Error) return new BlobError('bad_input', `S3 client refused ${what}: ${e.message}`, { cause: e });
  const msg = e instanceof Error ? (e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message) : String(e);
  return new BlobError('unavailable', `S3 request for ${what} failed: ${msg}`, { cause: e });
}

/**
 * A client that reports each request and bounds the wait of reads: fetch would wait five minutes for
 * a server that accepted a request and never answered it. Only reads are given up and sent again: the
 * client cannot abort a request it gave up on, so a PUT or DELETE sent again could be overtaken by the
 * first one arriving late (an object deleted after it was written again, or brought back after it was
 * deleted). Writes keep fetch's own limit. makeRequest is the client's single way out.
 */
class GuardedClient extends S3Client {
  constructor(
    opts: ConstructorParameters<typeof S3Client>[0],
    private readonly timeoutMs: number,
    private readonly observe?: S3ShelfOptions['onRequest'],
  ) {
    super(opts);
  }
  override async makeRequest(args: Parameters<S3Client['makeRequest']>[0]): Promise<Response> {
    if (this.observe) {
      const q = args.query === undefined ? '' : typeof args.query === 'string' ? args.query : new URLSearchParams(args.query).toString();
      this.observe({ method: args.method, query: q, path: args.objectName });
    }
    if (args.method !== 'GET' && args.method !== 'HEAD') return super.makeRequest(args);
    const wait = this.timeoutMs;
    for (let n = 1; ; n++) {
      const sent = super.makeRequest(args);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), wait)));
      const res = await Promise.race([sent, late]).finally(() => clearTimeout(timer));
      if (res) return res;
      // Given up: an answer that still comes is dropped, and its error is nobody's.
      sent.then((r) => r.body?.cancel(), () => {}).catch(() => {});
      if (n >= TRIES) throw new BlobError('unavailable', `S3 did not answer ${args.method} ${args.objectName} within ${wait} ms (${n} tries)`);
    }
  }
}

export function s3Shelf(opts: S3ShelfOptions): Shelf {
  const partSize = opts.partSize ?? 5 * 1024 * 1024;
  if (partSize < 5 * 1024 * 1024) throw new BlobError('bad_input', 'S3 part size must be at least 5 MiB');
  if (Boolean(opts.accessKey) !== Boolean(opts.secretKey)) throw new BlobError('bad_input', 'S3 needs both an access key and a secret key, or neither');
  const client = new GuardedClient(
    { endPoint: opts.endpoint, region: opts.region, bucket: opts.bucket, accessKey: opts.accessKey || undefined, secretKey: opts.secretKey || undefined, pathStyle: true },
    opts.timeoutMs ?? 30_000,
    opts.onRequest,
  );
  const root = opts.prefix ?? '';
  const full = (path: string) => root + path;

  function headers(w: { contentType: string; sha256: string; createdAt: number; meta: Record<string, string>; storageClass?: string }): Record<string, string> {
    const h: Record<string, string> = {
      'Content-Type': w.contentType,
      [`${META}sha256`]: w.sha256,
      [`${META}created`]: String(w.createdAt),
    };
    for (const [k, val] of Object.entries(w.meta)) h[`${META}${USER}${k}`] = val;
    if (w.storageClass) h['x-amz-storage-class'] = w.storageClass;
    return h;
  }

  function infoFrom(get: (name: string) => string | null | undefined, size: number, path: string): ShelfMeta {
    const sha256 = get(`${META}sha256`);
    if (!sha256) throw new BlobError('integrity', `S3 object ${JSON.stringify(path)} has no sha256 metadata (not written by this store?)`);
    const meta: Record<string, string> = {};
    return {
      contentType: get('content-type') ?? 'application/octet-stream',
      size,
      sha256,
      createdAt: Number(get(`${META}created`) ?? 0),
      meta,
      storageClass: get('x-amz-storage-class') ?? 'STANDARD',
    };
  }

  function userMeta(entries: Iterable<[string, string]>): Record<string, string> {
    const meta: Record<string, string> = {};
    for (const [k, val] of entries) if (k.toLowerCase().startsWith(META + USER)) meta[k.toLowerCase().slice(META.length + USER.length)] = val;
    return meta;
  }

  async function stat(path: string): Promise<ShelfMeta | undefined> {
    try {
      const st = await client.statObject(full(path));
      const md = st.metadata as Record<string, string>;
      const lower = new Map(Object.entries(md).map(([k, val]) => [k.toLowerCase(), val]));
      const info = infoFrom((n) => lower.get(n), st.size, path);
      info.meta = userMeta(lower);
      return info;
    } catch (e) {
      const err = s3Error(e, path);
      if (err instanceof BlobNotFound) return undefined;
      throw err;
    }
  }

  return {
    kind: 's3',
    location: `s3://${opts.bucket}/${root}?endpoint=${opts.endpoint}&region=${opts.region}`,

    async write(path, body: Body, w: ShelfWrite) {
      if (body instanceof Uint8Array) {
        if (w.size !== undefined && body.byteLength !== w.size) throw new BlobError('bad_input', `blob put: body has ${body.byteLength} bytes, not the declared ${w.size}`);
        const sha256 = sha256Hex(body);
        try {
          await client.putObject(full(path), body as Uint8Array<ArrayBuffer>, { metadata: headers({ ...w, sha256 }), partSize });
        } catch (e) {
          throw s3Error(e, path);
        }
        return { size: body.byteLength, sha256 };
      }
      const digest = sha256Digest();
      const incoming = full(`_incoming/${crypto.randomUUID()}`);
      try {
        try {
          await client.putObject(incoming, body.pipeThrough(hashingStream(digest, w.size)), { metadata: { 'Content-Type': w.contentType }, partSize });
        } catch (e) {
          // The client stops at the first failed part; what the server holds of the upload is
          // dropped by the bucket's rule for incomplete multipart uploads.
          throw s3Error(e, path);
        }
        if (w.size !== undefined && digest.bytes !== w.size) throw new BlobError('bad_input', `blob put: body has ${digest.bytes} bytes, not the declared ${w.size}`);
        const result = { size: digest.bytes, sha256: digest.hex() };
        try {
          await client.copyObject({ sourceKey: incoming }, full(path), { metadata: headers({ ...w, ...result }) as never });
        } catch (e) {
          throw s3Error(e, path);
        }
        return result;
      } finally {
        await client.deleteObject(incoming).catch(() => {});
      }
    },

    async read(path) {
      let res: Response;
      try {
        res = await client.getObject(full(path));
      } catch (e) {
        const err = s3Error(e, path);
        if (err instanceof BlobNotFound) return undefined;
        throw err;
      }
      if (!res.body) throw new BlobError('unavailable', `S3 sent no body for ${JSON.stringify(path)}`);
      const size = Number(res.headers.get('content-length') ?? NaN);
      try {
        const info = infoFrom((n) => res.headers.get(n), size, path);
        const pairs: [string, string][] = [];
        res.headers.forEach((value, name) => pairs.push([name, value]));
        info.meta = userMeta(pairs);
        // Node's fetch cancels a body whose Response was garbage-collected while nobody read it yet
        // (undici's FinalizationRegistry); piping locks the body now, so the caller's stream outlives `res`.
        return { body: (res.body as ReadableStream<Uint8Array>).pipeThrough(new TransformStream<Uint8Array, Uint8Array>()), info };
      } catch (e) {
        await res.body.cancel().catch(() => {});
        throw e;
      }
    },

    stat,

    async copy(src, dst, o) {
      // Copying with new metadata (REPLACE) is how S3 changes a storage class; the metadata is
      // read first so the hash, creation time and user meta travel with the object.
      const info = await stat(src);
      if (!info) throw new BlobNotFound(src);
      try {
        await client.copyObject({ sourceKey: full(src) }, full(dst), { metadata: headers({ ...info, storageClass: o?.storageClass }) as never });
      } catch (e) {
        throw s3Error(e, src);
      }
    },

    async remove(path) {
      try {
        await client.deleteObject(full(path));
      } catch (e) {
        const err = s3Error(e, path);
        if (!(err instanceof BlobNotFound)) throw err;
      }
    },

    async *list(prefix) {
      try {
        for await (const o of client.listObjects({ prefix: full(prefix) })) yield { path: o.key.slice(root.length), size: o.size };
      } catch (e) {
        throw s3Error(e, `list ${prefix}`);
      }
    },

    async check() {
      try {
        await client.listObjects({ prefix: full('_check/'), maxResults: 1 }).next();
      } catch (e) {
        const err = s3Error(e, `bucket ${opts.bucket}`);
        if (err instanceof BlobNotFound) throw new BlobError('unavailable', `S3 bucket ${JSON.stringify(opts.bucket)} does not exist at ${opts.endpoint}`, { cause: e });
        throw err;
      }
    },
  };
}
