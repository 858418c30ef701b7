// Replies on their way out: conversations publish them (through their outbox) to `cc.out.<channel>`,
// a work-queue stream; every node that runs a channel's edge pulls from that channel's consumer, sends,
// and reports the delivery state back. A send that throws is retried with backoff, then failed loudly.
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import * as v from 'valibot';
import { ensureStream } from '../actors/provision.ts';
import { OutboundMessageSchema, type DeliveryUpdate, type Edge, type InboundSink } from './message.ts';

export const OUT_STREAM = 'CC_OUT';
export const outSubject = (channel: string) => `cc.out.${channel}`;

const MAX_TRIES = 8;
const backoffMs = (tries: number) => Math.min(60_000, 1_000 * 2 ** (tries - 1));

/** Created idempotently by every node: conversations publish replies here even before an edge runs. */
export async function ensureOutboundStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: OUT_STREAM,
    subjects: ['cc.out.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(10 * 60_000),
  });
}

export interface OutboundDeps {
  jsm: JetStreamManager;
  sink: Pick<InboundSink, 'delivery'>;
  log: Logger;
  /** Called for each message handled, for metrics. */
  onResult?: (channel: string, outcome: 'sent' | 'failed' | 'retry' | 'rejected') => void;
}

/** Pulls replies for the given edges until stopped. */
export async function startOutbound(edges: Edge[], deps: OutboundDeps): Promise<{ stop(): Promise<void> }> {
  const js = deps.jsm.jetstream();
  const running: { messages: ConsumerMessages; done: Promise<void> }[] = [];
  for (const edge of edges) {
    const name = `out_${edge.channel}`;
    try {
      await deps.jsm.consumers.add(OUT_STREAM, {
        durable_name: name,
        filter_subject: outSubject(edge.channel),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        // Long enough for an SMTP relay with its own retries.
        ack_wait: nanos(120_000),
        max_deliver: MAX_TRIES + 2,
      });
    } catch (e) {
      // Another node made it first: use theirs.
      await deps.jsm.consumers.info(OUT_STREAM, name).catch(() => {
        throw e;
      });
    }
    const consumer = await js.consumers.get(OUT_STREAM, name);
    const messages = await consumer.consume({ max_messages: 16 });
    const done = (async () => {
      for await (const m of messages) {
        try {
          await handle(edge, m, deps);
        } catch (e) {
          // Reporting the outcome failed (NATS down?): the reply comes back later, the edge dedupes by message id.
          deps.log.warn({ err: e, channel: edge.channel }, 'outbound handling failed; redelivering');
          m.nak(5_000);
        }
      }
    })();
    running.push({ messages, done });
  }
  return {
    async stop() {
      for (const r of running) r.messages.stop();
      await Promise.all(running.map((r) => r.done.catch(() => undefined)));
    },
  };
}

async function handle(edge: Edge, m: JsMsg, deps: OutboundDeps): Promise<void> {
  let body: unknown;
  try {
    body = m.json();
  } catch {
    body = undefined;
  }
  const parsed = v.safeParse(OutboundMessageSchema, body);
  if (!parsed.success) {
    // Nothing can ever send this: kept out of the way with the reason in the log.
    deps.log.error({ channel: edge.channel, seq: m.seq, reason: parsed.issues[0].message }, 'malformed outbound message dropped');
    deps.onResult?.(edge.channel, 'rejected');
    // nats-server 2.9 ignores a reason on +TERM (the message would come back): the reason is in the log above.
    m.term();
    return;
  }
  const msg = parsed.output;
  const tries = m.info.deliveryCount;
  let update: DeliveryUpdate;
  try {
    update = await edge.send(msg);
  } catch (e) {
    const reason = (e as Error).message;
    if (tries < MAX_TRIES) {
      deps.log.warn({ channel: edge.channel, messageId: msg.messageId, tries, reason }, 'send failed; will retry');
      deps.onResult?.(edge.channel, 'retry');
      m.nak(backoffMs(tries));
      return;
    }
    update = { messageId: msg.messageId, conversationId: msg.conversationId, channel: msg.channel, state: 'failed', at: Date.now(), reason: `gave up after ${tries} tries: ${reason}`, permanent: true };
  }
  // The conversation learns the outcome before the message leaves the stream.
  await deps.sink.delivery({ ...update, conversationId: update.conversationId ?? msg.conversationId });
  deps.onResult?.(edge.channel, update.state === 'failed' ? 'failed' : 'sent');
  m.ack();
}
