// Large keyed parts of an actor's context (a queue's waiting tasks and its agents) kept outside the
// snapshot record, so that a step writes what changed instead of the whole state again.
//
// A part is stored as a base (the whole collection, in chunks), sealed segments of changes since the
// base, and a short journal of the latest changes inside the record itself. Bases and segments are
// written under fresh keys before the record, so the record's compare-and-set write stays the one
// commit point: a crash before it leaves only unreferenced keys, never a half-applied step.
import type { KV } from '@nats-io/kv';
import * as v from 'valibot';

/** How a context field is kept outside the snapshot: a list of items with keys, or a record by key. */
export type Collection =
  | {
      shape: 'list';
      key: (item: unknown) => string;
      /** Restores the list's order after loading (insertion order otherwise). */
      order?: (items: unknown[], context: unknown) => unknown[];
    }
  | { shape: 'map' };
type AnyCollection = Collection;

/** A context field that is a list of items, each with its own key. */
export function listPart<T, C = unknown>(key: (item: T) => string, order?: (items: T[], context: C) => T[]): Collection {
  // The runtime only hands back what the machine stored in this field, so the item type holds.
  return { shape: 'list', key: key as (item: unknown) => string, order: order as ((items: unknown[], context: unknown) => unknown[]) | undefined };
}

/** A context field that is a record by key. */
export const mapPart = (): Collection => ({ shape: 'map' });

/** [key, item] is an upsert, [key, null] a removal. */
type Change = [string, unknown];

const Chunked = v.object({ id: v.string(), chunks: v.number() });
export const PartMetaSchema = v.object({
  base: v.optional(Chunked),
  segs: v.array(Chunked),
  journal: v.array(v.tuple([v.string(), v.unknown()])),
  /** Encoded size of the journal, to know when to seal it. */
  bytes: v.number(),
  /** Encoded sizes of the base and of the sealed segments, to know when a new base pays. */
  baseBytes: v.optional(v.number(), 0),
  segBytes: v.optional(v.number(), 0),
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
}

export interface PartPlan {
  field: string;
  meta: PartMeta;
  changes: Change[];
  value: unknown;
  writes: { key: string; data: string }[];
  garbage: string[];
}

const partKey = (prefix: string, id: string, chunk: number) => `${prefix}.${id}.${chunk}`;

/** The context with its parts emptied: what goes into the snapshot record. */
export function stripContext(context: Record<string, unknown>, collections: Record<string, AnyCollection>): Record<string, unknown> {
  const out = { ...context };
  for (const [field, c] of Object.entries(collections)) out[field] = c.shape === 'list' ? [] : {};
  return out;
}

/** The changes between what is stored and the context's current value of the part. */
export function diffPart(state: PartState, value: unknown, c: AnyCollection): Change[] {
  if (value === state.ref) return [];
  if (c.shape === 'list' && Array.isArray(state.ref)) return diffLists(state.ref, value as unknown[], c.key, state);
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

function diffByKey(state: PartState, value: unknown, c: AnyCollection): Change[] {
  const changes: Change[] = [];
  let kept = 0;
  const visit = (k: string, item: unknown) => {
    const old = state.items.get(k);
    if (old !== undefined) kept++;
    if (old !== item) changes.push([k, item]);
  };
  if (c.shape === 'list') for (const item of value as unknown[]) visit(c.key(item), item);
  else for (const [k, item] of Object.entries(value as Record<string, unknown>)) visit(k, item);
  if (kept < state.items.size) {
    // Something was removed: only now is a set of the current keys worth building.
    const now = new Set(c.shape === 'list' ? (value as unknown[]).map(c.key) : Object.keys(value as object));
    for (const k of state.items.keys()) if (!now.has(k)) changes.push([k, null]);
  }
  return changes;
}

/** Decides what a step writes for one part: a longer journal, a sealed segment, or a new base. */
export function planPart(prefix: string, field: string, state: PartState, value: unknown, c: AnyCollection): PartPlan {
  const changes = diffPart(state, value, c);
  const plan: PartPlan = { field, meta: state.meta, changes, value, writes: [], garbage: [] };
  if (!changes.length) return plan;
  let bytes = state.meta.bytes;
  for (const ch of changes) bytes += JSON.stringify(ch).length + 1;
  const journal = state.meta.journal.concat(changes);
  if (bytes <= JOURNAL_MAX_BYTES) {
    plan.meta = { ...state.meta, journal, bytes };
    return plan;
  }
  const { segBytes, baseBytes } = state.meta;
  if (state.meta.segs.length < MAX_SEGMENTS && segBytes + bytes < Math.max(MIN_REBASE_BYTES, baseBytes / 2)) {
    const seg = writeChunks(`${prefix}.${field}`, journal, plan.writes);
    plan.meta = { ...state.meta, segs: [...state.meta.segs, seg], journal: [], bytes: 0, segBytes: segBytes + bytes };
    return plan;
  }
  // Too many segments to read back quickly: write the whole part anew and drop the old pieces.
  const merged = new Map(state.items);
  for (const [k, item] of journal) {
    if (item === null) merged.delete(k);
    else merged.set(k, item);
  }
  const first = plan.writes.length;
  const base = writeChunks(`${prefix}.${field}`, [...merged], plan.writes);
  const written = plan.writes.slice(first).reduce((n, w) => n + w.data.length, 0);
  for (const old of [...(state.meta.base ? [state.meta.base] : []), ...state.meta.segs]) {
    for (let i = 0; i < old.chunks; i++) plan.garbage.push(partKey(`${prefix}.${field}`, old.id, i));
  }
  plan.meta = { base, segs: [], journal: [], bytes: 0, baseBytes: written, segBytes: 0 };
  return plan;
}

/** After the record that references the plan was stored: the resident view follows it. */
export function commitPart(state: PartState, plan: PartPlan): void {
  for (const [k, item] of plan.changes) {
    if (item === null) state.items.delete(k);
    else state.items.set(k, item);
  }
  state.ref = plan.value;
  state.meta = plan.meta;
}

/** Reads a part back: base, then segments, then the journal, in the order they were written. */
export async function loadPart(kv: KV, prefix: string, field: string, meta: PartMeta, c: AnyCollection, context: unknown): Promise<{ state: PartState; value: unknown }> {
  const state = new PartState();
  state.meta = meta;
  const apply = (changes: Change[]) => {
    for (const [k, item] of changes) {
      if (item === null) state.items.delete(k);
      else state.items.set(k, item);
    }
  };
  // Read all pieces at once, apply them in the order they were written.
  const keys = [...(meta.base ? [meta.base] : []), ...meta.segs].flatMap((piece) => Array.from({ length: piece.chunks }, (_, i) => partKey(`${prefix}.${field}`, piece.id, i)));
  const chunks = await Promise.all(
    keys.map(async (key) => {
      const e = await kv.get(key);
      if (!e || e.operation !== 'PUT') throw new Error(`part ${key} is missing`);
      return JSON.parse(e.string()) as Change[];
    }),
  );
  for (const ch of chunks) apply(ch);
  apply(meta.journal as Change[]);
  let value: unknown;
  if (c.shape === 'list') {
    const items = [...state.items.values()];
    value = c.order ? c.order(items, context) : items;
  } else value = Object.fromEntries(state.items);
  state.ref = value;
  return { state, value };
}

/** Writes changes as JSON chunks under a fresh id; returns where they are. */
function writeChunks(prefix: string, changes: Change[], writes: PartPlan['writes']): { id: string; chunks: number } {
  const id = crypto.randomUUID();
  const first = writes.length;
  let chunk: string[] = [];
  let size = 2;
  const flush = () => {
    writes.push({ key: partKey(prefix, id, writes.length - first), data: `[${chunk.join(',')}]` });
    chunk = [];
    size = 2;
  };
  for (const ch of changes) {
    const s = JSON.stringify(ch);
    if (chunk.length && size + s.length + 1 > CHUNK_BYTES) flush();
    chunk.push(s);
    size += s.length + 1;
  }
  if (chunk.length || writes.length === first) flush();
  return { id, chunks: writes.length - first };
}
