// Large keyed parts of an actor's context (a queue's waiting tasks and its agents) kept outside the
// snapshot record, so that a step writes what changed instead of the whole state again.
//
// A part is stored as a base (the whole collection, in chunks), sealed segments of changes since the
// base, and a short journal of the latest changes inside the record itself. Bases and segments are
// written under fresh keys before the record, so the record's compare-and-set write stays the one
// commit point: a crash before it leaves only unreferenced keys, never a half-applied step.
//
// A new base (the whole collection again, megabytes for a queue of 10,000) is made in the background:
// the step that decides on it seals its journal as usual, takes the items as they stand and names the
// new base as `pending`; the items are encoded a slice at a time and written a chunk at a time, so the
// actor's next steps (and the other writes on the connection) do not wait behind megabytes. Later steps
// go on sealing segments, and the first step after the base is written points the record at it and
// drops the old base and the segments it covers. A written base ends with a `done` key, so an
// activation that loads a record naming it as pending (the writer passivated or died first) takes it
// over; a pending base without one (a failed write, a crash mid-way) is purged by the next step.
import type { KV } from '@nats-io/kv';
import * as v from 'valibot';
import { shardOf } from './address.ts';
import { SharedList } from './shared-list.ts';

/** How a context field is kept outside the snapshot: a list of items with keys, a record by key, or a SharedMap. */
export type Collection =
  | {
      shape: 'list';
      key: (item: unknown) => string;
      /**
       * Restores the list's order after loading (insertion order otherwise) and makes the value the machine
       * keeps: a machine that keeps a SharedList must have one, or it gets a plain array back.
       */
      order?: (items: unknown[], context: unknown) => Iterable<unknown>;
    }
  | { shape: 'map' }
  | { shape: 'shared' };
type AnyCollection = Collection;

/** A context field that is a list of items, each with its own key. */
export function listPart<T, C = unknown>(key: (item: T) => string, order?: (items: T[], context: C) => Iterable<T>): Collection {
  // The runtime only hands back what the machine stored in this field, so the item type holds.
  return { shape: 'list', key: key as (item: unknown) => string, order: order as ((items: unknown[], context: unknown) => Iterable<unknown>) | undefined };
}

/** A list part's items as the machine keeps them: through its order function, else as loaded. */
export const listValue = (c: Extract<Collection, { shape: 'list' }>, items: unknown[], context: unknown): unknown => (c.order ? c.order(items, context) : items);

/** A context field that is a record by key. */
export const mapPart = (): Collection => ({ shape: 'map' });

/** A context field that is a SharedMap: compared with what is stored bucket by bucket. */
export const sharedMapPart = (): Collection => ({ shape: 'shared' });

/** [key, item] is an upsert, [key, null] a removal. */
export type Change = [string, unknown];

const BUCKETS = 64;
/** The same stable hash that places actors on shards. */
const bucketOf = (key: string): number => shardOf(key, BUCKETS);

/**
 * An immutable map whose versions share structure: `set` and `delete` copy one of 64 buckets, not the
 * whole map (copying a record of a thousand agents on every step cost more than the step), and two
 * versions are compared bucket by bucket, by reference. Iteration goes bucket by bucket.
 */
export class SharedMap<T> implements Iterable<[string, T]> {
  private constructor(
    private readonly buckets: readonly ReadonlyMap<string, T>[],
    readonly size: number,
  ) {}

  static from<T>(entries: Iterable<readonly [string, T]> | Record<string, T> = []): SharedMap<T> {
    const buckets = Array.from({ length: BUCKETS }, () => new Map<string, T>());
    const list = Symbol.iterator in entries ? (entries as Iterable<readonly [string, T]>) : Object.entries(entries as Record<string, T>);
    for (const [k, item] of list) buckets[bucketOf(k)].set(k, item);
    return new SharedMap(buckets, buckets.reduce((n, b) => n + b.size, 0));
  }

  get(key: string): T | undefined {
    return this.buckets[bucketOf(key)].get(key);
  }

  has(key: string): boolean {
    return this.buckets[bucketOf(key)].has(key);
  }

  set(key: string, item: T): SharedMap<T> {
    const i = bucketOf(key);
    const old = this.buckets[i];
    const had = old.has(key);
    if (had && old.get(key) === item) return this;
    return this.with(i, new Map(old).set(key, item), this.size + (had ? 0 : 1));
  }

  delete(key: string): SharedMap<T> {
    const i = bucketOf(key);
    const old = this.buckets[i];
    if (!old.has(key)) return this;
    const bucket = new Map(old);
    bucket.delete(key);
    return this.with(i, bucket, this.size - 1);
  }

  *entries(): IterableIterator<[string, T]> {
    for (const b of this.buckets) yield* b;
  }

  *values(): IterableIterator<T> {
    for (const b of this.buckets) yield* b.values();
  }

  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.entries();
  }

  /** As a plain record: what a view or a log shows. */
  toJSON(): Record<string, T> {
    return Object.fromEntries(this.entries());
  }

  /** What changed from `old` to this: only buckets that are not the same object are compared. */
  changesSince(old: SharedMap<T>): Change[] {
    const changes: Change[] = [];
    for (let i = 0; i < BUCKETS; i++) {
      const a = old.buckets[i];
      const b = this.buckets[i];
      if (a === b) continue;
      for (const [k, item] of b) if (a.get(k) !== item || !a.has(k)) changes.push([k, item]);
      for (const k of a.keys()) if (!b.has(k)) changes.push([k, null]);
    }
    return changes;
  }

  private with(i: number, bucket: Map<string, T>, size: number): SharedMap<T> {
    const buckets = this.buckets.slice();
    buckets[i] = bucket;
    return new SharedMap(buckets, size);
  }
}

/** Where a noted value came from, and what changed (a Map once older links were merged into it). */
interface Note {
  from: object;
  changes: Change[] | Map<string, unknown>;
}
const notes = new WeakMap<object, Note>();
/** Links kept per chain of versions; older links are merged into the oldest one kept. */
const MAX_NOTED = 8;
/** Changes a merged link holds at most: a consumer further behind compares instead. */
const MAX_MERGED = 4096;
/** Versions of parts as stored: the runtime's next comparison starts from one, so merging never skips it. */
const stored = new WeakSet<object>();
const markStored = (value: unknown) => {
  if (typeof value === 'object' && value !== null) stored.add(value);
};

/**
 * A machine that knows what it changed in a collection says so (`changes` take `from` to `to`):
 * the runtime then stores those changes without comparing the whole collection with what it stored,
 * and indexes follow them without a scan. A value without a note is compared as before. Returns `to`.
 */
export function noteChanges<T extends object>(from: object, to: T, changes: Change[]): T {
  if (from === to) return to;
  notes.set(to, { from, changes });
  // A batch of mail makes many versions before the part is stored. The link MAX_NOTED back is merged
  // into the one after it, so the stored version stays reachable while only a few versions are kept
  // alive; what came before the stored version is let go.
  let later: object = to;
  let at = from;
  for (let i = 1; i < MAX_NOTED; i++) {
    const note = notes.get(at);
    if (!note) return to;
    later = at;
    at = note.from;
  }
  const oldest = notes.get(at);
  if (!oldest) return to;
  notes.delete(at);
  // Past the stored version nothing is needed; and a version noted as its own successor (a step back to an
  // older value) must not become a loop.
  if (stored.has(at) || oldest.from === later) return to;
  const kept = notes.get(later)!;
  // The merged Map is only ever held by the one note, so it grows in place.
  const merged = oldest.changes instanceof Map ? oldest.changes : new Map(oldest.changes);
  for (const [k, item] of kept.changes) merged.set(k, item);
  if (merged.size <= MAX_MERGED) notes.set(later, { from: oldest.from, changes: merged });
  return to;
}

/** The noted changes from `from` to `to` (each key once, the last wins), or undefined when the notes do not lead there. */
export function notedChanges(from: unknown, to: unknown): Change[] | undefined {
  if (from === to) return [];
  if (typeof from !== 'object' || from === null || typeof to !== 'object' || to === null) return undefined;
  const links: Note['changes'][] = [];
  for (let at: object = to; at !== from; ) {
    const note = notes.get(at);
    // Chains are MAX_NOTED links or so; a longer walk is a loop of versions noted in a circle.
    if (!note || links.length > 4 * MAX_NOTED) return undefined;
    links.push(note.changes);
    at = note.from;
  }
  // One change needs no merging; a longer list may name a key twice (added, then removed in one step).
  if (links.length === 1 && Array.isArray(links[0]) && links[0].length <= 1) return links[0];
  const last = new Map<string, unknown>();
  for (let i = links.length - 1; i >= 0; i--) for (const [k, item] of links[i]) last.set(k, item);
  return [...last];
}

/**
 * A stored piece: `chunks` keys under `id`; with `n`, a run of n one-chunk segments stored under
 * `id-0` … `id-(n-1)`, so that the record lists hundreds of segments in a few bytes.
 */
const Chunked = v.object({ id: v.string(), chunks: v.number(), n: v.optional(v.number()) });
type Piece = v.InferOutput<typeof Chunked>;
export const PartMetaSchema = v.object({
  base: v.optional(Chunked),
  segs: v.array(Chunked),
  journal: v.array(v.tuple([v.string(), v.unknown()])),
  /** Encoded size of the journal, to know when to seal it. */
  bytes: v.number(),
  /** Encoded sizes of the base and of the sealed segments, to know when a new base pays. */
  baseBytes: v.optional(v.number(), 0),
  segBytes: v.optional(v.number(), 0),
  /** A new base being written in the background, not yet read, and the segment entries it covers. */
  pending: v.optional(v.object({ id: v.string(), covers: v.number(), coveredBytes: v.number() })),
});
export type PartMeta = v.InferOutput<typeof PartMetaSchema>;

// The journal rides in every record write, so it stays short; segments cost one read each at
// activation, so there are at most MAX_SEGMENTS; a new base is written once the segments add up to
// half the base, so each change is written about three times in all.
const JOURNAL_MAX_BYTES = 2 * 1024;
const MAX_SEGMENTS = 256;
const MIN_REBASE_BYTES = 64 * 1024;
const CHUNK_BYTES = 512 * 1024;

/** What a resident actor knows of one stored part: the items as stored, and the value they came from. */
export class PartState {
  items = new Map<string, unknown>();
  /** The context value last stored: an unchanged reference means nothing to write. */
  ref: unknown = undefined;
  meta: PartMeta = { segs: [], journal: [], bytes: 0, baseBytes: 0, segBytes: 0 };
  /**
   * The run this resident state writes its segments into. Only a run it started itself is extended:
   * a run read back from storage might be extended by another (stale) activation under the same keys.
   */
  run: string | undefined = undefined;
  /** The new base written in the background (see `pending`) and what it replaces once written. */
  next: NextBase | undefined = undefined;
}

interface NextBase {
  id: string;
  /** It holds the old base and the first `covers` segment entries, which add up to `coveredBytes`. */
  covers: number;
  coveredBytes: number;
  state: 'writing' | 'written' | 'failed';
  /** Keys written so far, and once written, the base and its encoded size. */
  keys: string[];
  base?: Piece;
  bytes?: number;
}

/** How many sealed segments a part has. */
export const segmentCount = (meta: PartMeta): number => meta.segs.reduce((n, s) => n + (s.n ?? 1), 0);

/** The pieces a listed entry stands for, each with the id its chunks are stored under. */
const piecesOf = (p: Piece): { id: string; chunks: number }[] => (p.n === undefined ? [p] : Array.from({ length: p.n }, (_, j) => ({ id: `${p.id}-${j}`, chunks: p.chunks })));

export interface PartPlan {
  field: string;
  meta: PartMeta;
  changes: Change[];
  value: unknown;
  writes: { key: string; data: string }[];
  garbage: string[];
  /** The segment run the part writes into after this plan. */
  run: string | undefined;
  /** A new base to write once this plan's record is stored, not before (it is read only after a later record points at it). */
  background?: { id: string; prefix: string; items: Change[]; covers: number; coveredBytes: number };
  /** This plan settles the background base: points the part at it, or drops it. */
  settles?: boolean;
  /** Pending bases another activation left, whose keys are unknown here: every key under them goes. */
  dropPieces?: string[];
}

/** Applies changes in order to items by key (a null item removes its key); returns the items. */
function applyChanges(items: Map<string, unknown>, changes: Iterable<Change>): Map<string, unknown> {
  for (const [k, item] of changes) {
    if (item === null) items.delete(k);
    else items.set(k, item);
  }
  return items;
}

const partKey = (prefix: string, id: string, chunk: number) => `${prefix}.${id}.${chunk}`;
/** The keys of the chunks the pieces are stored under. */
const keysOf = (prefix: string, pieces: Piece[]) => pieces.flatMap(piecesOf).flatMap(({ id, chunks }) => Array.from({ length: chunks }, (_, i) => partKey(prefix, id, i)));
/** A stored key's entry; a read that failed on the way is StoreUnavailable (worth retrying). */
const getKey = (kv: KV, key: string) =>
  kv.get(key).catch((err: Error) => {
    throw new StoreUnavailable(err);
  });
/** Written last for a background base: how many chunks it has and its size. */
const doneKey = (prefix: string, id: string) => `${prefix}.${id}.done`;
const DoneSchema = v.object({ chunks: v.number(), bytes: v.number() });

/** The context with its parts emptied: what goes into the snapshot record. */
export function stripContext(context: Record<string, unknown>, collections: Record<string, AnyCollection>): Record<string, unknown> {
  const out = { ...context };
  for (const [field, c] of Object.entries(collections)) out[field] = c.shape === 'list' ? [] : {};
  return out;
}

/** The changes between what is stored and the context's current value of the part. */
export function diffPart(state: PartState, value: unknown, c: AnyCollection): Change[] {
  if (value === state.ref) return [];
  if (value instanceof SharedMap && state.ref instanceof SharedMap) return value.changesSince(state.ref);
  const noted = notedChanges(state.ref, value);
  // An item added and removed again since the last store was never stored: nothing to write for it.
  if (noted) return noted.some(([k, item]) => item === null && !state.items.has(k)) ? noted.filter(([k, item]) => item !== null || state.items.has(k)) : noted;
  if (c.shape === 'list' && isList(state.ref)) return diffLists(asArray(state.ref), asArray(value as Iterable<unknown>), c.key, state);
  return diffByKey(state, value, c);
}

/**
 * A step changes a list in one place or a few (one task in, one out): the common head and tail are
 * found by reference, and only what lies between them is compared by key.
 */
function diffLists(old: unknown[], now: unknown[], key: (item: unknown) => string, state: PartState): Change[] {
  let head = 0;
  const shorter = Math.min(old.length, now.length);
  while (head < shorter && old[head] === now[head]) head++;
  let tail = 0;
  while (tail < shorter - head && old[old.length - 1 - tail] === now[now.length - 1 - tail]) tail++;
  const changes: Change[] = [];
  const kept = new Set<string>();
  for (let i = head; i < now.length - tail; i++) {
    const k = key(now[i]);
    kept.add(k);
    if (state.items.get(k) !== now[i]) changes.push([k, now[i]]);
  }
  for (let i = head; i < old.length - tail; i++) {
    const k = key(old[i]);
    if (!kept.has(k)) changes.push([k, null]);
  }
  return changes;
}

/** A list part's value: an array, or a SharedList (compared as an array only when no notes lead to it). */
const isList = (value: unknown): value is Iterable<unknown> => Array.isArray(value) || value instanceof SharedList;
const asArray = (value: Iterable<unknown>): unknown[] => (Array.isArray(value) ? value : value instanceof SharedList ? value.toArray() : [...value]);

/** The entries of a record by key or of a SharedMap (a plain record read back from an older snapshot). */
const entriesOf = (value: unknown): Iterable<[string, unknown]> => (value instanceof SharedMap ? value.entries() : Object.entries(value as Record<string, unknown>));

function diffByKey(state: PartState, value: unknown, c: AnyCollection): Change[] {
  const changes: Change[] = [];
  let kept = 0;
  const visit = (k: string, item: unknown) => {
    const old = state.items.get(k);
    if (old !== undefined) kept++;
    if (old !== item) changes.push([k, item]);
  };
  if (c.shape === 'list') for (const item of value as Iterable<unknown>) visit(c.key(item), item);
  else for (const [k, item] of entriesOf(value)) visit(k, item);
  if (kept < state.items.size) {
    // Something was removed: only now is a set of the current keys worth building.
    const now = new Set(c.shape === 'list' ? Array.from(value as Iterable<unknown>, c.key) : [...entriesOf(value)].map(([k]) => k));
    for (const k of state.items.keys()) if (!now.has(k)) changes.push([k, null]);
  }
  return changes;
}

/** Decides what a step writes for one part: a longer journal, a sealed segment, or a new base. */
export function planPart(prefix: string, field: string, state: PartState, value: unknown, c: AnyCollection): PartPlan {
  const changes = diffPart(state, value, c);
  const plan: PartPlan = { field, meta: state.meta, changes, value, writes: [], garbage: [], run: state.run };
  const settled = settle(`${prefix}.${field}`, state);
  if (settled) Object.assign(plan, settled, { settles: true });
  if (!changes.length) return plan;
  const meta = plan.meta;
  let bytes = meta.bytes;
  for (const ch of changes) bytes += JSON.stringify(ch).length + 1;
  const journal = meta.journal.concat(changes);
  if (bytes <= JOURNAL_MAX_BYTES) {
    plan.meta = { ...meta, journal, bytes };
    return plan;
  }
  const { segBytes, baseBytes } = meta;
  // While a new base is on its way, steps go on sealing segments.
  const writing = state.next !== undefined && !plan.settles;
  const due = !writing && !(segmentCount(meta) < MAX_SEGMENTS && segBytes + bytes < Math.max(MIN_REBASE_BYTES, baseBytes / 2));
  // The segment joins this state's run when it fits in one chunk; a larger one is a piece of its own and ends the run.
  const segs = meta.segs;
  const last = segs.at(-1);
  const extend = plan.run !== undefined && last?.id === plan.run && last.n !== undefined;
  const run = extend ? plan.run! : crypto.randomUUID();
  const n = extend ? last!.n! : 0;
  const chunks = writeChunks(`${prefix}.${field}`, `${run}-${n}`, journal, plan.writes);
  const seg = chunks === 1 ? { id: run, chunks, n: n + 1 } : { id: `${run}-${n}`, chunks };
  plan.run = chunks === 1 ? run : undefined;
  plan.meta = { ...meta, segs: extend && chunks === 1 ? [...segs.slice(0, -1), seg] : [...segs, seg], journal: [], bytes: 0, segBytes: segBytes + bytes };
  if (!due) return plan;
  // Too many segments to read back quickly: the whole part again, as it stands after this step, as a
  // new base written in the background. Later segments start entries of their own, so that the ones
  // it covers are exactly the entries listed now.
  const merged = applyChanges(new Map(state.items), journal);
  const id = crypto.randomUUID();
  plan.run = undefined;
  const covers = plan.meta.segs.length;
  const coveredBytes = plan.meta.segBytes;
  plan.meta = { ...plan.meta, pending: { id, covers, coveredBytes } };
  plan.background = { id, prefix: `${prefix}.${field}`, items: [...merged], covers, coveredBytes };
  return plan;
}

/**
 * Settles the background base, if there is one to settle: the meta pointed at it once written, or
 * without it if it failed or another activation left it, and what that leaves unreferenced.
 */
function settle(at: string, state: PartState): Pick<PartPlan, 'meta' | 'garbage' | 'dropPieces'> | undefined {
  const { meta, next } = state;
  if (next?.state === 'written') {
    return {
      meta: { ...meta, base: next.base, segs: meta.segs.slice(next.covers), baseBytes: next.bytes!, segBytes: meta.segBytes - next.coveredBytes, pending: undefined },
      garbage: [...keysOf(at, [...(meta.base ? [meta.base] : []), ...meta.segs.slice(0, next.covers)]), doneKey(at, next.id)],
    };
  }
  // What of a failed base was written goes.
  if (next?.state === 'failed') return { meta: { ...meta, pending: undefined }, garbage: next.keys };
  // One another activation left: its keys are not known here, so every key under it goes.
  if (!next && meta.pending) return { meta: { ...meta, pending: undefined }, garbage: [], dropPieces: [`${at}.${meta.pending.id}`] };
  return undefined;
}

/** After the record that references the plan was stored: the resident view follows it. */
export function commitPart(state: PartState, plan: PartPlan): void {
  applyChanges(state.items, plan.changes);
  state.ref = plan.value;
  markStored(plan.value);
  state.meta = plan.meta;
  state.run = plan.run;
  if (plan.settles) state.next = undefined;
  if (plan.background) {
    const { id, covers, coveredBytes } = plan.background;
    state.next = { id, covers, coveredBytes, state: 'writing', keys: [] };
  }
}

/** Items encoded between two yields to the event loop, while a background base is made. */
const SLICE = 256;

/**
 * Makes and writes a committed plan's background base: a slice of items at a time, a chunk at a time.
 * The part's next step points at it once it is written, or drops it if this failed.
 */
export async function writeBackground(state: PartState, plan: PartPlan, put: (key: string, data: string) => Promise<unknown>): Promise<void> {
  const bg = plan.background;
  const next = state.next;
  if (!bg || next?.id !== bg.id) return;
  try {
    const chunker = new Chunker();
    let bytes = 0;
    const flush = async (data: string | undefined) => {
      if (data === undefined) return;
      const key = partKey(bg.prefix, bg.id, next.keys.length);
      next.keys.push(key);
      bytes += data.length;
      await put(key, data);
    };
    for (let i = 0; i < bg.items.length; i++) {
      if (i % SLICE === 0 && i) await new Promise((r) => setImmediate(r));
      await flush(chunker.add(bg.items[i]));
    }
    await flush(chunker.end());
    const chunks = next.keys.length;
    next.keys.push(doneKey(bg.prefix, bg.id));
    await put(doneKey(bg.prefix, bg.id), JSON.stringify({ chunks, bytes }));
    next.base = { id: bg.id, chunks };
    next.bytes = bytes;
    next.state = 'written';
  } catch {
    next.state = 'failed';
  }
}

/** A read that failed on the way (timeout, leader change), not because of what is stored: worth retrying. */
export class StoreUnavailable extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}

/**
 * A piece the record names is not there. KV reads may be answered by a replica a few writes behind the
 * one that took the write, so the caller reads again a few times before it counts the part as lost.
 */
export class PartMissing extends Error {}

/** Reads a part back: base, then segments, then the journal, in the order they were written. */
export async function loadPart(kv: KV, prefix: string, field: string, meta: PartMeta, c: AnyCollection, context: unknown): Promise<{ state: PartState; value: unknown }> {
  const state = new PartState();
  state.meta = meta;
  // Read all pieces at once, apply them in the order they were written.
  const keys = keysOf(`${prefix}.${field}`, [...(meta.base ? [meta.base] : []), ...meta.segs]);
  const chunks = await Promise.all(
    keys.map(async (key) => {
      const e = await getKey(kv, key);
      if (!e || e.operation !== 'PUT') throw new PartMissing(`part ${key} is missing`);
      return JSON.parse(e.string()) as Change[];
    }),
  );
  for (const ch of chunks) applyChanges(state.items, ch);
  applyChanges(state.items, meta.journal as Change[]);
  if (meta.pending) state.next = await writtenPending(kv, `${prefix}.${field}`, meta.pending);
  let value: unknown;
  if (c.shape === 'list') {
    const items = [...state.items.values()];
    value = listValue(c, items, context);
  } else value = c.shape === 'shared' ? SharedMap.from(state.items) : Object.fromEntries(state.items);
  state.ref = value;
  markStored(value);
  return { state, value };
}

/** A pending base whose writer finished it (its `done` key is there): the next step points at it. */
async function writtenPending(kv: KV, prefix: string, p: NonNullable<PartMeta['pending']>): Promise<NextBase | undefined> {
  const e = await getKey(kv, doneKey(prefix, p.id));
  if (!e || e.operation !== 'PUT') return undefined;
  const done = v.safeParse(DoneSchema, JSON.parse(e.string()));
  if (!done.success) return undefined;
  const base = { id: p.id, chunks: done.output.chunks };
  return { id: p.id, covers: p.covers, coveredBytes: p.coveredBytes, state: 'written', keys: [...keysOf(prefix, [base]), doneKey(prefix, p.id)], base, bytes: done.output.bytes };
}

/** Gathers changes into JSON arrays of up to CHUNK_BYTES (one larger change is a chunk of its own). */
class Chunker {
  private texts: string[] = [];
  private size = 2;
  private made = 0;
  /** Adds a change; returns the chunk it closed, when the change did not fit in it. */
  add(ch: Change): string | undefined {
    const text = JSON.stringify(ch);
    const full = this.texts.length && this.size + text.length + 1 > CHUNK_BYTES ? this.take() : undefined;
    this.texts.push(text);
    this.size += text.length + 1;
    return full;
  }
  /** The last chunk: what is left, or an empty one when there were no changes (a piece has at least one chunk). */
  end(): string | undefined {
    return this.texts.length || !this.made ? this.take() : undefined;
  }
  private take(): string {
    const data = `[${this.texts.join(',')}]`;
    this.texts = [];
    this.size = 2;
    this.made++;
    return data;
  }
}

/** Writes changes as JSON chunks under `id` (never used before); returns how many chunks. */
function writeChunks(prefix: string, id: string, changes: Change[], writes: PartPlan['writes']): number {
  const chunker = new Chunker();
  let n = 0;
  const push = (data: string | undefined) => {
    if (data !== undefined) writes.push({ key: partKey(prefix, id, n++), data });
  };
  for (const ch of changes) push(chunker.add(ch));
  push(chunker.end());
  return n;
}
