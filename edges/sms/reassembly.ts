// Holds the parts of concatenated SMS until all have come (keyed by sender, recipient, reference and
// part count). A message whose parts stop coming is handed over after a timeout with the gaps marked,
// so a lost part never silently swallows the rest.
// The parts live in a PartStore: the edge's memory (tests, an edge without NATS), or NATS KV
// (`cc_sms_parts`, one entry per part, entries expire a little after the part timeout), so parts held
// when an edge stops are completed by the next edge (or another node bound to the same SMSC), and a
// sweep over the store delivers groups whose rest never came, also those a previous process left.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import * as v from 'valibot';

export const PARTS_BUCKET = 'cc_sms_parts';
export const DEFAULT_PART_TIMEOUT_MS = 5 * 60_000;
export const GAP = '[…]';

/** Where a message came from: what the canonical message needs from the deliver_sm of a part. */
export interface PartOrigin {
  account: string;
  src: string;
  sourceTon: number;
  dataCoding: number;
}
export interface HeldPart {
  seq: number;
  total: number;
  text: string;
  /** When this part came (ms since epoch). */
  at: number;
  origin: PartOrigin;
}

export interface Assembled {
  text: string;
  total: number;
  missing: number;
  /** The origin of the earliest part held. */
  first: PartOrigin;
  /** When the earliest part held came: with the key, it names the message (the same on every node). */
  since: number;
}

export interface PartStore {
  /** Holds a part (a repeated part replaces itself) and answers every part held for its message. */
  put(key: string, part: HeldPart): Promise<HeldPart[]>;
  /** Every message with parts held, with its parts. */
  groups(): Promise<Map<string, HeldPart[]>>;
  drop(key: string): Promise<void>;
  close(): Promise<void>;
}

/** How long stored parts live: a bit longer than the timeout, so the sweep finds them first. */
export const partTtlMs = (timeoutMs: number) => timeoutMs + Math.max(timeoutMs, 60_000);

/** The edge's memory: lost on restart. */
export function memoryParts(): PartStore {
  const held = new Map<string, Map<number, HeldPart>>();
  return {
    async put(key, part) {
      const g = held.get(key) ?? new Map<number, HeldPart>();
      g.set(part.seq, part);
      held.set(key, g);
      return [...g.values()];
    },
    async groups() {
      return new Map([...held].map(([k, g]) => [k, [...g.values()]]));
    },
    async drop(key) {
      held.delete(key);
    },
    async close() {
      held.clear();
    },
  };
}

const HeldPartSchema = v.object({
  seq: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(255)),
  total: v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(255)),
  text: v.string(),
  at: v.number(),
  origin: v.object({ account: v.string(), src: v.string(), sourceTon: v.number(), dataCoding: v.number() }),
});
/** KV keys allow [-/_=.A-Za-z0-9]: message keys are written as base64url, one token. */
const token = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const untoken = (t: string) => Buffer.from(t, 'base64url').toString('utf8');
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Parts in NATS KV (see the top of this file): `part.<message key>.<seq>`; the bucket is created by the first node. */
export async function kvParts(nc: NatsConnection, opts: { timeoutMs?: number; replicas?: number } = {}): Promise<PartStore> {
  const kvm = new Kvm(nc);
  const kv: KV = await kvm
    .create(PARTS_BUCKET, { history: 1, replicas: opts.replicas ?? 1, ttl: partTtlMs(opts.timeoutMs ?? DEFAULT_PART_TIMEOUT_MS) })
    .catch(() => kvm.open(PARTS_BUCKET));

  async function keys(filter: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await kv.keys(filter)) out.push(k);
    return out;
  }
  /** A stored part; undefined when absent, deleted or unreadable (never trusted). */
  async function read(k: string): Promise<HeldPart | undefined> {
    const e = await kv.get(k);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    try {
      const r = v.safeParse(HeldPartSchema, JSON.parse(dec.decode(e.value)));
      return r.success ? r.output : undefined;
    } catch {
      return undefined;
    }
  }
  async function partsOf(keys: string[]): Promise<HeldPart[]> {
    return (await Promise.all(keys.map(read))).filter((p): p is HeldPart => p !== undefined);
  }

  return {
    async put(key, part) {
      await kv.put(`part.${token(key)}.${part.seq}`, enc.encode(JSON.stringify(part)));
      return partsOf(await keys(`part.${token(key)}.*`));
    },
    async groups() {
      const byKey = new Map<string, string[]>();
      for (const k of await keys('part.>')) {
        const t = k.split('.')[1];
        if (t) byKey.set(t, [...(byKey.get(t) ?? []), k]);
      }
      const out = new Map<string, HeldPart[]>();
      for (const [t, ks] of byKey) out.set(untoken(t), await partsOf(ks));
      return out;
    },
    async drop(key) {
      await Promise.all((await keys(`part.${token(key)}.*`)).map((k) => kv.purge(k)));
    },
    async close() {},
  };
}

/** The message from the parts held: gaps marked, or undefined while parts are missing and `gaps` is false. */
export function assemble(parts: HeldPart[], gaps: boolean): Assembled | undefined {
  if (!parts.length) return undefined;
  const total = parts[0].total;
  const bySeq = new Map(parts.filter((p) => p.total === total).map((p) => [p.seq, p]));
  if (!gaps && bySeq.size < total) return undefined;
  const earliest = parts.reduce((a, b) => (b.at < a.at ? b : a));
  let text = '';
  let missing = 0;
  for (let i = 1; i <= total; i++) {
    const part = bySeq.get(i);
    if (part === undefined) missing++;
    text += part?.text ?? GAP;
  }
  return { text, total, missing, first: earliest.origin, since: earliest.at };
}

export class Reassembler {
  private readonly sweeping: ReturnType<typeof setInterval>;
  /** Groups being handed over after their timeout, so a slow hand-over is not started twice. */
  private readonly late = new Set<string>();

  constructor(
    private readonly store: PartStore,
    private readonly timeoutMs: number,
    /** Called with what arrived when the timeout passes before the last part; true once handed over. */
    private readonly onTimeout: (key: string, a: Assembled) => Promise<boolean>,
    private readonly opts: { maxPending?: number; now?: () => number; onError?: (e: Error) => void } = {},
  ) {
    this.sweeping = setInterval(() => void this.sweep().catch((e: Error) => this.opts.onError?.(e)), Math.max(50, Math.min(timeoutMs / 4, 30_000)));
    this.sweeping.unref?.();
  }

  /**
   * Holds part seq of total; answers the whole message once every part is in, else undefined. The parts
   * stay until done(key): if handing the message over fails, the SMSC resends the refused last part and
   * the message completes again. Rejects when the store cannot hold the part.
   */
  async add(key: string, total: number, seq: number, text: string, origin: PartOrigin): Promise<Assembled | undefined> {
    const held = await this.store.put(key, { seq, total, text, at: (this.opts.now ?? Date.now)(), origin });
    return assemble(held, false);
  }

  done(key: string): Promise<void> {
    return this.store.drop(key);
  }

  /** Hands over, gaps marked, the groups older than the timeout (and the oldest beyond maxPending). */
  async sweep(): Promise<void> {
    const t = (this.opts.now ?? Date.now)();
    const groups = [...(await this.store.groups())].flatMap(([key, parts]) => {
      const a = assemble(parts, true);
      return a ? [{ key, a }] : [];
    });
    groups.sort((x, y) => x.a.since - y.a.since);
    const over = groups.length - (this.opts.maxPending ?? 10_000);
    for (const [i, { key, a }] of groups.entries()) {
      if ((i >= over && t - a.since < this.timeoutMs) || this.late.has(key)) continue;
      this.late.add(key);
      try {
        if (await this.onTimeout(key, a)) await this.done(key);
      } finally {
        this.late.delete(key);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeping);
  }
}
