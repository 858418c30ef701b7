// A conversation: one customer's thread across channels, from queue to agent to wrap-up and close,
// with transfers, hold, a channel switch (chat escalated to voice stays one conversation) and SLA timers.
import * as v from 'valibot';
import { assign, emit, enqueueActions, raise, setup } from 'xstate';
import { defineKind } from '../actors/kind.ts';
import { notify, publish, reply, tell } from './effects.ts';
import { positionText, textNoticeDue } from './position-text.ts';
import { ChannelSchema, ReservationAnswerSchemas, SkillNeedSchema, type Channel, type Task } from './routing.ts';

const at = v.number();

/** Where replies on one channel go: the customer's handle there and the thread to keep. */
const ReplyToSchema = v.object({
  account: v.string(),
  handle: v.string(),
  displayName: v.optional(v.string()),
  inReplyTo: v.optional(v.string()),
  references: v.optional(v.array(v.string())),
  subject: v.optional(v.string()),
});
export type ReplyTo = v.InferOutput<typeof ReplyToSchema>;
const ReplyAttachmentSchema = v.object({ key: v.string(), name: v.string(), contentType: v.string(), size: v.number(), sha256: v.optional(v.string()) });
const DeliveryStateSchema = v.picklist(['queued', 'sent', 'delivered', 'read', 'failed']);
const CallStateSchema = v.picklist(['dialing', 'ringing', 'answered', 'failed', 'ended']);
export type CallState = v.InferOutput<typeof CallStateSchema>;

export const ConversationEventSchema = v.variant('type', [
  v.object({
    type: v.literal('open'),
    at,
    customer: v.string(),
    channel: ChannelSchema,
    queue: v.string(),
    skills: v.optional(v.array(SkillNeedSchema), []),
    language: v.optional(v.string()),
    tier: v.optional(v.picklist(['normal', 'vip']), 'normal'),
    urgent: v.optional(v.boolean(), false),
    attrs: v.optional(v.record(v.string(), v.union([v.string(), v.number(), v.boolean()])), {}),
    slaFirstSec: v.optional(v.number()),
    slaNextSec: v.optional(v.number()),
    /** Where replies go, for a conversation an agent opens to a customer (proactive outreach). */
    replyTo: v.optional(ReplyToSchema),
  }),
  v.object({ type: v.literal('queue.position'), at, queue: v.string(), position: v.number(), estimatedWaitSec: v.number() }),
  v.object({ type: v.literal('queue.overflowed'), at, from: v.string(), to: v.string() }),
  v.object({ type: v.literal('queue.refused'), at, queue: v.string(), reason: v.string() }),
  v.object({ type: v.literal('offered'), at, agent: v.string(), reservationId: v.string() }),
  v.object({ type: v.literal('requeued'), at, agent: v.string(), reason: v.string() }),
  v.object({ type: v.literal('assigned'), at, agent: v.string(), reservationId: v.string() }),
  v.object({
    type: v.literal('customer.message'),
    at,
    channel: v.optional(ChannelSchema),
    messageId: v.optional(v.string()),
    replyTo: v.optional(ReplyToSchema),
    /** The customer's tier as the edge found it: a reopened conversation queues with it, not the old one. */
    tier: v.optional(v.picklist(['normal', 'vip'])),
  }),
  // An agent's reply: leaves through the outbox to the edge of the conversation's channel (or the one named).
  v.object({
    type: v.literal('agent.reply'),
    at,
    messageId: v.pipe(v.string(), v.minLength(1)),
    agent: v.string(),
    channel: v.optional(ChannelSchema),
    text: v.optional(v.string()),
    html: v.optional(v.string()),
    attachments: v.optional(v.array(ReplyAttachmentSchema), []),
  }),
  // A message the engine sends the customer itself, in any state (e.g. the chat link after a voice failover): same path as a reply.
  v.object({
    type: v.literal('system.reply'),
    at,
    messageId: v.pipe(v.string(), v.minLength(1)),
    channel: v.optional(ChannelSchema),
    text: v.optional(v.string()),
    html: v.optional(v.string()),
    attachments: v.optional(v.array(ReplyAttachmentSchema), []),
  }),
  v.object({ type: v.literal('delivery'), at, messageId: v.string(), state: DeliveryStateSchema, reason: v.optional(v.string()), permanent: v.optional(v.boolean()) }),
  v.object({ type: v.literal('agent.message'), at }),
  v.object({ type: v.literal('hold'), at }),
  v.object({ type: v.literal('resume'), at }),
  v.object({ type: v.literal('transfer'), at, to: v.pipe(v.string(), v.regex(/^(agent|queue)\/[A-Za-z0-9_=-]+$/, 'transfer target must be agent/<id> or queue/<id>')), note: v.optional(v.string(), '') }),
  v.object({ type: v.literal('channel.switch'), at, channel: ChannelSchema }),
  // The customer calls from the chat (the web chat widget's Call button, edges/webchat/call.ts).
  v.object({ type: v.literal('call.request'), at, callId: v.pipe(v.string(), v.minLength(1)) }),
  // An outbound call's progress, told by the SIP edge placing it (edges/sip/outbound.ts).
  v.object({ type: v.literal('call.progress'), at, callId: v.pipe(v.string(), v.minLength(1)), state: CallStateSchema, reason: v.optional(v.string()) }),
  v.object({ type: v.literal('wrapup'), at }),
  v.object({ type: v.literal('close'), at, disposition: v.optional(v.string(), '') }),
  v.object({ type: v.literal('customer.left'), at }),
  /** From the customer actor: their tier changed (a supervisor made them VIP). A waiting task moves up. */
  v.object({ type: v.literal('tier.changed'), at, tier: v.picklist(['normal', 'vip']) }),
  // The customer's satisfaction rating, once per conversation, after an agent served it (wrap-up or closed).
  // `by` is who sent it on which channel: only the conversation's own customer handle is taken.
  v.object({
    type: v.literal('csat.rated'),
    at,
    score: v.pipe(v.number(), v.integer('score must be a whole number'), v.minValue(1, 'score must be 1 to 5'), v.maxValue(5, 'score must be 1 to 5')),
    comment: v.optional(v.pipe(v.string(), v.maxLength(1000, 'comment must be at most 1000 characters'))),
    by: v.object({ channel: ChannelSchema, handle: v.pipe(v.string(), v.minLength(1)) }),
  }),
  v.object({ type: v.literal('sla.first'), at: v.optional(v.number()) }),
  v.object({ type: v.literal('sla.next'), at: v.optional(v.number()) }),
  // Answers of an agent reserved directly by a transfer.
  ...ReservationAnswerSchemas,
  v.object({ type: v.literal('get'), at: v.optional(v.number()) }),
]);
export type ConversationEvent = v.InferOutput<typeof ConversationEventSchema>;

export interface ConversationContext {
  id: string;
  customer: string;
  channel: Channel;
  /** Every channel this conversation has used, in order: the history stays one. */
  channels: { channel: Channel; at: number }[];
  queue: string;
  task?: Task;
  agent?: string;
  reservation?: string;
  openedAt: number;
  assignedAt?: number;
  firstResponseAt?: number;
  lastCustomerAt?: number;
  /** Customer messages so far (unread counts in every workspace node start from it). */
  inbound?: number;
  awaitingReply: boolean;
  slaFirstSec: number;
  slaNextSec: number;
  breaches: { kind: 'first' | 'next'; at: number }[];
  transfers: { from?: string; to: string; note: string; at: number }[];
  position?: { position: number; estimatedWaitSec: number };
  /** Position notices texted to the customer (channels without a live notice: SMS, email, apps): how many, and when the last of this request. */
  textNotices?: { n: number; at?: number };
  disposition: string;
  closedAt?: number;
  /** A customer message within this window reopens a closed conversation. */
  reopenWindowSec: number;
  outcome?: 'assigned' | 'overflowed' | 'refused' | 'abandoned';
  /** Where replies go, per channel the customer has written from. */
  replyTo?: Partial<Record<Channel, ReplyTo>>;
  /** Delivery states of the latest replies (at most MAX_DELIVERIES), by message id. */
  deliveries?: Record<string, { state: v.InferOutput<typeof DeliveryStateSchema>; at: number; reason?: string; permanent?: boolean }>;
  /** The latest outbound call and how far it got; `from` is the channel it was escalated from. */
  call?: { callId: string; state: CallState; at: number; reason?: string; from?: Channel };
  /** The customer's rating (1-5), taken once. */
  csat?: Csat;
  /** We wrote first: an agent's outreach (`open` with `attrs.outbound`) or a campaign's message sent before any `open`. */
  outreach?: true;
}

export interface Csat {
  score: number;
  comment?: string;
  at: number;
  channel: Channel;
}
/** The answer to an ask of `csat.rated`: taken (again, for the same rating sent twice), or refused with the reason. */
export type CsatAnswer = { ok: true; duplicate: boolean; conversation: string; customer: string; csat: Csat } | { ok: false; reason: string };

const MAX_DELIVERIES = 100;
const ORDER = ['queued', 'sent', 'delivered', 'read'];

/**
 * Where a conversation's close and reopen are published (durably, through the outbox) for the identity
 * graph: the store applies them as `conversation.status` (storage/events.ts).
 */
export const conversationStatusSubject = (id: string) => `cc.events.conversation.${id}`;
export interface ConversationStatusEvent {
  type: 'conversation.status';
  conversation: string;
  customer: string;
  channel: Channel;
  status: 'open' | 'closed';
  at: number;
  by?: string;
  disposition?: string;
  outcome?: ConversationContext['outcome'];
}
const statusEvent = (c: ConversationContext, status: 'open' | 'closed', at: number, extra: Partial<ConversationStatusEvent> = {}) =>
  publish(conversationStatusSubject(c.id), { type: 'conversation.status', conversation: c.id, customer: c.customer, channel: c.channel, status, at, ...extra } satisfies ConversationStatusEvent);
/** Who closed it: the customer who left, the queue that refused it, or the agent who held it. */
const closedBy = (c: ConversationContext) => (c.outcome === 'abandoned' ? 'customer' : c.outcome === 'refused' ? `queue/${c.queue}` : c.agent ? `agent/${c.agent}` : undefined);

/**
 * The customer learns of an open or reopen. `outreach` while the customer has written at most the message
 * that opens it now: their first message in a conversation we opened answers us (machines/customer.ts).
 */
const openedTell = (c: ConversationContext) =>
  tell(`customer/${c.customer}`, { type: 'conversation.opened', conversationId: c.id, channel: c.channel, ...(c.outreach && (c.inbound ?? 0) <= 1 ? { outreach: true } : {}) });

const live = (c: ConversationContext, state: string) => notify(`cc.live.conversation.${c.id}`, { id: c.id, state, channel: c.channel, queue: c.queue, agent: c.agent, customer: c.customer });

export const conversationMachine = setup({
  types: {} as { context: ConversationContext; events: ConversationEvent; input: { id: string } },
  delays: {
    slaFirst: ({ context }) => context.slaFirstSec * 1000,
    slaNext: ({ context }) => context.slaNextSec * 1000,
  },
  guards: {
    withinReopenWindow: ({ context, event }) => context.closedAt !== undefined && (event.at ?? 0) - context.closedAt <= context.reopenWindowSec * 1000,
  },
  actions: {
    enqueue: emit(({ context }) => tell(`queue/${context.queue}`, { type: 'task.add', task: context.task! })),
    releaseAgent: enqueueActions(({ context, event, enqueue }) => {
      if (context.agent) enqueue.emit(tell(`agent/${context.agent}`, { type: 'task.released', conversation: context.id, at: event.at }));
    }),
    customerSpoke: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'customer.message') return;
      enqueue.assign({ lastCustomerAt: event.at, inbound: (context.inbound ?? 0) + 1 });
      // Next-response SLA: the clock starts at the first customer message the agent has not answered.
      if (!context.awaitingReply && context.firstResponseAt !== undefined) {
        enqueue.assign({ awaitingReply: true });
        enqueue.raise({ type: 'sla.next' }, { delay: 'slaNext', id: 'sla.next' });
      }
      if (event.channel && event.channel !== context.channel) enqueue.assign({ channel: event.channel, channels: [...context.channels, { channel: event.channel, at: event.at }] });
      if (event.replyTo) enqueue.assign({ replyTo: { ...context.replyTo, [event.channel ?? context.channel]: event.replyTo } });
    }),
    takePosition: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.position') return;
      const estimatedWaitSec = event.estimatedWaitSec >= 0 ? event.estimatedWaitSec : undefined;
      enqueue.assign({ position: { position: event.position, estimatedWaitSec: event.estimatedWaitSec } });
      enqueue.emit(notify(`cc.conversation.${context.id}.notice`, { kind: 'queue.position', position: event.position, estimatedWaitSec }));
    }),
    /** On channels with no live notice the customer gets a message, paced per channel (position-text.ts). */
    textPosition: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.position' || !context.replyTo?.[context.channel] || !textNoticeDue(context.channel, context.textNotices?.at, event.at)) return;
      const n = (context.textNotices?.n ?? 0) + 1;
      enqueue.assign({ textNotices: { n, at: event.at } });
      const text = positionText({ position: event.position, estimatedWaitSec: event.estimatedWaitSec, language: context.task?.language });
      enqueue.raise({ type: 'system.reply', at: event.at, messageId: `${context.id}:position:${n}`, channel: context.channel, text, attachments: [] });
    }),
    /** The reply goes to the channel's edge through the outbox; without an address it fails at once, visibly. */
    sendReply: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'agent.reply' && event.type !== 'system.reply') return;
      const channel = event.channel ?? context.channel;
      const to = context.replyTo?.[channel];
      if (!to) {
        enqueue.raise({ type: 'delivery', at: event.at, messageId: event.messageId, state: 'failed', reason: `no ${channel} address for this customer`, permanent: true });
        return;
      }
      enqueue.emit(
        publish(`cc.out.${channel}`, {
          channel,
          account: to.account,
          conversationId: context.id,
          messageId: event.messageId,
          to: { handle: to.handle, displayName: to.displayName },
          text: event.text,
          html: event.html,
          attachments: event.attachments,
          thread: { inReplyTo: to.inReplyTo, references: to.references, subject: to.subject },
        }),
      );
      enqueue.raise({ type: 'delivery', at: event.at, messageId: event.messageId, state: 'queued' });
    }),
    // Before the reopen clears closedAt. Never earlier than 1 ms after the close it undoes: the store
    // orders status changes by time.
    publishReopened: emit(({ context, event }) => statusEvent(context, 'open', Math.max(event.at ?? 0, (context.closedAt ?? 0) + 1), { by: 'customer' })),
    /**
     * An outbound call's progress. Dialing switches the conversation to voice (a chat escalated to a call
     * stays one conversation); when that call fails or ends it goes back to the channel it came from, and
     * a conversation that was only ever this call ends as an inbound call does: wrap-up once answered by
     * an agent, abandoned while still waiting. News of an older call is ignored.
     */
    callProgress: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'call.progress') return;
      const now = context.call;
      if (event.state !== 'dialing' && now?.callId !== event.callId) return;
      const switchTo = (channel: Channel) => {
        enqueue.assign({ channel, channels: [...context.channels, { channel, at: event.at }] });
        if (context.agent) enqueue.emit(tell(`agent/${context.agent}`, { type: 'task.channel', conversation: context.id, channel }));
      };
      const from = event.state === 'dialing' ? (context.channel !== 'voice' ? context.channel : undefined) : now?.from;
      enqueue.assign({ call: { callId: event.callId, state: event.state, at: event.at, reason: event.reason, from } });
      enqueue.emit(notify(`cc.conversation.${context.id}.call`, { callId: event.callId, state: event.state, reason: event.reason, agent: context.agent }));
      if (event.state === 'dialing' && context.channel !== 'voice') switchTo('voice');
      if (event.state !== 'failed' && event.state !== 'ended') return;
      if (from) {
        if (context.channel === 'voice') switchTo(from);
        return;
      }
      // Each is taken only where it means something: wrap-up in active/onHold, customer.left while waiting.
      enqueue.raise({ type: 'wrapup', at: event.at });
      enqueue.raise({ type: 'customer.left', at: event.at });
    }),
    /** A rating in wrap-up or closed: the conversation's own customer, once; the same rating again is answered as taken. */
    rate: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'csat.rated') return;
      const answer = (a: CsatAnswer) => enqueue.emit(reply(a));
      if (context.outcome !== 'assigned') return answer({ ok: false, reason: 'no agent served this conversation: there is nothing to rate' });
      if (context.replyTo?.[event.by.channel]?.handle !== event.by.handle) return answer({ ok: false, reason: "only the conversation's customer may rate it" });
      const had = context.csat;
      if (had) {
        if (had.score === event.score && (had.comment ?? '') === (event.comment ?? '')) return answer({ ok: true, duplicate: true, conversation: context.id, customer: context.customer, csat: had });
        return answer({ ok: false, reason: `this conversation was already rated (${had.score} of 5)` });
      }
      const csat: Csat = { score: event.score, ...(event.comment ? { comment: event.comment } : {}), at: event.at, channel: event.by.channel };
      enqueue.assign({ csat });
      answer({ ok: true, duplicate: false, conversation: context.id, customer: context.customer, csat });
    }),
    /** Moved to the overflow queue: noted as a transfer, from the first wait or after a re-queue alike. */
    overflowed: assign(({ context, event }) => (event.type === 'queue.overflowed' ? { queue: event.to, transfers: [...context.transfers, { from: `queue/${event.from}`, to: `queue/${event.to}`, note: 'overflow', at: event.at }] } : {})),
    takeTier: assign(({ context, event }) => (event.type === 'tier.changed' && context.task ? { task: { ...context.task, tier: event.tier } } : {})),
    /** The queue holds the task: it moves it to the place the new tier gives it. */
    retierTask: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'tier.changed' && context.task && context.queue) enqueue.emit(tell(`queue/${context.queue}`, { type: 'task.tier', taskId: context.id, tier: event.tier }));
    }),
    /** Reopened without ever being answered: the first-response clock starts again (an answered one is on the next-response clock from the message itself). */
    restartFirstSla: enqueueActions(({ context, enqueue }) => {
      if (context.firstResponseAt === undefined) enqueue.raise({ type: 'sla.first' }, { delay: 'slaFirst', id: 'sla.first' });
    }),
    stopSla: enqueueActions(({ context, enqueue }) => {
      enqueue.cancel('sla.first');
      enqueue.cancel('sla.next');
      if (context.awaitingReply) enqueue.assign({ awaitingReply: false });
    }),
    agentSpoke: enqueueActions(({ context, event, enqueue }) => {
      if (context.firstResponseAt === undefined) {
        enqueue.assign({ firstResponseAt: event.at });
        enqueue.cancel('sla.first');
      }
      if (context.awaitingReply) {
        enqueue.assign({ awaitingReply: false });
        enqueue.cancel('sla.next');
      }
    }),
  },
}).createMachine({
  id: 'conversation',
  context: ({ input }) => ({
    id: input.id,
    customer: '',
    channel: 'webchat',
    channels: [],
    queue: '',
    openedAt: 0,
    awaitingReply: false,
    slaFirstSec: 60,
    slaNextSec: 120,
    breaches: [],
    transfers: [],
    disposition: '',
    reopenWindowSec: 24 * 3600,
  }),
  initial: 'new',
  on: {
    // `get` has no handler on purpose: an ask without a reply effect answers with { value, context, status }.
    // A late notice (the task was just offered) is kept, not texted: see queued and waiting.
    'queue.position': { actions: 'takePosition' },
    'customer.message': { actions: 'customerSpoke' },
    'system.reply': { actions: 'sendReply' },
    'call.progress': { actions: 'callProgress' },
    // Wrap-up and closed take ratings; before that the conversation is not over yet.
    'csat.rated': { actions: emit(({ context }) => reply({ ok: false, reason: context.customer ? 'the conversation is still going on: rate it once it is closed' : 'no such conversation' } satisfies CsatAnswer)) },
    delivery: {
      actions: [
        // A campaign stores and sends its message without opening the conversation (the customer's answer
        // opens it): a delivery state before any `open` is that message, so we wrote first.
        enqueueActions(({ context, event, enqueue }) => {
          if (event.type === 'delivery' && !context.customer && event.state !== 'failed') enqueue.assign({ outreach: true });
        }),
        assign({
          deliveries: ({ context, event }) => {
            const now = context.deliveries?.[event.messageId];
            // States only move forward (a late 'sent' never hides 'read'); a failure always shows.
            if (now && event.state !== 'failed' && ORDER.indexOf(event.state) <= ORDER.indexOf(now.state)) return context.deliveries;
            const all = { ...context.deliveries, [event.messageId]: { state: event.state, at: event.at, reason: event.reason, permanent: event.permanent } };
            const ids = Object.keys(all);
            return ids.length > MAX_DELIVERIES ? Object.fromEntries(ids.slice(-MAX_DELIVERIES).map((k) => [k, all[k]])) : all;
          },
        }),
        emit(({ context, event }) => notify(`cc.conversation.${context.id}.delivery`, { messageId: event.messageId, state: event.state, reason: event.reason, permanent: event.permanent, agent: context.agent })),
      ],
    },
    'sla.first': { actions: [assign({ breaches: ({ context, event }) => [...context.breaches, { kind: 'first' as const, at: event.at ?? 0 }] }), emit(({ context }) => notify(`cc.live.sla.${context.id}`, { conversation: context.id, breach: 'first-response' }))] },
    // Remembered for a later requeue or reopen; where the task waits in a queue, the queue is told too (below).
    'tier.changed': { actions: 'takeTier' },
    'sla.next': { actions: [assign({ breaches: ({ context, event }) => [...context.breaches, { kind: 'next' as const, at: event.at ?? 0 }], awaitingReply: false }), emit(({ context }) => notify(`cc.live.sla.${context.id}`, { conversation: context.id, breach: 'next-response' }))] },
  },
  states: {
    new: {
      on: {
        open: {
          target: 'queued',
          actions: [
            assign(({ context, event }) => ({
              customer: event.customer,
              channel: event.channel,
              channels: [{ channel: event.channel, at: event.at }],
              queue: event.queue,
              openedAt: event.at,
              ...(event.attrs.outbound === true ? { outreach: true as const } : {}),
              replyTo: event.replyTo ? { ...context.replyTo, [event.channel]: event.replyTo } : context.replyTo,
              slaFirstSec: event.slaFirstSec ?? context.slaFirstSec,
              slaNextSec: event.slaNextSec ?? context.slaNextSec,
              task: {
                id: context.id,
                channel: event.channel,
                customer: event.customer,
                skills: event.skills,
                language: event.language,
                tier: event.tier,
                urgent: event.urgent,
                enqueuedAt: event.at,
                attrs: event.attrs,
                excluded: [],
              },
            })),
            raise({ type: 'sla.first' }, { delay: 'slaFirst', id: 'sla.first' }),
            emit(({ context }) => openedTell(context)),
          ],
        },
      },
    },
    queued: {
      entry: ['enqueue', emit(({ context }) => live(context, 'queued'))],
      on: {
        'queue.position': { actions: ['takePosition', 'textPosition'] },
        'tier.changed': { actions: ['takeTier', 'retierTask'] },
        offered: { target: 'offered', actions: assign({ agent: ({ event }) => event.agent, reservation: ({ event }) => event.reservationId }) },
        // The agent accepted before its `offered` arrived here: accept the assignment all the same.
        assigned: { target: 'active', actions: assign({ agent: ({ event }) => event.agent, reservation: ({ event }) => event.reservationId, assignedAt: ({ event }) => event.at, outcome: 'assigned' }) },
        'queue.overflowed': { actions: 'overflowed' },
        'queue.refused': { target: 'closed', actions: assign({ outcome: 'refused', closedAt: ({ event }) => event.at, disposition: ({ event }) => `refused by queue ${event.queue}: ${event.reason}` }) },
        'customer.left': { target: 'closed', actions: [assign({ outcome: 'abandoned', closedAt: ({ event }) => event.at }), emit(({ context }) => tell(`queue/${context.queue}`, { type: 'task.cancel', taskId: context.id }))] },
      },
    },
    offered: {
      entry: emit(({ context }) => live(context, 'offered')),
      on: {
        'tier.changed': { actions: ['takeTier', 'retierTask'] },
        assigned: { target: 'active', actions: assign({ assignedAt: ({ event }) => event.at, outcome: 'assigned', agent: ({ event }) => event.agent }) },
        // Back in line: the queue already has the task and offers it again.
        requeued: { target: 'waiting', actions: assign({ agent: undefined, reservation: undefined }) },
        // A reservation this conversation made itself (a call from the chat) was declined: to the queue.
        // (Queue reservations answer the queue; the `requeued` that follows is then ignored in `queued`.)
        'reservation.rejected': { target: 'queued', actions: assign({ agent: undefined, reservation: undefined }) },
        'customer.left': { target: 'closed', actions: [assign({ outcome: 'abandoned', closedAt: ({ event }) => event.at }), emit(({ context }) => tell(`queue/${context.queue}`, { type: 'task.cancel', taskId: context.id }))] },
      },
    },
    /** Queued again after a reject or timeout, without re-sending the task (the queue kept it). */
    waiting: {
      entry: emit(({ context }) => live(context, 'queued')),
      on: {
        'queue.position': { actions: ['takePosition', 'textPosition'] },
        'tier.changed': { actions: ['takeTier', 'retierTask'] },
        offered: { target: 'offered', actions: assign({ agent: ({ event }) => event.agent, reservation: ({ event }) => event.reservationId }) },
        assigned: { target: 'active', actions: assign({ agent: ({ event }) => event.agent, assignedAt: ({ event }) => event.at, outcome: 'assigned' }) },
        'queue.overflowed': { actions: 'overflowed' },
        'customer.left': { target: 'closed', actions: [assign({ outcome: 'abandoned', closedAt: ({ event }) => event.at }), emit(({ context }) => tell(`queue/${context.queue}`, { type: 'task.cancel', taskId: context.id }))] },
      },
    },
    active: {
      entry: emit(({ context }) => live(context, 'active')),
      on: {
        'agent.message': { actions: 'agentSpoke' },
        'agent.reply': { actions: ['agentSpoke', 'sendReply'] },
        hold: 'onHold',
        transfer: 'transferring',
        'channel.switch': {
          actions: [
            assign(({ context, event }) => ({ channel: event.channel, channels: [...context.channels, { channel: event.channel, at: event.at }] })),
            emit(({ context, event }) => tell(`agent/${context.agent}`, { type: 'task.channel', conversation: context.id, channel: event.channel })),
          ],
        },
        wrapup: { target: 'wrapup', actions: emit(({ context }) => tell(`agent/${context.agent}`, { type: 'task.wrapup', conversation: context.id })) },
        /**
         * A call from the chat: the same conversation goes on as a voice task. The chat's agent is offered it
         * first (a direct reservation, as a direct transfer makes: the chat slot is given back first, then a
         * voice slot is held); an agent who cannot or does not take it sends it to the queue, voice first.
         */
        'call.request': {
          guard: ({ context }) => context.channel !== 'voice',
          target: 'transferring',
          actions: enqueueActions(({ context, event, enqueue }) => {
            if (event.type !== 'call.request' || !context.task) return;
            const task: Task = { ...context.task, channel: 'voice', excluded: [], excludedUntil: undefined };
            enqueue.assign({ channel: 'voice', channels: [...context.channels, { channel: 'voice', at: event.at }], task, agent: undefined, reservation: undefined });
            if (!context.agent) return;
            enqueue.emit(tell(`agent/${context.agent}`, { type: 'task.released', conversation: context.id, at: event.at }));
            enqueue.emit(tell(`agent/${context.agent}`, { type: 'reserve', reservationId: `${context.id}-${event.callId}`, task, replyTo: `conversation/${context.id}`, explanation: { rule: 'call from the chat', note: 'the customer called from the chat you hold' } }));
          }),
        },
      },
    },
    onHold: {
      entry: emit(({ context }) => live(context, 'onHold')),
      on: { resume: 'active', wrapup: { target: 'wrapup', actions: emit(({ context }) => tell(`agent/${context.agent}`, { type: 'task.wrapup', conversation: context.id })) } },
    },
    transferring: {
      // The history stays with the conversation actor; only the owner changes.
      entry: [
        'releaseAgent',
        enqueueActions(({ context, event, enqueue }) => {
          if (event.type !== 'transfer') return;
          const [kind, target] = event.to.split('/');
          enqueue.assign({ transfers: [...context.transfers, { from: context.agent ? `agent/${context.agent}` : undefined, to: event.to, note: event.note, at: event.at }], agent: undefined, reservation: undefined });
          const task: Task = { ...context.task!, excluded: [], excludedUntil: undefined, attrs: { ...context.task!.attrs, transferNote: event.note } };
          if (kind === 'queue') {
            enqueue.assign({ queue: target, task });
            enqueue.emit(tell(`queue/${target}`, { type: 'task.add', task, note: event.note }));
          } else {
            // A direct transfer reserves the named agent; its answer comes back here.
            enqueue.emit(tell(`agent/${target}`, { type: 'reserve', reservationId: `${context.id}-t${context.transfers.length + 1}`, task, replyTo: `conversation/${context.id}`, explanation: { rule: 'direct transfer', note: event.note } }));
          }
        }),
      ],
      on: {
        offered: { target: 'offered', actions: assign({ agent: ({ event }) => event.agent, reservation: ({ event }) => event.reservationId }) },
        assigned: { target: 'active', actions: assign({ agent: ({ event }) => event.agent }) },
        // A direct transfer the agent could not take goes to the conversation's queue instead.
        'reservation.refused': { target: 'queued' },
        'reservation.rejected': { target: 'queued' },
      },
    },
    wrapup: {
      // No response is owed once the conversation is over (from onHold too), and a timer that was already
      // due when it got here is not a breach.
      entry: ['stopSla', emit(({ context }) => live(context, 'wrapup'))],
      on: {
        'sla.first': {},
        'sla.next': {},
        'csat.rated': { actions: 'rate' },
        close: {
          target: 'closed',
          actions: [assign({ disposition: ({ event }) => event.disposition, closedAt: ({ event }) => event.at }), 'releaseAgent'],
        },
      },
    },
    closed: {
      entry: [
        // Abandoned or refused while still waiting for an agent: the clocks stop with it.
        'stopSla',
        emit(({ context }) => live(context, 'closed')),
        emit(({ context }) => tell(`customer/${context.customer}`, { type: 'conversation.closed', conversationId: context.id })),
        emit(({ context }) => statusEvent(context, 'closed', context.closedAt ?? 0, { by: closedBy(context), disposition: context.disposition || undefined, outcome: context.outcome })),
        // The customer's screen (web chat, app) says it ended and, for one an agent served and not yet rated, asks for a rating.
        enqueueActions(({ context, enqueue }) => {
          if (context.outcome === 'assigned') enqueue.emit(notify(`cc.conversation.${context.id}.notice`, { kind: 'conversation.closed', csat: !context.csat }));
        }),
      ],
      on: {
        'sla.first': {},
        'sla.next': {},
        'csat.rated': { actions: 'rate' },
        'customer.message': [
          {
            guard: 'withinReopenWindow',
            target: 'queued',
            actions: [
              'publishReopened',
              'customerSpoke',
              'restartFirstSla',
              // A new request: position notices start over (an email gets its acknowledgement again).
              assign(({ context, event }) => ({ agent: undefined, closedAt: undefined, outcome: undefined, disposition: '', textNotices: context.textNotices && { n: context.textNotices.n }, task: { ...context.task!, enqueuedAt: event.at, excluded: [], excludedUntil: undefined, tier: event.tier ?? context.task!.tier } })),
              emit(({ context }) => openedTell(context)),
            ],
          },
        ],
      },
    },
  },
});

export const conversationKind = defineKind({ name: 'conversation', machine: conversationMachine, version: 1, events: ConversationEventSchema, input: (id) => ({ id }) });
