// The engine's side of every edge: a canonical inbound message becomes a customer (identity graph),
// a stored message in that customer's open conversation (or a new one), and durable actor mail to the
// conversation and the customer. Delivery states go back to the conversation they belong to.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import * as v from 'valibot';
import type { ActorClient } from '../actors/client.ts';
import type { Channel } from '../machines/routing.ts';
import type { StoreClient } from '../storage/client.ts';
import type { IdentityChannel } from '../storage/schema.ts';
import { DeliveryUpdateSchema, EdgeRejection, InboundMessageSchema, type DeliveryUpdate, type InboundMessage, type InboundSink } from './message.ts';

/** Which kind of identity a channel's sender handle is, in the identity graph. */
export const IDENTITY_OF: Record<Channel, IdentityChannel> = {
  voice: 'phone',
  sms: 'phone',
  email: 'email',
  webchat: 'web',
  app: 'app',
  wecom: 'wecom',
  wechat: 'wechat_openid',
  dingtalk: 'dingtalk',
  douyin: 'douyin',
  xiaohongshu: 'xiaohongshu',
};

/** Where a channel account's conversations queue, and what they ask of agents. */
export interface Routing {
  queue: string;
  skills?: { name: string; level?: number }[];
}

export interface InboundDeps {
  store: StoreClient;
  actors: Pick<ActorClient, 'tell' | 'ask'>;
  /** The queue for a message (by channel and account); a default queue otherwise. */
  routeOf?: (msg: InboundMessage) => Routing;
  log: Logger;
  counters?: { inbound: Counter<'channel' | 'outcome'> };
}

/** Actor ids are the key part of the graph's record ids (`conversation:01J…` → `01J…`). */
export const keyOf = (recordId: string) => recordId.slice(recordId.indexOf(':') + 1);

const TIER_TTL_MS = 10_000;
/**
 * A sender who writes again with the same handle and contact points is the same identity: the store is
 * not asked again for this long. Safe across a merge meanwhile (the store appends to an absorbed
 * customer's survivor); an unmerge is seen by the next resolve at the latest.
 */
const RESOLVE_TTL_MS = 30_000;

/**
 * Carrier keywords a whole SMS may be (case and spaces aside): the sender opts out of, or back into, our
 * messages on SMS. The CTIA set, and 退订/TD that Chinese senders reply with.
 */
const SMS_OPT_OUT = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'TD', '退订']);
const SMS_OPT_IN = new Set(['START', 'UNSTOP', 'YES']);
export function smsKeyword(text: string | undefined): 'opt_out' | 'opt_in' | undefined {
  const word = (text ?? '').trim().replace(/[.!。！]+$/, '').toUpperCase();
  return SMS_OPT_OUT.has(word) ? 'opt_out' : SMS_OPT_IN.has(word) ? 'opt_in' : undefined;
}

/** Chinese text gets Chinese-speaking agents; the rest English, unless the account's routing says more. */
const languageOf = (text: string | undefined) => (text && /[\u3400-\u9fff]/.test(text) ? 'zh' : 'en');

/**
 * The contact points a message proves: a carrier's caller number (SMS, voice) is the customer's phone;
 * a mail whose DKIM or DMARC passed (per the receiving server's Authentication-Results) is from that
 * address; an app vouches for what its signed token carries. Proven ones link channels to one customer;
 * the rest only suggest a match.
 */
function contactsOf(msg: InboundMessage): { phone?: string; email?: string; verified?: { phone?: boolean; email?: boolean } } {
  const { from } = msg;
  if (msg.channel === 'sms' || msg.channel === 'voice') return { phone: from.phone ?? from.handle, email: from.email, verified: { ...from.verified, phone: true } };
  if (msg.channel === 'email') {
    const passed = msg.meta.dkim === 'pass' || msg.meta.dmarc === 'pass';
    return { phone: from.phone, email: from.email ?? from.handle, verified: { ...from.verified, email: passed || from.verified?.email } };
  }
  return { phone: from.phone, email: from.email, verified: from.verified };
}

export function engineSink(deps: InboundDeps): InboundSink {
  const { store, actors, log } = deps;
  const routeOf: (msg: InboundMessage) => Routing = deps.routeOf ?? (() => ({ queue: 'support' }));
  // A customer writing several messages in a row is asked for their tier once: it rarely changes.
  const tiers = new Map<string, { tier: 'normal' | 'vip'; until: number }>();
  const tierOf = async (customer: string, at: number): Promise<'normal' | 'vip'> => {
    const known = tiers.get(customer);
    if (known && known.until > Date.now()) return known.tier;
    const tier = await actors
      .ask<{ tier?: 'normal' | 'vip' }>(`customer/${customer}`, { type: 'get', at }, { timeoutMs: 2000 })
      .then((c) => c.tier ?? 'normal')
      .catch(() => 'normal' as const);
    if (tiers.size > 10_000) tiers.clear();
    tiers.set(customer, { tier, until: Date.now() + TIER_TTL_MS });
    return tier;
  };
  const senders = new Map<string, { who: Awaited<ReturnType<StoreClient['resolve']>>; until: number }>();
  const resolve = async (req: Parameters<StoreClient['resolve']>[0]) => {
    const key = JSON.stringify({ ...req, at: undefined }); // who and what they proved; not when
    const known = senders.get(key);
    if (known && known.until > Date.now()) return { ...known.who, suggestions: [] };
    const who = await store.resolve(req);
    if (senders.size > 10_000) senders.clear();
    senders.set(key, { who, until: Date.now() + RESOLVE_TTL_MS });
    return who;
  };
  // The customer actor keeps the handles that reached it (machines/customer.ts: identities); each is told once per sink.
  const linked = new Set<string>();
  const link = (customer: string, msg: InboundMessage): Promise<unknown> => {
    const k = `${customer} ${msg.channel} ${msg.from.handle}`;
    if (linked.has(k)) return Promise.resolve();
    if (linked.size > 10_000) linked.clear();
    return actors.tell(`customer/${customer}`, { type: 'identity.link', channel: msg.channel, handle: msg.from.handle }, { msgId: `link:${k}` }).then(() => linked.add(k));
  };
  return {
    async deliver(raw: InboundMessage) {
      const parsed = v.safeParse(InboundMessageSchema, raw);
      if (!parsed.success) throw new EdgeRejection(400, `bad message: ${parsed.issues[0].message} at ${v.getDotPath(parsed.issues[0]) ?? '(root)'}`);
      const msg = parsed.output;
      const who = await resolve({ channel: IDENTITY_OF[msg.channel], handle: msg.from.handle, displayName: msg.from.displayName, ...contactsOf(msg), at: msg.sentAt });
      const threadId = msg.thread?.conversationId;
      const customer = keyOf(who.customerId);
      // The customer's tier (cached) is looked up while the message is stored.
      const tierLookup = tierOf(customer, msg.sentAt);
      const stored = await store.append({
        customerId: who.customerId,
        identityId: who.identityId,
        conversationId: threadId && /^[A-Za-z0-9_]{1,64}$/.test(threadId) ? `conversation:${threadId}` : undefined,
        channel: msg.channel,
        channelMessageId: msg.channelMessageId,
        direction: 'in',
        text: msg.text ?? (msg.attachments.length ? undefined : ''),
        subject: msg.thread?.subject,
        at: msg.sentAt,
        attachments: msg.attachments.map((a) => ({ objectKey: a.key, contentType: a.contentType, size: a.size, name: a.name })),
      });
      const conversation = keyOf(stored.conversationId);
      const route = routeOf(msg);
      const tier = await tierLookup;
      // Told even for a duplicate: if we stopped between storing and telling, this is the retry.
      // The stream drops repeats within its window, and the machines ignore an `open` they already had.
      const key = `${msg.channel}:${msg.channelMessageId}`;
      // The customer actor learns of the message beside the conversation's two tells (their order matters; its does not).
      // It is told the conversation too: the first message in one we opened (outreach) counts as an answer to us,
      // whether this comes before or after the conversation's `conversation.opened` (machines/customer.ts).
      const keyword = msg.channel === 'sms' ? smsKeyword(msg.text) : undefined;
      const seen = Promise.all([
        actors.tell(`customer/${customer}`, { type: 'message.inbound', channel: msg.channel, at: msg.sentAt, conversationId: conversation }, { msgId: `seen:${key}` }),
        link(customer, msg),
        // STOP and the like are kept (agents see them) and also recorded as the customer's choice for SMS.
        keyword && actors.tell(`customer/${customer}`, { type: `consent.${keyword}`, channel: 'sms', at: msg.sentAt, source: `sms keyword "${msg.text!.trim()}"` }, { msgId: `consent:${key}` }),
      ]);
      seen.catch(() => undefined); // awaited below; not unhandled if a tell before it fails first
      await actors.tell(
        `conversation/${conversation}`,
        { type: 'open', at: msg.sentAt, customer, channel: msg.channel, queue: route.queue, skills: route.skills ?? [], language: languageOf(msg.text), tier },
        { msgId: `open:${conversation}` },
      );
      await actors.tell(
        `conversation/${conversation}`,
        {
          type: 'customer.message',
          at: msg.sentAt,
          channel: msg.channel,
          tier,
          messageId: keyOf(stored.messageId),
          replyTo: {
            account: msg.account,
            handle: msg.from.handle,
            displayName: msg.from.displayName,
            inReplyTo: msg.thread?.messageId,
            references: msg.thread?.messageId ? [...(msg.thread.references ?? []), msg.thread.messageId] : msg.thread?.references,
            subject: msg.thread?.subject,
          },
        },
        { msgId: `in:${key}` },
      );
      await seen;
      deps.counters?.inbound.inc({ channel: msg.channel, outcome: stored.duplicate ? 'duplicate' : 'stored' });
      if (who.suggestions.length) log.info({ customer, suggestions: who.suggestions.length }, 'possible same customer: suggested to agents');
      return { conversationId: conversation, duplicate: stored.duplicate };
    },

    async delivery(raw: DeliveryUpdate) {
      const parsed = v.safeParse(DeliveryUpdateSchema, raw);
      if (!parsed.success) throw new EdgeRejection(400, `bad delivery update: ${parsed.issues[0].message}`);
      const d = parsed.output;
      if (!d.conversationId) {
        // Nothing to attach it to; said loudly rather than lost quietly.
        log.warn({ channel: d.channel, messageId: d.messageId, state: d.state }, 'delivery state without a conversation');
        return;
      }
      await actors.tell(
        `conversation/${keyOf(d.conversationId)}`,
        { type: 'delivery', at: d.at, messageId: d.messageId, state: d.state, reason: d.reason, permanent: d.permanent },
        { msgId: `dlv:${d.channel}:${d.messageId}:${d.state}` },
      );
    },
  };
}
