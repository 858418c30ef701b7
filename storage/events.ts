// Conversation status from the actors into the identity graph.
//
// A conversation actor publishes its close and reopen through its outbox (machines/conversation.ts,
// `cc.events.conversation.<id>`), so they are in the `CC_EVENTS` stream once and only once whatever
// crashes. Store nodes pull them from one durable consumer (shared: several store instances split the
// work) and apply each with `conversation.status`, which is idempotent and ignores news older than the
// stored status: a redelivery, a replay or two instances racing never undo a newer change.
//
// Outcomes per message: applied or already so → ack; a conversation the graph never held (an actor id
// that is no store key, or no such record) → ack with a log line, there is nothing to close; malformed
// (not JSON, not the event's shape, refused by the store as a bad request) → terminated with the reason
// logged, it can never succeed; the store unavailable or failing → redelivered with backoff, kept until
// it succeeds (a close must not be lost to an outage).
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import * as v from 'valibot';
import { StoreError, reasonOf, type ReplyOf, type RequestOf } from './api.ts';
import type { StoreLog } from './context.ts';
import { conversationStatusSubject } from '../machines/conversation.ts';

import { ensureStream } from '../actors/provision.ts';

export const EVENTS_STREAM = 'CC_EVENTS';
export const EVENTS_SUBJECTS = 'cc.events.>';
export const CONVERSATION_SYNC_CONSUMER = 'store_conversation_status';
const EVENTS_MAX_AGE_MS = 30 * 24 * 3600_000;
const RETRY_LOUDLY_AFTER = 10;
const backoffMs = (tries: number) => Math.min(60_000, 500 * 2 ** (tries - 1));

/**
 * Created idempotently by every node that hosts actors or runs the store: a conversation's outbox publish
 * fails until the stream exists. Limits retention (kept 30 days: a log of what happened, readable by
 * others later), deduplicated by the outbox's message ids over 10 minutes like the actors' mail.
 */
export async function ensureEventsStream(jsm: JetStreamManager, replicas = 1): Promise<void> {
  await ensureStream(jsm, {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(EVENTS_MAX_AGE_MS),
    duplicate_window: nanos(10 * 60_000),
  });
}

/** The event as conversation actors publish it (ConversationStatusEvent in machines/conversation.ts). */
export const ConversationStatusEventSchema = v.object({
  type: v.literal('conversation.status'),
  conversation: v.pipe(v.string(), v.minLength(1, 'must not be empty'), v.maxLength(200, 'must be at most 200 characters')),
  status: v.picklist(['open', 'closed'], 'must be open or closed'),
  at: v.pipe(v.number(), v.integer('must be whole milliseconds'), v.minValue(0, 'must not be negative')),
  by: v.optional(v.string()),
  disposition: v.optional(v.string()),
});

/** What the sync needs of the store: the Store itself on a store node, or a StoreClient elsewhere. */
export interface StatusWriter {
  conversationStatus(req: RequestOf<'conversation.status'>): Promise<ReplyOf<'conversation.status'>>;
}

export interface ConversationSyncStats {
  applied: number;
  unchanged: number;
  skipped: number;
  poison: number;
  retried: number;
}

export interface ConversationSync {
  stats(): ConversationSyncStats;
  stop(): Promise<void>;
}

export interface ConversationSyncDeps {
  jsm: JetStreamManager;
  store: StatusWriter;
  log: StoreLog;
  /** JetStream replicas for the stream if this node creates it (default 1). */
  replicas?: number;
}

/** Pulls conversation status events and applies them to the identity graph until stopped. */
export async function startConversationSync(deps: ConversationSyncDeps): Promise<ConversationSync> {
  const { jsm, log } = deps;
  await ensureEventsStream(jsm, deps.replicas ?? 1);
  const config = {
    durable_name: CONVERSATION_SYNC_CONSUMER,
    filter_subject: conversationStatusSubject('>'),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_deliver: -1,
  };
  try {
    await jsm.consumers.add(EVENTS_STREAM, config);
  } catch (e) {
    // Another store node made it first: share theirs.
    await jsm.consumers.info(EVENTS_STREAM, CONVERSATION_SYNC_CONSUMER).catch(() => {
      throw e;
    });
  }
  const consumer = await jsm.jetstream().consumers.get(EVENTS_STREAM, CONVERSATION_SYNC_CONSUMER);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 64 });
  const stats: ConversationSyncStats = { applied: 0, unchanged: 0, skipped: 0, poison: 0, retried: 0 };
  const done = (async () => {
    for await (const m of messages) {
      try {
        await apply(m, deps, stats);
      } catch (e) {
        // Acking itself failed (NATS away): the message comes back after ack_wait and is applied again, harmlessly.
        log.warn({ seq: m.seq, reason: (e as Error).message }, 'conversation status: handling failed; it will be redelivered');
      }
    }
  })();
  log.info({ stream: EVENTS_STREAM, consumer: CONVERSATION_SYNC_CONSUMER }, 'conversation status sync started');
  return {
    stats: () => ({ ...stats }),
    async stop() {
      messages.stop();
      await done.catch(() => undefined);
    },
  };
}

async function apply(m: JsMsg, deps: ConversationSyncDeps, stats: ConversationSyncStats): Promise<void> {
  const { log } = deps;
  const poison = (reason: string) => {
    stats.poison++;
    log.error({ subject: m.subject, seq: m.seq, reason }, 'conversation status event refused; terminated');
    // No reason on the wire: nats-server 2.9 ignores '+TERM <reason>' (2.10+), which would redeliver it.
    m.term();
  };
  let body: unknown;
  try {
    body = m.json();
  } catch {
    return poison('not JSON');
  }
  const parsed = v.safeParse(ConversationStatusEventSchema, body);
  if (!parsed.success) return poison(`malformed: ${reasonOf(parsed.issues)}`);
  const e = parsed.output;
  if (m.subject !== conversationStatusSubject(e.conversation)) return poison(`subject ${m.subject} does not name conversation ${e.conversation}`);
  // Store conversations are keyed [A-Za-z0-9_]; other actor ids were never in the graph.
  if (!/^[A-Za-z0-9_]{1,64}$/.test(e.conversation)) {
    stats.skipped++;
    log.debug({ conversation: e.conversation }, 'conversation status: not a stored conversation; skipped');
    m.ack();
    return;
  }
  const by = e.by?.trim().slice(0, 128);
  const disposition = e.disposition?.trim().slice(0, 1000);
  try {
    const r = await deps.store.conversationStatus({
      conversationId: `conversation:${e.conversation}`,
      status: e.status,
      at: e.at,
      ...(by ? { by } : {}),
      ...(disposition ? { disposition } : {}),
    });
    if (r.changed) stats.applied++;
    else stats.unchanged++;
    m.ack();
  } catch (err) {
    if (err instanceof StoreError && err.code === 404) {
      stats.skipped++;
      log.info({ conversation: e.conversation, status: e.status }, 'conversation status: no such conversation in the graph; skipped');
      m.ack();
    } else if (err instanceof StoreError && err.code === 400) {
      poison(`refused by the store: ${err.reason}`);
    } else {
      const tries = m.info.deliveryCount;
      stats.retried++;
      const reason = err instanceof StoreError ? `${err.code} ${err.reason}` : (err as Error).message;
      if (tries >= RETRY_LOUDLY_AFTER) log.error({ conversation: e.conversation, tries, reason }, 'conversation status: the store keeps failing; retrying');
      else log.warn({ conversation: e.conversation, tries, reason }, 'conversation status: store unavailable; retrying');
      m.nak(backoffMs(tries));
    }
  }
}
