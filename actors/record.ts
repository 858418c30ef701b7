// The persisted form of one actor: snapshot, the stream sequence it covers, durable timers and outbox.
import * as v from 'valibot';
import { PartMetaSchema } from './parts.ts';

const EventSchema = v.looseObject({ type: v.string() });

export const TimerSchema = v.object({ id: v.string(), due: v.number(), event: EventSchema });
export type Timer = v.InferOutput<typeof TimerSchema>;

export const OutboxEntrySchema = v.object({
  /** Nats-Msg-Id: derived from the actor and the sequence, so a re-send is deduplicated by the stream. */
  msgId: v.string(),
  subject: v.string(),
  data: v.string(),
  actor: v.optional(v.string()),
});
export type OutboxEntry = v.InferOutput<typeof OutboxEntrySchema>;

export const RecordSchema = v.object({
  machine: v.string(),
  version: v.number(),
  /** Highest mail stream sequence whose effect is in this snapshot. */
  seq: v.number(),
  snapshot: v.unknown(),
  timers: v.array(TimerSchema),
  outbox: v.array(OutboxEntrySchema),
  /** Counter of effects published so far: makes outbox message ids unique per step. */
  steps: v.number(),
  /** Where the kind's large context fields are stored (see parts.ts). */
  parts: v.optional(v.record(v.string(), PartMetaSchema)),
});
export type ActorRecord = v.InferOutput<typeof RecordSchema>;

const enc = new TextEncoder();
const dec = new TextDecoder();

export const encodeRecord = (r: ActorRecord): Uint8Array => enc.encode(JSON.stringify(r));

export function decodeRecord(bytes: Uint8Array, what: string): ActorRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(bytes));
  } catch (e) {
    throw new Error(`${what}: stored snapshot is not JSON (${(e as Error).message})`);
  }
  const r = v.safeParse(RecordSchema, raw);
  if (!r.success) throw new Error(`${what}: stored snapshot is malformed: ${r.issues[0].message} at ${v.getDotPath(r.issues[0]) ?? '(root)'}`);
  return r.output;
}
