// The BlobStore callers use, built on a Shelf (files or S3). An object lives at "<tier>/<key>";
// new objects go to hot. Reads look in hot, then warm, then cold: objects only ever move that way
// (hot → warm → cold, copy before delete), so a read that misses one tier because a move just
// deleted it there finds the copy in the next, and reads work from any tier during a move.
// Reads do not promote: they record the access ("_access/<key>", at most once per key per
// `accessEveryMs` per process) and the tier mover counts it, so a re-used object stops ageing.
import {
  BlobError,
  BlobNotFound,
  TIERS,
  checkBody,
  checkKey,
  checkPrefix,
  checkPutOptions,
  type BlobInfo,
  type BlobStore,
  type Body,
  type GetResult,
  type ListEntry,
  type PutOptions,
  type PutResult,
  type Tier,
} from './store.ts';
import { readAll } from './digest.ts';
import type { Shelf, ShelfMeta } from './shelf.ts';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLog: Logger = { info() {}, warn() {}, error() {} };

export interface TieredOptions {
  /** The store's clock (ms since epoch) for creation and access times. */
  now?: () => number;
  /** S3 storage class per tier (e.g. STANDARD, STANDARD_IA, GLACIER_IR); unset: the bucket's default. */
  storageClasses?: Partial<Record<Tier, string>>;
  /** How often one process records a read of the same key; default one hour. */
  accessEveryMs?: number;
  log?: Logger;
}

export interface TieredStore extends BlobStore {
  readonly shelf: Shelf;
  readonly now: () => number;
  readonly storageClasses: Partial<Record<Tier, string>>;
  readonly log: Logger;
  /** When the object was last read, as recorded; undefined if never. */
  lastAccess(key: string): Promise<number | undefined>;
}

export const tierPath = (tier: Tier, key: string) => `${tier}/${key}`;
export const accessPath = (key: string) => `_access/${key}`;

const RECENT_LIMIT = 10_000;

export function tieredStore(shelf: Shelf, opts: TieredOptions = {}): TieredStore {
  const now = opts.now ?? Date.now;
  const accessEveryMs = opts.accessEveryMs ?? 3_600_000;
  const log = opts.log ?? silentLog;
  const storageClasses = opts.storageClasses ?? {};
  const recorded = new Map<string, number>();

  async function recordAccess(key: string): Promise<void> {
    const at = now();
    const last = recorded.get(key);
    if (last !== undefined && at - last < accessEveryMs) return;
    if (recorded.size >= RECENT_LIMIT) recorded.clear();
    recorded.set(key, at);
    try {
      await shelf.write(accessPath(key), new TextEncoder().encode(JSON.stringify({ at })), { contentType: 'application/json', meta: {}, createdAt: at });
    } catch (e) {
      // A read must not fail because its bookkeeping did; the object only ages a little early.
      recorded.delete(key);
      log.warn({ key, err: (e as Error).message }, 'blob access not recorded');
    }
  }

  const toInfo = (key: string, tier: Tier, i: ShelfMeta): BlobInfo => ({
    key,
    tier,
    size: i.size,
    sha256: i.sha256,
    contentType: i.contentType,
    createdAt: i.createdAt,
    meta: i.meta,
  });

  return {
    kind: shelf.kind,
    shelf,
    now,
    storageClasses,
    log,

    async put(key: string, body: Body, options: PutOptions): Promise<PutResult> {
      checkKey(key);
      const o = checkPutOptions(options);
      checkBody(body);
      const r = await shelf.write(tierPath('hot', key), body, { ...o, createdAt: now(), storageClass: storageClasses.hot });
      // An overwrite of an object that had aged must not leave its older copy behind.
      for (const tier of ['warm', 'cold'] as const) await shelf.remove(tierPath(tier, key));
      return { key, tier: 'hot', ...r };
    },

    async get(key: string): Promise<GetResult> {
      checkKey(key);
      for (const tier of TIERS) {
        const r = await shelf.read(tierPath(tier, key));
        if (!r) continue;
        await recordAccess(key);
        return { ...toInfo(key, tier, r.info), body: r.body };
      }
      throw new BlobNotFound(key);
    },

    async head(key: string): Promise<BlobInfo> {
      checkKey(key);
      for (const tier of TIERS) {
        const info = await shelf.stat(tierPath(tier, key));
        if (info) return toInfo(key, tier, info);
      }
      throw new BlobNotFound(key);
    },

    async delete(key: string): Promise<void> {
      checkKey(key);
      for (const tier of TIERS) await shelf.remove(tierPath(tier, key));
      await shelf.remove(accessPath(key));
      recorded.delete(key);
    },

    async *list(prefix?: string): AsyncGenerator<ListEntry> {
      const p = checkPrefix(prefix);
      // Each tier lists in key order; merging the three yields every key once, in order, even
      // when a move has it in two tiers for a moment.
      const its = TIERS.map((tier) => ({ tier, it: shelf.list(tierPath(tier, p))[Symbol.asyncIterator]() }));
      const heads = await Promise.all(its.map(async ({ it }) => (await it.next()) as IteratorResult<{ path: string; size: number }>));
      for (;;) {
        let best = -1;
        let bestKey = '';
        heads.forEach((h, i) => {
          if (h.done) return;
          const key = h.value.path.slice(its[i].tier.length + 1);
          if (best < 0 || key < bestKey) {
            best = i;
            bestKey = key;
          }
        });
        if (best < 0) return;
        const entry = heads[best] as IteratorYieldResult<{ path: string; size: number }>;
        yield { key: bestKey, size: entry.value.size, tier: its[best].tier };
        for (let i = 0; i < heads.length; i++) {
          const h = heads[i];
          if (!h.done && h.value.path.slice(its[i].tier.length + 1) === bestKey) heads[i] = await its[i].it.next();
        }
      }
    },

    async lastAccess(key: string): Promise<number | undefined> {
      const r = await shelf.read(accessPath(key));
      if (!r) return undefined;
      try {
        const at = (JSON.parse(new TextDecoder().decode(await readAll(r.body, 4096))) as { at?: unknown }).at;
        return typeof at === 'number' && Number.isFinite(at) ? at : undefined;
      } catch (e) {
        if (e instanceof BlobError) throw e;
        return undefined; // a damaged record only means the object ages from its creation
      }
    },
  };
}
