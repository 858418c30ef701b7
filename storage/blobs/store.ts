// The object store's contract: what recordings, attachments and email bodies are stored through,
// the rules every key and put option must follow, and the typed errors callers can tell apart.
import * as v from 'valibot';

export const TIERS = ['hot', 'warm', 'cold'] as const;
export type Tier = (typeof TIERS)[number];

export type Body = Uint8Array | ReadableStream<Uint8Array>;

export interface PutOptions {
  contentType: string;
  /** Expected size; a body of another length is refused (and nothing is stored). */
  size?: number;
  /** Small user metadata (lower-case names, printable ASCII values), kept through tier moves. */
  meta?: Record<string, string>;
}

export interface PutResult {
  key: string;
  size: number;
  sha256: string;
  tier: Tier;
}

export interface BlobInfo {
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  tier: Tier;
  /** When the object was written (ms since epoch, the store's clock); tier moves keep it. */
  createdAt: number;
  meta: Record<string, string>;
}

export interface GetResult extends BlobInfo {
  body: ReadableStream<Uint8Array>;
}

export interface ListEntry {
  key: string;
  size: number;
  tier: Tier;
}

export interface BlobStore {
  readonly kind: 'files' | 's3';
  put(key: string, body: Body, opts: PutOptions): Promise<PutResult>;
  /** Reads from whichever tier holds the object; throws BlobNotFound. */
  get(key: string): Promise<GetResult>;
  /** Like get without the body; throws BlobNotFound. */
  head(key: string): Promise<BlobInfo>;
  /** Removes the object from every tier; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with prefix, in key order, each once whatever its tier. */
  list(prefix?: string): AsyncIterable<ListEntry>;
}

// ---- errors --------------------------------------------------------------------------------

export type BlobErrorCode = 'bad_key' | 'bad_input' | 'not_found' | 'access_denied' | 'integrity' | 'conflict' | 'unavailable';

export class BlobError extends Error {
  constructor(
    readonly code: BlobErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BlobError';
  }
}

export class BlobNotFound extends BlobError {
  constructor(readonly key: string) {
    super('not_found', `blob ${JSON.stringify(key)} not found`);
    this.name = 'BlobNotFound';
  }
}

// ---- key and option rules ------------------------------------------------------------------

export const MAX_KEY_LENGTH = 512;
// Segments stay below common file-name limits (255) with room for the files backend's sidecars.
const MAX_SEGMENT_LENGTH = 200;
const SEGMENT = /^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$/;

/** Why key is not acceptable, or undefined when it is. */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'must be a string';
  if (key.length === 0) return 'must not be empty';
  if (key.length > MAX_KEY_LENGTH) return `must be at most ${MAX_KEY_LENGTH} characters (got ${key.length})`;
  const segments = key.split('/');
  for (const s of segments) {
    if (s === '') return 'must not start or end with "/" nor contain "//"';
    if (s === '.' || s === '..') return 'must not contain "." or ".." segments';
    if (s.length > MAX_SEGMENT_LENGTH) return `must have segments of at most ${MAX_SEGMENT_LENGTH} characters`;
    if (s.startsWith('.')) return 'must not have segments starting with "."';
    if (!SEGMENT.test(s)) return 'may only contain letters, digits and . _ = + - separated by "/"';
  }
  return undefined;
}

export function checkKey(key: unknown): string {
  const problem = keyProblem(key);
  if (problem) throw new BlobError('bad_key', `blob key ${JSON.stringify(typeof key === 'string' ? key.slice(0, 80) : key)} ${problem}`);
  return key as string;
}

/** A list prefix is a key or a key's beginning (it may end with "/"), or empty for everything. */
export function checkPrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === '') return '';
  if (typeof prefix !== 'string') throw new BlobError('bad_key', 'blob prefix must be a string');
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const problem = keyProblem(trimmed);
  if (problem) throw new BlobError('bad_key', `blob prefix ${JSON.stringify(prefix.slice(0, 80))} ${problem}`);
  return prefix;
}

const MetaSchema = v.pipe(
  v.record(
    v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'meta names must be lower-case letters, digits and dashes (at most 63)')),
    v.pipe(v.string(), v.maxLength(1024, 'meta values must be at most 1024 characters'), v.regex(/^[\x20-\x7e]*$/, 'meta values must be printable ASCII')),
  ),
  // S3 allows 2 KB of user metadata in all.
  v.check((m) => Object.entries(m).reduce((n, [k, val]) => n + k.length + val.length, 0) <= 1800, 'meta must total at most 1800 characters'),
);

const PutOptionsSchema = v.object({
  contentType: v.pipe(
    v.string('contentType is required'),
    v.maxLength(200, 'contentType must be at most 200 characters'),
    v.regex(/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;\s*[a-z0-9-]+=("[\x20-\x7e]*"|[a-z0-9._-]+))*$/i, 'contentType must look like type/subtype'),
  ),
  size: v.optional(v.pipe(v.number(), v.integer('size must be a whole number'), v.minValue(0, 'size must not be negative'), v.maxValue(5 * 1024 ** 4, 'size must be at most 5 TiB'))),
  meta: v.optional(MetaSchema),
});

export function checkPutOptions(opts: unknown): { contentType: string; size?: number; meta: Record<string, string> } {
  const r = v.safeParse(PutOptionsSchema, opts);
  if (!r.success) {
    const issue = r.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join('.') ?? 'options';
    throw new BlobError('bad_input', `blob put: ${where}: ${issue.message}`);
  }
  return { contentType: r.output.contentType, size: r.output.size, meta: r.output.meta ?? {} };
}

export function checkBody(body: unknown): Body {
  if (body instanceof Uint8Array || body instanceof ReadableStream) return body as Body;
  throw new BlobError('bad_input', 'blob put: body must be a Uint8Array or a ReadableStream of Uint8Array');
}
