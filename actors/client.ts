// tell (durable, JetStream, deduplicated) and ask (request/reply with a timeout) to any actor.
import * as v from 'valibot';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { EventObject } from 'xstate';
import { HDR_ACTOR, parseRef, ref, refString, shardOf, subjects, type ActorRef } from './address.ts';
import { NoResponders, Replies } from './replies.ts';

export const EventSchema = v.looseObject({ type: v.pipe(v.string(), v.minLength(1, 'event type must not be empty')) });

export class AskError extends Error {
  constructor(
    message: string,
    readonly code: 'timeout' | 'rejected' | 'invalid',
  ) {
    super(message);
  }
}

export interface TellOptions {
  /** Deduplication id: the same id within the stream's window is applied once. */
  msgId?: string;
}

export interface AskOptions<R> {
  timeoutMs?: number;
  /** Validates the reply; without it the reply is returned as unknown JSON cast to R. */
  reply?: v.GenericSchema<unknown, R>;
}

export type Target = ActorRef | string;
/** Any event with a string `type`; kinds may validate further. */
export type ActorEvent = EventObject & Record<string, unknown>;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function validateEvent(event: unknown): EventObject {
  // The usual case, checked by hand on every tell and ask; valibot is asked only to say what is wrong.
  const type = typeof event === 'object' && event !== null ? (event as { type?: unknown }).type : undefined;
  if (typeof type === 'string' && type.length > 0) return event as EventObject;
  const r = v.safeParse(EventSchema, event);
  if (!r.success) throw new AskError(`invalid event: ${r.issues[0].message}`, 'invalid');
  return r.output as EventObject;
}

export class ActorClient {
  readonly js: JetStreamClient;
  private readonly replies: Replies;

  constructor(
    readonly nc: NatsConnection,
    readonly shards: number,
  ) {
    this.js = jetstream(nc);
    this.replies = new Replies(nc);
  }

  /** Durable send; resolves with the mail stream sequence once JetStream has stored it. */
  async tell(target: Target, event: ActorEvent, opts: TellOptions = {}): Promise<number> {
    const r = typeof target === 'string' ? parseRef(target) : ref(target.kind, target.id);
    validateEvent(event);
    const h = natsHeaders();
    h.set(HDR_ACTOR, r.id);
    const ack = await this.js.publish(subjects.mail(r.kind, shardOf(r.id, this.shards)), enc.encode(JSON.stringify(stamp(event))), {
      msgID: opts.msgId ?? crypto.randomUUID(),
      headers: h,
    });
    return ack.seq;
  }

  /**
   * Request/reply to the node that hosts the actor's shard. Retries while no node owns the shard
   * (failover, rebalancing) until the timeout; the actor's answer is its `effect.reply`, else its snapshot view.
   */
  async ask<R = unknown>(target: Target, event: ActorEvent, opts: AskOptions<R> = {}): Promise<R> {
    const r = typeof target === 'string' ? parseRef(target) : ref(target.kind, target.id);
    validateEvent(event);
    const timeout = opts.timeoutMs ?? 5_000;
    const deadline = Date.now() + timeout;
    // The actor's id is the subject's last token: no headers to build here or to parse on the node.
    const subject = subjects.ask(r.kind, shardOf(r.id, this.shards), r.id);
    const body = enc.encode(JSON.stringify(stamp(event)));
    let pause = 20;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new AskError(`ask ${refString(r)} ${event.type}: timed out after ${timeout} ms`, 'timeout');
      try {
        const m = await this.replies.request(subject, body, left);
        const answer = JSON.parse(dec.decode(m.data)) as { ok: boolean; data?: unknown; error?: string };
        if (!answer.ok) throw new AskError(`ask ${refString(r)} ${event.type}: ${answer.error}`, 'rejected');
        if (!opts.reply) return answer.data as R;
        const checked = v.safeParse(opts.reply, answer.data);
        if (!checked.success) throw new AskError(`ask ${refString(r)} ${event.type}: unexpected reply: ${checked.issues[0].message}`, 'invalid');
        return checked.output;
      } catch (e) {
        if (e instanceof AskError) throw e;
        // No responder: the shard is between owners. Anything else (timeout, closed) ends the ask.
        if (!(e instanceof NoResponders)) {
          throw new AskError(`ask ${refString(r)} ${event.type}: ${(e as Error).message || 'timed out'} (after ${timeout} ms budget)`, 'timeout');
        }
        await new Promise((ok) => setTimeout(ok, Math.min(pause, Math.max(1, deadline - Date.now()))));
        pause = Math.min(pause * 2, 250);
      }
    }
  }
}


/** Machines read no clock: every event carries `at` (ms since epoch), stamped by its sender if absent. */
export function stamp<E extends EventObject>(event: E): E & { at: number } {
  const at = (event as { at?: unknown }).at;
  return typeof at === 'number' ? (event as E & { at: number }) : { ...event, at: Date.now() };
}
