// The customer actor: profile, tier, tags, linked identities, open conversations, consent per channel,
// and the channel preference learned from use. Pure: time arrives on events as `at` (ms since epoch);
// answers go out as `reply` effects.
import * as v from 'valibot';
import { assign, emit, enqueueActions, setup } from 'xstate';
import { defineKind } from '../actors/kind.ts';
import { reply, tell, type Effect } from './effects.ts';
import { CHANNELS, ChannelSchema, type Channel } from './routing.ts';

const HOUR_MS = 3_600_000;
/** Hours either side of the asked hour that count as "around then" when learning when they answer. */
const WINDOW_HOURS = 2;
/** Conversations remembered in `firstMessages` (the latest; the oldest is dropped). */
const MAX_FIRST_MESSAGES = 50;

// ---- Events (the schema is the source of truth; the runtime validates mail and asks with it) ----

const Text = v.pipe(v.string(), v.trim(), v.minLength(1));
/** ms since epoch; integer and non-negative so the hour of day is well defined. */
const At = v.pipe(v.number('at must be a number'), v.integer('at must be an integer'), v.minValue(0, 'at must not be negative'));

export const ProfileSchema = v.object({
  name: v.optional(v.string()),
  language: v.optional(v.string()),
  email: v.optional(v.string()),
  phone: v.optional(v.string()),
});
export type Profile = v.InferOutput<typeof ProfileSchema>;
export type Tier = 'normal' | 'vip';

export const CustomerEventSchema = v.variant(
  'type',
  [
    /** Shallow merge into the profile. */
    v.object({ type: v.literal('profile.update'), profile: ProfileSchema }),
    v.object({ type: v.literal('tier.set'), tier: v.picklist(['normal', 'vip']) }),
    v.object({ type: v.literal('tag.add'), tag: Text }),
    v.object({ type: v.literal('tag.remove'), tag: Text }),
    /** From the identity graph: this channel handle identifies this customer. */
    v.object({ type: v.literal('identity.link'), channel: ChannelSchema, handle: Text }),
    v.object({ type: v.literal('identity.unlink'), channel: ChannelSchema, handle: Text }),
    /**
     * Told by the conversation when it opens or reopens. `outreach`: we wrote first (an agent or a campaign)
     * and the customer has not written in it before: their first message there answers us.
     */
    v.object({ type: v.literal('conversation.opened'), conversationId: Text, channel: ChannelSchema, at: At, outreach: v.optional(v.boolean()) }),
    v.object({ type: v.literal('conversation.closed'), conversationId: Text }),
    /**
     * The customer wrote to us on `channel`, in `conversationId` when the edge knows it: the first message in
     * a conversation we opened counts as an answer to outreach, every other one as their own use.
     */
    v.object({ type: v.literal('message.inbound'), channel: ChannelSchema, at: At, conversationId: v.optional(Text) }),
    /** The customer answered our outreach on `channel` (counted as is, for callers that know it). */
    v.object({ type: v.literal('reply.received'), channel: ChannelSchema, at: At }),
    v.object({ type: v.literal('consent.opt_in'), channel: ChannelSchema, at: At, source: Text }),
    v.object({ type: v.literal('consent.opt_out'), channel: ChannelSchema, at: At, source: Text }),
    /**
     * This customer is merged into `into` (the survivor); afterwards this actor only answers. What it knew
     * (identities, consent, tags, tier, channel use) goes to the survivor as `merge.absorb`, through the outbox.
     */
    v.object({ type: v.literal('merge.into'), into: Text, at: At }),
    v.object({
      type: v.literal('merge.absorb'),
      from: Text,
      at: At,
      tier: v.picklist(['normal', 'vip']),
      tags: v.array(Text),
      identities: v.array(v.object({ channel: ChannelSchema, handle: Text })),
      consent: v.record(v.string(), v.object({ optedIn: v.boolean(), at: v.number(), source: v.string() })),
      channelStats: v.record(v.string(), v.object({ inbound: v.number(), replies: v.number(), lastAt: v.optional(v.number()), hours: v.array(v.number()) })),
    }),
    /** Replies with the context and the preferred channel (at `at`, or overall without it). */
    v.object({ type: v.literal('get'), at: v.optional(At) }),
    v.object({ type: v.literal('preference.query'), at: At }),
    v.object({ type: v.literal('contact.check'), channel: ChannelSchema }),
  ],
  'unknown customer event',
);
export type CustomerEvent = v.InferOutput<typeof CustomerEventSchema>;
export type CustomerEventType = CustomerEvent['type'];

// ---- Context ----

export interface ChannelStats {
  /** Messages they started on this channel. */
  inbound: number;
  /** Answers to our outreach on this channel. */
  replies: number;
  lastAt?: number;
  /** Uses (inbound + replies) per UTC hour of day, index 0..23. */
  hours: number[];
}
export interface Consent {
  optedIn: boolean;
  at: number;
  source: string;
}
export interface OpenConversation {
  id: string;
  channel: Channel;
  openedAt: number;
  /** We opened it and the customer has not answered yet (set by `conversation.opened`, cleared by their first message). */
  outreach?: true;
}
/** How the customer's first message in a conversation was counted. */
export interface FirstMessage {
  conversationId: string;
  channel: Channel;
  counted: 'inbound' | 'replies';
}
export interface CustomerContext {
  id: string;
  profile: Profile;
  tier: Tier;
  tags: string[];
  identities: { channel: Channel; handle: string }[];
  openConversations: OpenConversation[];
  channelStats: Partial<Record<Channel, ChannelStats>>;
  /**
   * The latest conversations they wrote in (at most MAX_FIRST_MESSAGES): how the first message there was
   * counted. The edge tells us of a message beside the conversation's tells (web chat latency), so a
   * campaign's `conversation.opened` (sent when their answer opens it) may come after the answer: the first
   * message, counted as inbound meanwhile, is then recounted as a reply, and later messages stay inbound.
   */
  firstMessages: FirstMessage[];
  consent: Partial<Record<Channel, Consent>>;
  mergedInto?: string;
  mergedAt?: number;
}
export interface Preference {
  channel: Channel | null;
  reason: string;
}

// ---- Pure helpers ----

type Absorbed = Extract<CustomerEvent, { type: 'merge.absorb' }>;
const isChannel = (s: string): s is Channel => (CHANNELS as readonly string[]).includes(s);

/** A customer waiting now is moved up (or down) at once, not only from their next message. */
const tierChanged = (c: CustomerContext, tier: Tier): Effect[] => c.openConversations.map((o) => tell(`conversation/${o.id}`, { type: 'tier.changed', tier }));

/**
 * The survivor of a merge takes what the absorbed customer knew. Per channel the later consent decision
 * wins and, at the same moment, the opt-out: someone who said STOP on either record is never texted
 * because of the merge. A VIP on either side stays a VIP; tags, identities and channel use add up.
 */
export function absorb(ctx: CustomerContext, e: Absorbed): Pick<CustomerContext, 'tier' | 'tags' | 'identities' | 'consent' | 'channelStats'> {
  const consent = { ...ctx.consent };
  for (const [ch, theirs] of Object.entries(e.consent)) {
    if (!isChannel(ch)) continue;
    const ours = consent[ch];
    if (!ours || theirs.at > ours.at || (theirs.at === ours.at && !theirs.optedIn)) consent[ch] = { ...theirs, source: `${theirs.source} (merged from ${e.from})` };
  }
  const channelStats = { ...ctx.channelStats };
  for (const [ch, theirs] of Object.entries(e.channelStats)) {
    if (!isChannel(ch)) continue;
    const ours = channelStats[ch];
    channelStats[ch] = ours
      ? { inbound: ours.inbound + theirs.inbound, replies: ours.replies + theirs.replies, lastAt: Math.max(ours.lastAt ?? 0, theirs.lastAt ?? 0) || undefined, hours: ours.hours.map((n, h) => n + (theirs.hours[h] ?? 0)) }
      : { ...theirs, hours: Array.from({ length: 24 }, (_, h) => theirs.hours[h] ?? 0) };
  }
  return {
    tier: ctx.tier === 'vip' || e.tier === 'vip' ? 'vip' : 'normal',
    tags: [...new Set([...ctx.tags, ...e.tags])],
    identities: [...ctx.identities, ...e.identities.filter((i) => !ctx.identities.some((o) => sameIdentity(o, i)))],
    consent,
    channelStats,
  };
}

export const hourOfDay = (at: number): number => Math.floor(at / HOUR_MS) % 24;
const uses = (s: ChannelStats): number => s.inbound + s.replies;
const hh = (h: number): string => `${String(h).padStart(2, '0')}:00 UTC`;
const optedOut = (ctx: CustomerContext, ch: Channel): boolean => ctx.consent[ch]?.optedIn === false;

/** Uses within WINDOW_HOURS of `hour`, wrapping round midnight. */
function usesAround(s: ChannelStats, hour: number): number {
  let n = 0;
  for (let d = -WINDOW_HOURS; d <= WINDOW_HOURS; d++) n += s.hours[(hour + d + 24) % 24];
  return n;
}

function learn(stats: ChannelStats | undefined, kind: FirstMessage['counted'], at: number): ChannelStats {
  const s = stats ?? { inbound: 0, replies: 0, hours: Array<number>(24).fill(0) };
  const h = hourOfDay(at);
  return {
    ...s,
    [kind]: s[kind] + 1,
    lastAt: Math.max(s.lastAt ?? at, at), // mail may arrive out of order
    hours: s.hours.map((n, i) => (i === h ? n + 1 : n)),
  };
}

/** A message counted as inbound turns out to have answered us: same use (hour, time), other kind. */
function recount(s: ChannelStats): ChannelStats {
  return { ...s, inbound: Math.max(0, s.inbound - 1), replies: s.replies + 1 };
}

/**
 * A customer message: the first in a conversation we opened answers our outreach (once per conversation);
 * any other message, or one without its conversation, is their own use.
 */
function wrote(ctx: CustomerContext, e: { channel: Channel; at: number; conversationId?: string }): Partial<CustomerContext> {
  const id = e.conversationId;
  const first = id !== undefined && !ctx.firstMessages.some((f) => f.conversationId === id);
  const answers = first && ctx.openConversations.some((c) => c.id === id && c.outreach);
  const counted: FirstMessage['counted'] = answers ? 'replies' : 'inbound';
  const out: Partial<CustomerContext> = { channelStats: { ...ctx.channelStats, [e.channel]: learn(ctx.channelStats[e.channel], counted, e.at) } };
  if (!first) return out;
  out.firstMessages = [...ctx.firstMessages, { conversationId: id, channel: e.channel, counted }].slice(-MAX_FIRST_MESSAGES);
  if (answers) out.openConversations = ctx.openConversations.map((c) => (c.id === id ? { id: c.id, channel: c.channel, openedAt: c.openedAt } : c));
  return out;
}

/** A conversation opened (or reopened); one of ours whose answer came first has that answer recounted. */
function opened(ctx: CustomerContext, e: { conversationId: string; channel: Channel; at: number; outreach?: boolean }): Partial<CustomerContext> {
  const out: Partial<CustomerContext> = {};
  const first = ctx.firstMessages.find((f) => f.conversationId === e.conversationId);
  if (e.outreach && first?.counted === 'inbound') {
    const stats = ctx.channelStats[first.channel];
    if (stats) out.channelStats = { ...ctx.channelStats, [first.channel]: recount(stats) };
    out.firstMessages = ctx.firstMessages.map((f) => (f === first ? { ...f, counted: 'replies' as const } : f));
  }
  if (!ctx.openConversations.some((c) => c.id === e.conversationId)) {
    const awaiting = e.outreach && !first ? { outreach: true as const } : {};
    out.openConversations = [...ctx.openConversations, { id: e.conversationId, channel: e.channel, openedAt: e.at, ...awaiting }];
  }
  return out;
}

/**
 * The channel to reach this customer on at `at`: among channels we can reach (a linked identity or past
 * use) that are not opted out, the one they used most within ±2h of that hour of day; failing that, the
 * most used overall; failing that, the first linked identity. Ties go to answers to outreach, then to the
 * most recent use, then to CHANNELS order, so the answer is deterministic.
 */
export function preferredChannel(ctx: CustomerContext, at?: number): Preference {
  const known = CHANNELS.filter((ch) => ctx.channelStats[ch] !== undefined || ctx.identities.some((i) => i.channel === ch));
  const excluded = known.filter((ch) => optedOut(ctx, ch));
  const candidates = known.filter((ch) => !optedOut(ctx, ch));
  const note = excluded.length ? `; opted out: ${excluded.join(', ')}` : '';
  if (!candidates.length) return { channel: null, reason: (known.length ? 'every known channel is opted out' : 'no known channel') + note };

  const empty: ChannelStats = { inbound: 0, replies: 0, hours: Array<number>(24).fill(0) };
  const best = (score: (s: ChannelStats) => number): { channel: Channel; score: number } => {
    const ranked = candidates
      .map((channel, order) => ({ channel, order, s: ctx.channelStats[channel] ?? empty }))
      .map((c) => ({ ...c, score: score(c.s) }))
      .sort((a, b) => b.score - a.score || b.s.replies - a.s.replies || (b.s.lastAt ?? -1) - (a.s.lastAt ?? -1) || a.order - b.order);
    return ranked[0];
  };

  let miss = '';
  if (at !== undefined) {
    const hour = hourOfDay(at);
    const near = best((s) => usesAround(s, hour));
    if (near.score > 0) return { channel: near.channel, reason: `most used around ${hh(hour)} (${near.score} within ±${WINDOW_HOURS}h)${note}` };
    miss = `no use around ${hh(hour)}; `;
  }
  const overall = best(uses);
  if (overall.score > 0) return { channel: overall.channel, reason: `${miss}most used overall (${overall.score})${note}` };
  return { channel: candidates[0], reason: `${miss}no use yet; first reachable linked identity${note}` };
}

/** May we contact them on `channel`? An explicit opt-out forbids it; no record means no objection. */
export function contactCheck(ctx: CustomerContext, channel: Channel): { allowed: boolean; reason: string } {
  if (ctx.mergedInto !== undefined) return { allowed: false, reason: `customer merged into ${ctx.mergedInto}` };
  const c = ctx.consent[channel];
  if (!c) return { allowed: true, reason: `no opt-out recorded on ${channel}` };
  const when = `at ${new Date(c.at).toISOString()} via ${c.source}`;
  return c.optedIn ? { allowed: true, reason: `opted in on ${channel} ${when}` } : { allowed: false, reason: `opted out on ${channel} ${when}` };
}

/** Events that only read: answered in every state, never refused. */
const QUERIES: ReadonlySet<CustomerEventType> = new Set(['get', 'preference.query', 'contact.check']);

const sameIdentity = (a: { channel: Channel; handle: string }, b: { channel: Channel; handle: string }) =>
  a.channel === b.channel && a.handle === b.handle;

// ---- Machine ----

export const customerMachine = setup({
  types: {} as { context: CustomerContext; events: CustomerEvent; input: { id: string }; emitted: Effect },
  actions: {
    refuseMerged: emit(({ context, event }) => reply({ ok: false, reason: `customer merged into ${context.mergedInto}; ${event.type} refused`, mergedInto: context.mergedInto })),
  },
}).createMachine({
  id: 'customer',
  context: ({ input }) => ({
    id: input.id,
    profile: {},
    tier: 'normal',
    tags: [],
    identities: [],
    openConversations: [],
    channelStats: {},
    firstMessages: [],
    consent: {},
  }),
  initial: 'active',
  on: {
    // Answered in every state, merged included: the agent view of a merged customer still resolves.
    get: { actions: emit(({ context, event }) => reply({ ...context, preferredChannel: preferredChannel(context, event.at) })) },
    'contact.check': { actions: emit(({ context, event }) => reply(contactCheck(context, event.channel))) },
  },
  states: {
    active: {
      on: {
        'profile.update': { actions: assign({ profile: ({ context, event }) => ({ ...context.profile, ...event.profile }) }) },
        'tier.set': {
          guard: ({ context, event }) => context.tier !== event.tier,
          actions: [
            assign({ tier: ({ event }) => event.tier }),
            enqueueActions(({ context, event, enqueue }) => {
              if (event.type === 'tier.set') for (const e of tierChanged(context, event.tier)) enqueue.emit(e);
            }),
          ],
        },
        // Guards make repeats no-ops (no new context), so redelivered or duplicate events are harmless.
        'tag.add': {
          guard: ({ context, event }) => !context.tags.includes(event.tag),
          actions: assign({ tags: ({ context, event }) => [...context.tags, event.tag] }),
        },
        'tag.remove': {
          guard: ({ context, event }) => context.tags.includes(event.tag),
          actions: assign({ tags: ({ context, event }) => context.tags.filter((t) => t !== event.tag) }),
        },
        'identity.link': {
          guard: ({ context, event }) => !context.identities.some((i) => sameIdentity(i, event)),
          actions: assign({ identities: ({ context, event }) => [...context.identities, { channel: event.channel, handle: event.handle }] }),
        },
        'identity.unlink': {
          guard: ({ context, event }) => context.identities.some((i) => sameIdentity(i, event)),
          actions: assign({ identities: ({ context, event }) => context.identities.filter((i) => !sameIdentity(i, event)) }),
        },
        'conversation.opened': {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const changes = opened(context, event);
            // A repeat changes nothing (no new context).
            if (Object.keys(changes).length) enqueue.assign(changes);
          }),
        },
        'conversation.closed': {
          guard: ({ context, event }) => context.openConversations.some((c) => c.id === event.conversationId),
          actions: assign({ openConversations: ({ context, event }) => context.openConversations.filter((c) => c.id !== event.conversationId) }),
        },
        'message.inbound': { actions: assign(({ context, event }) => wrote(context, event)) },
        'reply.received': {
          actions: assign({
            channelStats: ({ context, event }) => ({ ...context.channelStats, [event.channel]: learn(context.channelStats[event.channel], 'replies', event.at) }),
          }),
        },
        'consent.opt_in': {
          actions: assign({ consent: ({ context, event }) => ({ ...context.consent, [event.channel]: { optedIn: true, at: event.at, source: event.source } }) }),
        },
        'consent.opt_out': {
          actions: assign({ consent: ({ context, event }) => ({ ...context.consent, [event.channel]: { optedIn: false, at: event.at, source: event.source } }) }),
        },
        'preference.query': { actions: emit(({ context, event }) => reply(preferredChannel(context, event.at))) },
        'merge.absorb': {
          guard: ({ context, event }) => event.from !== context.id,
          actions: enqueueActions(({ context, event, enqueue }) => {
            if (event.type !== 'merge.absorb') return;
            const merged = absorb(context, event);
            enqueue.assign(merged);
            // Made a VIP by the merge: as with tier.set.
            if (merged.tier !== context.tier) for (const e of tierChanged(context, merged.tier)) enqueue.emit(e);
          }),
        },
        'merge.into': [
          { guard: ({ context, event }) => event.into === context.id, actions: emit(() => reply({ ok: false, reason: 'cannot merge a customer into itself' })) },
          {
            target: 'merged',
            actions: [
              assign({ mergedInto: ({ event }) => event.into, mergedAt: ({ event }) => event.at }),
              emit(({ context, event }) =>
                tell(`customer/${event.into}`, { type: 'merge.absorb', from: context.id, at: event.at, tier: context.tier, tags: context.tags, identities: context.identities, consent: context.consent, channelStats: context.channelStats }),
              ),
              emit(({ event }) => reply({ ok: true, mergedInto: event.into })),
            ],
          },
        ],
      },
    },
    // The survivor owns the customer now; this actor keeps its last state for audit and answers queries.
    merged: {
      on: {
        'preference.query': { actions: emit(({ context }) => reply({ channel: null, reason: `customer merged into ${context.mergedInto}` })) },
        // Merges are decided once: a second one of this record, or one into it, is refused.
        'merge.into': { actions: 'refuseMerged' },
        'merge.absorb': { actions: 'refuseMerged' },
        // Every other change goes on to the survivor (through the outbox, once): conversations opened before
        // the merge still name this customer, and their news must reach the one who owns them now. Queries
        // fail this guard and so reach the machine-level get and contact.check handlers.
        '*': {
          guard: ({ event }) => !QUERIES.has(event.type),
          actions: [
            emit(({ context, event }) => tell(`customer/${context.mergedInto}`, event)),
            emit(({ context, event }) => reply({ ok: true, forwardedTo: context.mergedInto, reason: `customer merged into ${context.mergedInto}; ${event.type} passed on` })),
          ],
        },
      },
    },
  },
});

/** Version 2 added `firstMessages`: a version-1 snapshot starts with none (its past messages stay counted as they were). */
export function migrateCustomerV1(persisted: unknown): unknown {
  if (typeof persisted !== 'object' || persisted === null || !('context' in persisted)) throw new Error('customer snapshot v1: no context');
  const { context } = persisted;
  if (typeof context !== 'object' || context === null) throw new Error('customer snapshot v1: context is not an object');
  return { ...persisted, context: { firstMessages: [], ...context } };
}

export const customerKind = defineKind({
  name: 'customer',
  machine: customerMachine,
  version: 2,
  migrations: { 1: migrateCustomerV1 },
  events: CustomerEventSchema,
  input: (id) => ({ id }),
});
