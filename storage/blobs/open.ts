// Opens the object store named by BLOB_URL: `file://path` (the default under DATA_DIR) or
// `s3://bucket[/prefix]?endpoint=…&region=…` with credentials from S3_ACCESS_KEY / S3_SECRET_KEY
// (never from the URL, never logged). Also reads the tier policy (BLOB_WARM_AFTER_DAYS,
// BLOB_COLD_AFTER_DAYS, BLOB_VERIFY) and S3 storage classes (BLOB_STORAGE_CLASSES).
import * as v from 'valibot';
import { BlobError, TIERS, keyProblem, type Tier } from './store.ts';
import { filesShelf } from './files.ts';
import { s3Shelf, type S3ShelfOptions } from './s3.ts';
import { tieredStore, type Logger, type TieredStore } from './tiered.ts';
import { moveTiers, policyFromEnv, type MoveOptions, type MoveReport, type TierPolicy } from './tiers.ts';

export interface OpenBlobOptions {
  now?: () => number;
  log?: Logger;
  /** Multipart part size for S3 (bytes, at least and by default 5 MiB). */
  partSize?: number;
  onRequest?: S3ShelfOptions['onRequest'];
  /** How long an S3 read may wait for an answer before it is sent again (default 30 s). */
  timeoutMs?: number;
  /** Check the store is reachable (and S3 credentials accepted) before returning; default true. */
  check?: boolean;
}

export interface BlobService {
  store: TieredStore;
  policy: TierPolicy;
  /** Where it is, without credentials. */
  location: string;
  health(): Promise<{ state: 'ok' | 'down'; error?: string }>;
  /** One tier-move pass with this store's policy. */
  moveTiers(opts?: MoveOptions): Promise<MoveReport>;
}

const S3Url = v.object({
  bucket: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'bucket must be 3-63 lower-case letters, digits, dots or dashes')),
  prefix: v.pipe(
    v.string(),
    v.check((p) => p === '' || keyProblem(p) === undefined, 'path (the key prefix) may only contain letters, digits and . _ = + - separated by "/"'),
  ),
  endpoint: v.optional(v.pipe(v.string(), v.url('endpoint must be an http(s) URL'), v.regex(/^https?:\/\//, 'endpoint must be an http(s) URL'))),
  region: v.optional(v.pipe(v.string(), v.regex(/^[a-z0-9-]{1,40}$/, 'region must be letters, digits and dashes')), 'us-east-1'),
});

const StorageClasses = v.pipe(
  v.string(),
  v.transform((s) => s.split(',').map((c) => c.trim())),
  v.check((l) => l.length === 3 && l.every((c) => /^[A-Z_]{1,40}$/.test(c)), 'BLOB_STORAGE_CLASSES must be three S3 storage classes for hot,warm,cold (e.g. STANDARD,STANDARD_IA,GLACIER_IR)'),
);

function fail(message: string): never {
  throw new BlobError('bad_input', `config: ${message}`);
}

export async function openBlobStore(url: string, env: Record<string, string | undefined>, opts: OpenBlobOptions = {}): Promise<BlobService> {
  const policy = policyFromEnv(env);
  let store: TieredStore;
  if (url.startsWith('file://')) {
    const root = url.slice('file://'.length);
    if (!root) fail('BLOB_URL file:// needs a path');
    store = tieredStore(filesShelf(root), { now: opts.now, log: opts.log });
  } else if (url.startsWith('s3://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      fail('BLOB_URL is not a valid s3:// URL');
    }
    if (parsed.username || parsed.password) fail('BLOB_URL must not hold credentials: use S3_ACCESS_KEY and S3_SECRET_KEY');
    const known = new Set(['endpoint', 'region']);
    for (const k of parsed.searchParams.keys()) if (!known.has(k)) fail(`BLOB_URL has an unknown parameter ${JSON.stringify(k)} (known: endpoint, region)`);
    const r = v.safeParse(S3Url, {
      bucket: parsed.hostname,
      prefix: decodeURIComponent(parsed.pathname.replace(/^\/+|\/+$/g, '')),
      endpoint: parsed.searchParams.get('endpoint') ?? undefined,
      region: parsed.searchParams.get('region') ?? undefined,
    });
    if (!r.success) fail(`BLOB_URL ${r.issues[0].message}`);
    const accessKey = env.S3_ACCESS_KEY || undefined;
    const secretKey = env.S3_SECRET_KEY || undefined;
    if (Boolean(accessKey) !== Boolean(secretKey)) fail('S3_ACCESS_KEY and S3_SECRET_KEY must be set together');
    let storageClasses: Partial<Record<Tier, string>> = {};
    if (env.BLOB_STORAGE_CLASSES) {
      const c = v.safeParse(StorageClasses, env.BLOB_STORAGE_CLASSES);
      if (!c.success) fail(c.issues[0].message);
      storageClasses = Object.fromEntries(TIERS.map((t, i) => [t, c.output[i]]));
    }
    const { bucket, prefix, region } = r.output;
    const shelf = s3Shelf({
      bucket,
      prefix: prefix ? `${prefix}/` : '',
      region,
      endpoint: r.output.endpoint ?? `https://s3.${region}.amazonaws.com`,
      accessKey,
      secretKey,
      partSize: opts.partSize,
      onRequest: opts.onRequest,
      timeoutMs: opts.timeoutMs,
    });
    store = tieredStore(shelf, { now: opts.now, log: opts.log, storageClasses });
  } else {
    fail('BLOB_URL must be file://path or s3://bucket?endpoint=…&region=…');
  }
  if (opts.check ?? true) await store.shelf.check();
  return {
    store,
    policy,
    location: store.shelf.location,
    async health() {
      try {
        await store.shelf.check();
        return { state: 'ok' };
      } catch (e) {
        return { state: 'down', error: (e as Error).message };
      }
    },
    moveTiers: (o) => moveTiers(store, policy, o),
  };
}
