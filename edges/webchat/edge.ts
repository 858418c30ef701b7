// The web chat and in-app edges as the engine sees them: a reply is appended to the conversation's log,
// and whichever node holds the customer's socket (now or after a reconnect) delivers it. Notices
// (queue position, agent joined, closed) and agent read receipts go into the same log.
import * as v from 'valibot';
import type { NatsConnection } from '@nats-io/nats-core';
import { OutboundMessageSchema, type DeliveryUpdate, type Edge, type OutboundMessage } from '../message.ts';
import { logSubject, type ConversationLog } from './log.ts';
import { NOTICE_KINDS, firstIssue, type NoticeKind } from './protocol.ts';
import type { Logger } from './session.ts';

export function logEdge(channel: 'webchat' | 'app', log: ConversationLog, accounts: () => Set<string>, now: () => number = Date.now): Edge {
  return {
    channel,
    async send(input: OutboundMessage): Promise<DeliveryUpdate> {
      const at = now();
      const r = v.safeParse(OutboundMessageSchema, input);
      const base = {
        messageId: typeof input?.messageId === 'string' && input.messageId ? input.messageId.slice(0, 512) : 'unknown',
        ...(typeof input?.conversationId === 'string' && input.conversationId ? { conversationId: input.conversationId.slice(0, 512) } : {}),
        channel,
        at,
      };
      if (!r.success) return { ...base, state: 'failed', permanent: true, reason: `bad outbound message: ${firstIssue(r.issues)}` };
      const msg = r.output;
      if (msg.channel !== channel) return { ...base, state: 'failed', permanent: true, reason: `the ${channel} edge cannot send on channel ${msg.channel}` };
      if (!accounts().has(msg.account)) return { ...base, state: 'failed', permanent: true, reason: `unknown ${channel === 'app' ? 'app' : 'site'} key ${JSON.stringify(msg.account)}` };
      try {
        logSubject(msg.conversationId);
      } catch (e) {
        return { ...base, state: 'failed', permanent: true, reason: (e as Error).message };
      }
      try {
        // The customer's next connection (on any node) follows the conversation the agent writes in.
        await log.bind(msg.account, msg.to.handle, msg.conversationId);
        const { seq } = await log.append(
          msg.conversationId,
          { type: 'message', id: msg.messageId, from: 'agent', ...(msg.text ? { text: msg.text } : {}), attachments: msg.attachments, at },
          // Sending the same message again (an outbox replay) appends it once.
          `out:${msg.messageId}`,
        );
        return { ...base, state: 'sent', channelMessageId: String(seq) };
      } catch (e) {
        return { ...base, state: 'failed', permanent: false, reason: `web chat log unavailable: ${(e as Error).message}` };
      }
    },
    async close() {},
  };
}

export const NoticeSchema = v.object({
  kind: v.picklist(NOTICE_KINDS, `kind must be one of ${NOTICE_KINDS.join(', ')}`),
  position: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  estimatedWaitSec: v.optional(v.pipe(v.number(), v.minValue(0))),
  agentName: v.optional(v.pipe(v.string(), v.maxLength(200))),
  text: v.optional(v.pipe(v.string(), v.maxLength(2000))),
  /** conversation.closed: the customer is asked to rate it (protocol v3 `csat`). */
  csat: v.optional(v.boolean()),
});
export type Notice = v.InferInput<typeof NoticeSchema>;

/** Appends a notice the customer sees (queue position and wait, agent joined, closed); returns its seq. */
export async function publishNotice(log: ConversationLog, conversationId: string, notice: Notice, now: () => number = Date.now): Promise<number> {
  const n = v.parse(NoticeSchema, notice);
  const { seq } = await log.append(conversationId, {
    type: 'notice',
    ...n,
    kind: n.kind as NoticeKind,
    ...(n.estimatedWaitSec !== undefined ? { estimatedWaitSec: Math.round(n.estimatedWaitSec) } : {}),
    at: now(),
  });
  return seq;
}

/** The agent has read (or received) the customer's messages up to seq: shown as ticks in the widget. */
export async function publishReceipt(log: ConversationLog, conversationId: string, state: 'delivered' | 'read', upToSeq: number, now: () => number = Date.now): Promise<number> {
  const { seq } = await log.append(conversationId, { type: 'receipt', state, upToSeq, at: now() }, `receipt:${conversationId}:${state}:${upToSeq}`);
  return seq;
}

/**
 * Optional wiring: conversation notices published on `cc.conversation.<id>.notice` into the log of the
 * conversations that have one (web chat and app ones). A queue group makes one edge node take each.
 */
export function bridgeNotices(nc: NatsConnection, log: ConversationLog, logger: Logger): { stop(): void } {
  const sub = nc.subscribe('cc.conversation.*.notice', {
    queue: 'cc-webchat-notices',
    callback: (err, m) => {
      if (err) return;
      const conversationId = m.subject.split('.')[2];
      void (async () => {
        try {
          const n = v.safeParse(NoticeSchema, m.json());
          if (!n.success) return logger.warn({ conversationId, reason: firstIssue(n.issues) }, 'webchat: notice ignored');
          const has = await log.jsm.streams.getMessage('CC_WEBCHAT', { last_by_subj: logSubject(conversationId) }).catch(() => null);
          if (has) await publishNotice(log, conversationId, n.output);
        } catch (e) {
          logger.warn({ conversationId, err: (e as Error).message }, 'webchat: notice not logged');
        }
      })();
    },
  });
  return { stop: () => sub.unsubscribe() };
}
