// An agent: presence with reasons and durations, skills, capacity per kind of work, and the single
// owner of its load — a reservation is held here or refused here, so no two queues can fill one slot.
import * as v from 'valibot';
import { assign, cancel, emit, enqueueActions, raise, setup } from 'xstate';
import { defineKind } from '../actors/kind.ts';
import { notify, reply, tell, type Effect } from './effects.ts';
import { ChannelSchema, DEFAULT_CAPACITY, TaskSchema, workClass, type Channel, type Task, type WorkClass, type Worker } from './routing.ts';

const at = v.number();
/** A conversation's wrap-up is closed for the agent after this by default (10 minutes). */
export const DEFAULT_CONVERSATION_WRAPUP_MS = 600_000;
/** The disposition of a conversation whose wrap-up time ran out. */
export const WRAPUP_RAN_OUT = 'wrap-up time ran out';
const Capacity = v.object({ voice: v.number(), chat: v.number(), email: v.number() });

export const AgentEventSchema = v.variant('type', [
  v.object({ type: v.literal('login'), at, queues: v.optional(v.array(v.string())) }),
  v.object({ type: v.literal('logout'), at }),
  v.object({ type: v.literal('presence.set'), at, presence: v.picklist(['available', 'away']), reason: v.optional(v.string()) }),
  v.object({
    type: v.literal('profile.set'),
    at,
    name: v.optional(v.string()),
    skills: v.optional(v.record(v.string(), v.pipe(v.number(), v.integer(), v.minValue(0)))),
    capacity: v.optional(Capacity),
    queues: v.optional(v.array(v.string())),
    offerTimeoutMs: v.optional(v.number()),
    maxWrapUpMs: v.optional(v.number()),
    maxConversationWrapUpMs: v.optional(v.pipe(v.number(), v.minValue(0, 'maxConversationWrapUpMs must not be negative'))),
    maxMisses: v.optional(v.number()),
  }),
  v.object({ type: v.literal('reserve'), at, reservationId: v.string(), task: TaskSchema, replyTo: v.string(), explanation: v.optional(v.unknown()) }),
  v.object({ type: v.literal('offer.accept'), at, reservationId: v.string() }),
  v.object({ type: v.literal('offer.reject'), at, reservationId: v.string(), reason: v.optional(v.string()) }),
  v.object({ type: v.literal('offer.timeout'), at: v.optional(v.number()), reservationId: v.string() }),
  v.object({ type: v.literal('task.channel'), at, conversation: v.string(), channel: ChannelSchema }),
  v.object({ type: v.literal('task.wrapup'), at, conversation: v.string() }),
  /** The agent's own timer: a conversation left in wrap-up for maxConversationWrapUpMs is closed. */
  v.object({ type: v.literal('task.wrapup.expired'), at: v.optional(v.number()), conversation: v.string() }),
  v.object({ type: v.literal('task.released'), at, conversation: v.string() }),
  v.object({ type: v.literal('wrapup.done'), at }),
  v.object({ type: v.literal('wrapup.timeout'), at: v.optional(v.number()) }),
  v.object({ type: v.literal('get'), at: v.optional(v.number()) }),
]);
export type AgentEvent = v.InferOutput<typeof AgentEventSchema>;

interface Offer {
  task: Task;
  replyTo: string;
  at: number;
}

export interface AgentContext {
  id: string;
  name: string;
  skills: Record<string, number>;
  capacity: Record<WorkClass, number>;
  load: Record<WorkClass, number>;
  queues: string[];
  /** Held reservations, by reservation id. */
  offers: Record<string, Offer>;
  /** Conversations this agent works on, with their channel and whether they are in wrap-up. */
  tasks: Record<string, { channel: Channel; wrapup: boolean }>;
  misses: number;
  maxMisses: number;
  offerTimeoutMs: number;
  /** Presence wrap-up after a call, before the agent is offered more. */
  maxWrapUpMs: number;
  /**
   * How long one conversation may stay in wrap-up (any channel) before the agent's timer closes it: a chat
   * left in wrap-up would otherwise hold its slot for ever. 0: no limit. Absent in snapshots from before it.
   */
  maxConversationWrapUpMs?: number;
  reason: string;
  since: number;
  idleSince: number;
  /** Milliseconds spent in each presence. */
  durations: Record<string, number>;
  /** The state the agent is in (set on entry): what a change of load announces, wherever it happens. */
  state: PresenceState;
}

type PresenceState = 'offline' | 'available' | 'away' | 'wrapup';
type Presence = PresenceState | 'busy';

const full = (c: AgentContext) => (Object.keys(c.capacity) as WorkClass[]).every((k) => c.load[k] >= c.capacity[k]);

export function presenceOf(value: unknown, c: AgentContext): Presence {
  const v = String(typeof value === 'object' && value ? Object.keys(value)[0] : value);
  if (v === 'available') return full(c) ? 'busy' : 'available';
  return v as Presence;
}

/** What queues need to know to route to this agent: a busy agent is available and full. */
export function workerView(c: AgentContext, presence: Presence): Worker {
  return { id: c.id, available: presence === 'available' || presence === 'busy', skills: c.skills, capacity: c.capacity, load: c.load, idleSince: c.idleSince, held: Object.keys(c.offers), presence };
}

const evAt = (e: { at?: number }, c: AgentContext) => e.at ?? c.since;

/** Closes the current presence interval into `durations`. */
const spent = (c: AgentContext, state: string, now: number) => ({ ...c.durations, [state]: (c.durations[state] ?? 0) + Math.max(0, now - c.since) });

/** Tells every queue of the agent what routing needs, and shows supervisors the agent's state. */
function broadcast(enqueue: { emit: (e: Effect) => void }, c: AgentContext) {
  const presence = presenceOf(c.state, c);
  const worker = workerView(c, presence);
  for (const q of c.queues) enqueue.emit(tell(`queue/${q}`, { type: 'worker.update', worker }));
  enqueue.emit(notify(`cc.live.agent.${c.id}`, { id: c.id, name: c.name, presence, reason: c.reason, load: c.load, capacity: c.capacity, since: c.since }));
}

/** The load with one slot of a kind of work given back. */
const freed = (load: Record<WorkClass, number>, cls: WorkClass) => ({ ...load, [cls]: Math.max(0, load[cls] - 1) });

const offerOf = (c: AgentContext, e: AgentEvent) => ('reservationId' in e ? c.offers[e.reservationId] : undefined);

export const agentMachine = setup({
  types: {} as { context: AgentContext; events: AgentEvent; input: { id: string } },
  delays: {
    offerTimeout: ({ context }) => context.offerTimeoutMs,
    wrapUp: ({ context }) => context.maxWrapUpMs,
  },
  guards: {
    canHold: ({ context, event }) => {
      if (event.type !== 'reserve') return false;
      const cls = workClass(event.task.channel);
      return context.load[cls] < context.capacity[cls] && !context.offers[event.reservationId] && !context.tasks[event.task.id];
    },
    knownOffer: ({ context, event }) => Boolean(offerOf(context, event)),
    lastMiss: ({ context, event }) => Boolean(offerOf(context, event)) && context.misses + 1 >= context.maxMisses,
    voiceEnded: ({ context, event }) => event.type === 'task.released' && context.tasks[event.conversation]?.channel === 'voice' && context.maxWrapUpMs > 0,
  },
  actions: {
    /** Holds a slot for the reservation and starts its durable countdown. */
    hold: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'reserve') return;
      const cls = workClass(event.task.channel);
      const c: AgentContext = { ...context, load: { ...context.load, [cls]: context.load[cls] + 1 }, offers: { ...context.offers, [event.reservationId]: { task: event.task, replyTo: event.replyTo, at: event.at } } };
      enqueue.assign(c);
      enqueue.raise({ type: 'offer.timeout', reservationId: event.reservationId }, { delay: context.offerTimeoutMs, id: `offer:${event.reservationId}` });
      enqueue.emit(tell(`conversation/${event.task.id}`, { type: 'offered', agent: context.id, reservationId: event.reservationId }));
      enqueue.emit(notify(`cc.agent.${context.id}.offers`, { reservationId: event.reservationId, task: event.task, expiresAt: event.at + context.offerTimeoutMs, explanation: event.explanation }));
      broadcast(enqueue, c);
    }),
    acceptOffer: enqueueActions(({ context, event, enqueue }) => {
      const o = offerOf(context, event);
      if (!o || event.type !== 'offer.accept') return;
      const { [event.reservationId]: _, ...offers } = context.offers;
      const c: AgentContext = { ...context, offers, misses: 0, tasks: { ...context.tasks, [o.task.id]: { channel: o.task.channel, wrapup: false } } };
      enqueue.assign(c);
      enqueue.cancel(`offer:${event.reservationId}`);
      enqueue.emit(tell(o.replyTo, { type: 'reservation.accepted', reservationId: event.reservationId, taskId: o.task.id, agent: context.id }));
      enqueue.emit(tell(`conversation/${o.task.id}`, { type: 'assigned', agent: context.id, reservationId: event.reservationId }));
    }),
    /** Rejected or timed out: the slot is freed and the task goes back to whoever offered it. */
    declineOffer: enqueueActions(({ context, event, enqueue }) => {
      const o = offerOf(context, event);
      if (!o || !('reservationId' in event)) return;
      const reason = event.type === 'offer.timeout' ? 'timeout' : event.type === 'offer.reject' ? (event.reason ?? 'rejected') : 'withdrawn';
      const cls = workClass(o.task.channel);
      const { [event.reservationId]: _, ...offers } = context.offers;
      const c: AgentContext = { ...context, offers, load: freed(context.load, cls) };
      enqueue.assign(c);
      enqueue.cancel(`offer:${event.reservationId}`);
      enqueue.emit(tell(o.replyTo, { type: 'reservation.rejected', reservationId: event.reservationId, taskId: o.task.id, agent: context.id, reason }));
      enqueue.emit(tell(`conversation/${o.task.id}`, { type: 'requeued', agent: context.id, reason }));
      broadcast(enqueue, c);
    }),
    /** A task ends: its slot is free. Announced, unless the transition enters a state that announces itself. */
    release: enqueueActions(({ context, event, enqueue }, params: { quiet: boolean } | undefined) => {
      if (event.type !== 'task.released') return;
      const t = context.tasks[event.conversation];
      if (!t) return;
      const cls = workClass(t.channel);
      const { [event.conversation]: _, ...tasks } = context.tasks;
      const c: AgentContext = { ...context, tasks, load: freed(context.load, cls), idleSince: Object.keys(tasks).length ? context.idleSince : event.at };
      enqueue.assign(c);
      if (t.wrapup) enqueue.cancel(`wrapup:${event.conversation}`);
      if (!params?.quiet) broadcast(enqueue, c);
    }),
    /** Chat escalated to voice by the same agent: the work moves from a chat slot to the voice slot. */
    switchChannel: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'task.channel') return;
      const t = context.tasks[event.conversation];
      if (!t) return;
      const from = workClass(t.channel);
      const to = workClass(event.channel);
      const load = freed(context.load, from);
      load[to] += 1;
      const c: AgentContext = { ...context, load, tasks: { ...context.tasks, [event.conversation]: { ...t, channel: event.channel } } };
      enqueue.assign(c);
      broadcast(enqueue, c);
    }),
    /** Entry of each state: the agent is now in it, and queues and supervisors hear so. */
    enter: enqueueActions(({ context, enqueue }, p: { state: PresenceState }) => {
      const c: AgentContext = { ...context, state: p.state };
      enqueue.assign({ state: p.state });
      broadcast(enqueue, c);
    }),
    signOff: enqueueActions(({ context, event, enqueue }) => {
      // Offers still held go back to their queues before the agent leaves.
      for (const [rid, o] of Object.entries(context.offers)) {
        enqueue.cancel(`offer:${rid}`);
        enqueue.emit(tell(o.replyTo, { type: 'reservation.rejected', reservationId: rid, taskId: o.task.id, agent: context.id, reason: 'agent logged out' }));
        enqueue.emit(tell(`conversation/${o.task.id}`, { type: 'requeued', agent: context.id, reason: 'agent logged out' }));
      }
      const load = Object.values(context.offers).reduce((l, o) => freed(l, workClass(o.task.channel)), context.load);
      enqueue.assign({ offers: {}, load, durations: spent(context, context.state, evAt(event, context)), since: evAt(event, context) });
    }),
  },
}).createMachine({
  id: 'agent',
  context: ({ input }) => ({
    id: input.id,
    name: input.id,
    skills: {},
    capacity: { ...DEFAULT_CAPACITY },
    load: { voice: 0, chat: 0, email: 0 },
    queues: [],
    offers: {},
    tasks: {},
    misses: 0,
    maxMisses: 3,
    offerTimeoutMs: 20_000,
    maxWrapUpMs: 30_000,
    maxConversationWrapUpMs: DEFAULT_CONVERSATION_WRAPUP_MS,
    reason: '',
    since: 0,
    idleSince: 0,
    durations: {},
    state: 'offline',
  }),
  initial: 'offline',
  on: {
    'profile.set': {
      actions: assign(({ context, event }) => ({
        name: event.name ?? context.name,
        skills: event.skills ?? context.skills,
        capacity: event.capacity ?? context.capacity,
        queues: event.queues ?? context.queues,
        offerTimeoutMs: event.offerTimeoutMs ?? context.offerTimeoutMs,
        maxWrapUpMs: event.maxWrapUpMs ?? context.maxWrapUpMs,
        maxConversationWrapUpMs: event.maxConversationWrapUpMs ?? context.maxConversationWrapUpMs,
        maxMisses: event.maxMisses ?? context.maxMisses,
      })),
    },
    // Anything but a free, ready agent refuses: the queue offers the task to someone else.
    reserve: {
      actions: emit(({ event }) => tell(event.replyTo, { type: 'reservation.refused', reservationId: event.reservationId, taskId: event.task.id, reason: 'agent not available' })),
    },
    'offer.accept': { guard: 'knownOffer', actions: 'acceptOffer' },
    'offer.reject': { guard: 'knownOffer', actions: 'declineOffer' },
    'offer.timeout': { guard: 'knownOffer', actions: 'declineOffer' },
    'task.released': { actions: 'release' },
    'task.wrapup': {
      actions: enqueueActions(({ context, event, enqueue }) => {
        const t = context.tasks[event.conversation];
        if (!t || t.wrapup) return;
        enqueue.assign({ tasks: { ...context.tasks, [event.conversation]: { ...t, wrapup: true } } });
        const limit = context.maxConversationWrapUpMs ?? DEFAULT_CONVERSATION_WRAPUP_MS;
        if (limit > 0) enqueue.raise({ type: 'task.wrapup.expired', conversation: event.conversation }, { delay: limit, id: `wrapup:${event.conversation}` });
      }),
    },
    'task.wrapup.expired': {
      guard: ({ context, event }) => context.tasks[event.conversation]?.wrapup === true,
      actions: emit(({ event }) => tell(`conversation/${event.conversation}`, { type: 'close', disposition: WRAPUP_RAN_OUT })),
    },
    'task.channel': { actions: 'switchChannel' },
  },
  states: {
    offline: {
      entry: { type: 'enter', params: { state: 'offline' } },
      on: {
        get: { actions: emit(({ context }) => reply({ ...context, presence: 'offline' })) },
        login: {
          target: 'available',
          actions: assign(({ context, event }) => ({ queues: event.queues ?? context.queues, durations: spent(context, 'offline', event.at), since: event.at, idleSince: event.at, reason: '', misses: 0 })),
        },
      },
    },
    available: {
      entry: { type: 'enter', params: { state: 'available' } },
      on: {
        get: { actions: emit(({ context }) => reply({ ...context, presence: presenceOf('available', context) })) },
        reserve: [
          { guard: 'canHold', actions: 'hold' },
          {
            actions: emit(({ event }) => tell(event.replyTo, { type: 'reservation.refused', reservationId: event.reservationId, taskId: event.task.id, reason: `no free ${workClass(event.task.channel)} slot` })),
          },
        ],
        'offer.timeout': [
          { guard: 'lastMiss', target: 'away', actions: ['declineOffer', assign(({ context, event }) => ({ reason: 'missed offers', misses: 0, durations: spent(context, 'available', evAt(event, context)), since: evAt(event, context) }))] },
          { guard: 'knownOffer', actions: ['declineOffer', assign({ misses: ({ context }) => context.misses + 1 })] },
        ],
        'presence.set': {
          guard: ({ event }) => event.presence === 'away',
          target: 'away',
          actions: assign(({ context, event }) => ({ durations: spent(context, 'available', event.at), since: event.at, reason: event.reason ?? '' })),
        },
        'task.released': [
          { guard: 'voiceEnded', target: 'wrapup', actions: [{ type: 'release', params: { quiet: true } }, assign(({ context, event }) => ({ durations: spent(context, 'available', event.at), since: event.at }))] },
          { actions: 'release' },
        ],
        logout: { target: 'offline', actions: 'signOff' },
      },
    },
    away: {
      entry: { type: 'enter', params: { state: 'away' } },
      on: {
        get: { actions: emit(({ context }) => reply({ ...context, presence: 'away' })) },
        'presence.set': {
          guard: ({ event }) => event.presence === 'available',
          target: 'available',
          actions: assign(({ context, event }) => ({ durations: spent(context, 'away', event.at), since: event.at, reason: '', misses: 0, idleSince: event.at })),
        },
        logout: { target: 'offline', actions: 'signOff' },
      },
    },
    wrapup: {
      entry: [{ type: 'enter', params: { state: 'wrapup' } }, raise({ type: 'wrapup.timeout' }, { delay: 'wrapUp', id: 'wrapup' })],
      exit: cancel('wrapup'),
      on: {
        get: { actions: emit(({ context }) => reply({ ...context, presence: 'wrapup' })) },
        'wrapup.done': { target: 'available', actions: assign(({ context, event }) => ({ durations: spent(context, 'wrapup', event.at), since: event.at, idleSince: event.at })) },
        'wrapup.timeout': { target: 'available', actions: assign(({ context, event }) => ({ durations: spent(context, 'wrapup', evAt(event, context)), since: evAt(event, context), idleSince: evAt(event, context) })) },
        logout: { target: 'offline', actions: 'signOff' },
      },
    },
  },
});

/** Version 1 had no `state` in its context: it is the state the snapshot is in (an agent's states are flat). */
export function migrateAgentV1(persisted: unknown): unknown {
  if (typeof persisted !== 'object' || persisted === null || !('context' in persisted) || !('value' in persisted)) throw new Error('agent snapshot v1: no context or value');
  const { context, value } = persisted;
  if (typeof context !== 'object' || context === null) throw new Error('agent snapshot v1: context is not an object');
  if (value !== 'offline' && value !== 'available' && value !== 'away' && value !== 'wrapup') throw new Error(`agent snapshot v1: unknown state ${JSON.stringify(value)}`);
  return { ...persisted, context: { ...context, state: value } };
}

export const agentKind = defineKind({ name: 'agent', machine: agentMachine, version: 2, migrations: { 1: migrateAgentV1 }, events: AgentEventSchema, input: (id) => ({ id }) });
