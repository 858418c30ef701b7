// Where the SMS edge remembers what it sent, so a delivery receipt finds its message: SMSC message_id →
// (our message, its conversation, which part), and per message which parts were delivered and whether
// its outcome was reported. In a NATS KV bucket (`cc_sms_receipts`, entries expire after the receipt
// TTL, 72 h by default), so a receipt that comes after a restart, or to another edge node bound to the
// same SMSC, still reaches the right conversation. Progress changes are compare-and-set, so receipts for
// the parts of one message handled on two nodes at once report it delivered exactly once.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import * as v from 'valibot';

export const RECEIPTS_BUCKET = 'cc_sms_receipts';
export const DEFAULT_RECEIPT_TTL_MS = 72 * 3600_000;

/** One submitted part, as its receipt will name it. */
export interface PartRef {
  messageId: string;
  conversationId: string;
  part: number;
  total: number;
  at: number;
}
/** A message's receipts so far: parts delivered, and whether its outcome (delivered or failed) went out. */
export interface Progress {
  delivered: number[];
  finished: boolean;
}

export interface ReceiptStore {
  remember(smscId: string, ref: PartRef): Promise<void>;
  lookup(smscId: string): Promise<PartRef | undefined>;
  /** Applies `change` to the message's progress atomically and answers the progress before and after. */
  progress(messageId: string, change: (p: Progress) => Progress): Promise<{ before: Progress; after: Progress }>;
  close(): Promise<void>;
}

const NONE: Progress = { delivered: [], finished: false };

/** The edge's memory: lost on restart; for tests and an edge without NATS. */
export function memoryReceipts(ttlMs = DEFAULT_RECEIPT_TTL_MS, now: () => number = Date.now): ReceiptStore {
  const refs = new Map<string, PartRef>();
  const progress = new Map<string, Progress & { at: number }>();
  const sweep = setInterval(() => {
    const t = now();
    for (const [id, r] of refs) if (t - r.at > ttlMs) refs.delete(id);
    for (const [id, p] of progress) if (t - p.at > ttlMs) progress.delete(id);
  }, 60_000);
  sweep.unref?.();
  return {
    async remember(smscId, ref) {
      refs.set(smscId, ref);
    },
    async lookup(smscId) {
      return refs.get(smscId);
    },
    async progress(messageId, change) {
      const before = progress.get(messageId) ?? { ...NONE, at: now() };
      const after = change(before);
      progress.set(messageId, { ...after, at: now() });
      return { before, after };
    },
    async close() {
      clearInterval(sweep);
    },
  };
}

const PartRefSchema = v.object({ messageId: v.string(), conversationId: v.string(), part: v.number(), total: v.number(), at: v.number() });
const ProgressSchema = v.object({ delivered: v.array(v.number()), finished: v.boolean() });

/** KV keys allow [-/_=.A-Za-z0-9] with `.` between tokens: ids are written as base64url, one token each. */
const token = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Receipts in NATS KV (see the top of this file); the bucket is created by the first node. */
export async function kvReceipts(nc: NatsConnection, opts: { ttlMs?: number; replicas?: number } = {}): Promise<ReceiptStore> {
  const kvm = new Kvm(nc);
  const kv: KV = await kvm
    .create(RECEIPTS_BUCKET, { history: 1, replicas: opts.replicas ?? 1, ttl: opts.ttlMs ?? DEFAULT_RECEIPT_TTL_MS })
    .catch(() => kvm.open(RECEIPTS_BUCKET));

  /** The value (undefined when absent, deleted or unreadable: never trusted) and the revision to write over. */
  async function read<T>(key: string, schema: v.GenericSchema<unknown, T>): Promise<{ value?: T; revision?: number }> {
    const e = await kv.get(key);
    if (!e) return {};
    if (e.operation !== 'PUT' || !e.value.length) return { revision: e.revision };
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(e.value));
    } catch {
      return { revision: e.revision };
    }
    const r = v.safeParse(schema, raw);
    return { value: r.success ? r.output : undefined, revision: e.revision };
  }

  return {
    async remember(smscId, ref) {
      await kv.put(`id.${token(smscId)}`, enc.encode(JSON.stringify(ref)));
    },
    async lookup(smscId) {
      return (await read(`id.${token(smscId)}`, PartRefSchema)).value;
    },
    async progress(messageId, change) {
      const key = `msg.${token(messageId)}`;
      for (let attempt = 1; ; attempt++) {
        const now = await read(key, ProgressSchema);
        const before = now.value ?? NONE;
        const after = change(before);
        try {
          const data = enc.encode(JSON.stringify(after));
          if (now.revision !== undefined) await kv.update(key, data, now.revision);
          else await kv.create(key, data);
          return { before, after };
        } catch (e) {
          // Another node changed it between our read and write: read again (a handful of tries is plenty).
          if (attempt >= 10) throw new Error(`sms receipts: ${messageId}: progress kept changing under us: ${(e as Error).message}`);
        }
      }
    },
    async close() {},
  };
}
