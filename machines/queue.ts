// A queue: waiting tasks in priority order, its agents as routing sees them, reservations in flight,
// escalation and overflow, position notices, and the live figures supervisors watch.
import * as v from 'valibot';
import { assign, emit, enqueueActions, setup } from 'xstate';
import { defineKind } from '../actors/kind.ts';
import { listPart, mapPart } from '../actors/parts.ts';
import { notify, reply, tell, type Effect } from './effects.ts';
import {
  QueueConfigSchema,
  ReservationAnswerSchemas,
  TaskSchema,
  WorkerSchema,
  bestWorker,
  currentStep,
  fits,
  evaluate,
  insertSorted,
  sortTasks,
  taskAttrs,
  workClass,
  type Explanation,
  type QueueConfig,
  type Task,
  type Worker,
  type WorkClass,
} from './routing.ts';

const at = v.number();
export const QueueEventSchema = v.variant('type', [
  v.object({ type: v.literal('configure'), at, config: QueueConfigSchema }),
  v.object({ type: v.literal('task.add'), at, task: TaskSchema, note: v.optional(v.string()) }),
  v.object({ type: v.literal('task.cancel'), at, taskId: v.string() }),
  v.object({ type: v.literal('worker.update'), at, worker: WorkerSchema }),
  ...ReservationAnswerSchemas,
  v.object({ type: v.literal('tick'), at: v.optional(v.number()) }),
  v.object({ type: v.literal('get'), at: v.optional(v.number()) }),
]);
export type QueueEvent = v.InferOutput<typeof QueueEventSchema>;

export interface QueueStats {
  added: number;
  assigned: number;
  withinSl: number;
  overflowed: number;
  cancelled: number;
  rejected: number;
  timeouts: number;
  refused: number;
  /** Sum of waits of assigned tasks by tier, for mean waits. */
  waitMs: Record<string, number>;
  count: Record<string, number>;
}

export interface QueueContext {
  id: string;
  config: QueueConfig;
  tasks: Task[];
  workers: Record<string, Worker>;
  /** Reservations sent and not yet answered: task id and agent, by reservation id. */
  pending: Record<string, { taskId: string; agent: string; cls: WorkClass }>;
  seq: number;
  stats: QueueStats;
  /** Assignments per second, smoothed: the basis of wait estimates. */
  rate: number;
  lastAssignAt: number;
  lastNoticeAt: number;
  last?: Explanation;
}

const defaults = (): QueueConfig => v.parse(QueueConfigSchema, {});

/** Reservations each agent has not counted yet, per kind of work: they still take a slot. */
function unseen(c: QueueContext): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const [rid, p] of Object.entries(c.pending)) {
    const w = c.workers[p.agent];
    if (w && w.held.includes(rid)) continue;
    const m = out.get(p.agent) ?? {};
    m[p.cls] = (m[p.cls] ?? 0) + 1;
    out.set(p.agent, m);
  }
  return out;
}

function effective(w: Worker, extra: Record<string, number> | undefined): Worker {
  if (!extra) return w;
  return { ...w, load: { voice: w.load.voice + (extra.voice ?? 0), chat: w.load.chat + (extra.chat ?? 0), email: w.load.email + (extra.email ?? 0) } };
}

export function estimateWaitSec(c: QueueContext, position: number): number {
  return c.rate > 0 ? Math.round(position / c.rate) : -1;
}

/** Offers as many waiting tasks as free agents allow, highest priority first. */
function dispatch(c: QueueContext, now: number): { context: QueueContext; effects: Effect[] } {
  const effects: Effect[] = [];
  const busy = new Set(Object.values(c.pending).map((p) => p.taskId));
  // Only agents with a free slot can take anything: with one agent freed among a thousand, this is one.
  const free = (w: Worker) => w.available && (w.load.voice < w.capacity.voice || w.load.chat < w.capacity.chat || w.load.email < w.capacity.email);
  const extra = unseen(c);
  let workers = Object.values(c.workers).filter((w) => w.available).map((w) => effective(w, extra.get(w.id))).filter(free);
  let pending = c.pending;
  let seq = c.seq;
  let last = c.last;
  for (const t of c.tasks) {
    if (!workers.length) break;
    if (busy.has(t.id)) continue;
    const cls = workClass(t.channel);
    const { step } = currentStep(t, now, c.config.steps);
    // Most tasks fit none of the few free agents: find that out without building an explanation.
    if (!workers.some((w) => fits(w, t, step))) continue;
    const { worker, explanation } = bestWorker(t, workers, now, c.config);
    if (!worker || !explanation) continue;
    const reservationId = `${c.id}-${++seq}`;
    pending = { ...pending, [reservationId]: { taskId: t.id, agent: worker.id, cls } };
    workers = workers.map((w) => (w.id === worker.id ? { ...w, load: { ...w.load, [cls]: w.load[cls] + 1 } } : w)).filter(free);
    last = explanation;
    effects.push(tell(`agent/${worker.id}`, { type: 'reserve', reservationId, task: t, replyTo: `queue/${c.id}`, explanation }));
  }
  return { context: { ...c, pending, seq, last }, effects };
}

/** Position and wait notices for waiting digital customers (voice callers hear them in the IVR). */
function notices(c: QueueContext, only?: string): Effect[] {
  const out: Effect[] = [];
  c.tasks.forEach((t, i) => {
    if (only && t.id !== only) return;
    out.push(tell(`conversation/${t.id}`, { type: 'queue.position', queue: c.id, position: i + 1, estimatedWaitSec: estimateWaitSec(c, i + 1) }));
  });
  return out;
}

export function liveView(c: QueueContext, now: number) {
  const longest = c.tasks.reduce((m, t) => Math.max(m, now - t.enqueuedAt), 0);
  const avg = (tier: string) => (c.stats.count[tier] ? Math.round(c.stats.waitMs[tier] / c.stats.count[tier]) : 0);
  return {
    queue: c.id,
    waiting: c.tasks.length,
    offering: Object.keys(c.pending).length,
    longestWaitSec: Math.round(longest / 1000),
    serviceLevelPct: c.stats.assigned ? Math.round((c.stats.withinSl / c.stats.assigned) * 1000) / 10 : 100,
    agentsAvailable: Object.values(c.workers).filter((w) => w.available).length,
    meanWaitMs: { normal: avg('normal'), vip: avg('vip') },
    stats: c.stats,
  };
}

const removeTask = (c: QueueContext, taskId: string) => c.tasks.filter((t) => t.id !== taskId);
const withoutPending = (c: QueueContext, rid: string) => {
  const { [rid]: _, ...rest } = c.pending;
  return rest;
};

export const queueMachine = setup({
  types: {} as { context: QueueContext; events: QueueEvent; input: { id: string } },
  delays: { tick: 5_000 },
  actions: {
    /** Re-routes and shows the new figures; the step every change ends with. */
    route: enqueueActions(({ context, event, enqueue }) => {
      const now = event.at ?? context.lastAssignAt;
      const { context: next, effects } = dispatch(context, now);
      enqueue.assign(next);
      for (const e of effects) enqueue.emit(e);
      enqueue.emit(notify(`cc.live.queue.${context.id}`, liveView(next, now)));
    }),
    /** Escalation, overflow and periodic notices, on the queue's durable tick. */
    onTick: enqueueActions(({ context, event, enqueue }) => {
      const now = event.at ?? context.lastAssignAt;
      const overflow = context.config.overflow;
      let c = context;
      if (overflow) {
        const busy = new Set(Object.values(c.pending).map((p) => p.taskId));
        const gone = c.tasks.filter((t) => !busy.has(t.id) && now - t.enqueuedAt >= overflow.afterSec * 1000);
        for (const t of gone) {
          // A new queue is a new chance: agents who declined here may be asked there.
          enqueue.emit(tell(`queue/${overflow.queue}`, { type: 'task.add', task: { ...t, excluded: [] }, note: `overflow from ${c.id}` }));
          enqueue.emit(tell(`conversation/${t.id}`, { type: 'queue.overflowed', from: c.id, to: overflow.queue }));
        }
        if (gone.length) c = { ...c, tasks: c.tasks.filter((t) => !gone.includes(t)), stats: { ...c.stats, overflowed: c.stats.overflowed + gone.length } };
      }
      if (now - c.lastNoticeAt >= c.config.reminderSec * 1000) {
        for (const e of notices(c)) enqueue.emit(e);
        c = { ...c, lastNoticeAt: now };
      }
      enqueue.assign(c);
    }),
  },
  guards: {
    hasTasks: ({ context }) => context.tasks.length > 0,
  },
}).createMachine({
  id: 'queue',
  context: ({ input }) => ({
    id: input.id,
    config: defaults(),
    tasks: [],
    workers: {},
    pending: {},
    seq: 0,
    stats: { added: 0, assigned: 0, withinSl: 0, overflowed: 0, cancelled: 0, rejected: 0, timeouts: 0, refused: 0, waitMs: {}, count: {} },
    rate: 0,
    lastAssignAt: 0,
    lastNoticeAt: 0,
  }),
  initial: 'idle',
  on: {
    configure: { actions: [assign({ config: ({ event }) => event.config }), 'route'] },
    get: { actions: emit(({ context, event }) => reply({ ...liveView(context, event.at ?? context.lastAssignAt), tasks: context.tasks.map((t) => t.id), last: context.last })) },
    'task.add': [
      {
        // A task the queue's target does not select is refused with the reason, never silently kept.
        guard: ({ context, event }) => Boolean(context.config.target) && !evaluate(context.config.target!, taskAttrs(event.task, event.at)),
        actions: emit(({ context, event }) => tell(`conversation/${event.task.id}`, { type: 'queue.refused', queue: context.id, reason: 'task does not match the queue target' })),
      },
      {
        target: '.waiting',
        actions: [
          assign(({ context, event }) => ({
            tasks: insertSorted(removeTask(context, event.task.id), event.task, context.config),
            stats: { ...context.stats, added: context.stats.added + 1 },
          })),
          enqueueActions(({ context, event, enqueue }) => {
            for (const e of notices(context, event.task.id)) enqueue.emit(e);
          }),
          'route',
        ],
      },
    ],
    'task.cancel': {
      actions: [
        assign(({ context, event }) => ({
          tasks: removeTask(context, event.taskId),
          stats: { ...context.stats, cancelled: context.stats.cancelled + (context.tasks.some((t) => t.id === event.taskId) ? 1 : 0) },
        })),
        'route',
      ],
    },
    'worker.update': { actions: [assign({ workers: ({ context, event }) => ({ ...context.workers, [event.worker.id]: event.worker }) }), 'route'] },
    'reservation.accepted': {
      actions: [
        assign(({ context, event }) => {
          const t = context.tasks.find((x) => x.id === event.taskId);
          if (!t) return { pending: withoutPending(context, event.reservationId) };
          const wait = event.at - t.enqueuedAt;
          const dt = Math.max(0.001, (event.at - (context.lastAssignAt || t.enqueuedAt)) / 1000);
          const s = context.stats;
          return {
            pending: withoutPending(context, event.reservationId),
            tasks: removeTask(context, t.id),
            rate: context.rate === 0 ? 1 / dt : 0.8 * context.rate + 0.2 * (1 / dt),
            lastAssignAt: event.at,
            stats: {
              ...s,
              assigned: s.assigned + 1,
              withinSl: s.withinSl + (wait <= context.config.serviceLevelSec * 1000 ? 1 : 0),
              waitMs: { ...s.waitMs, [t.tier]: (s.waitMs[t.tier] ?? 0) + wait },
              count: { ...s.count, [t.tier]: (s.count[t.tier] ?? 0) + 1 },
            },
          };
        }),
        'route',
      ],
    },
    'reservation.rejected': {
      actions: [
        assign(({ context, event }) => ({
          pending: withoutPending(context, event.reservationId),
          // The agent who declined is not offered the same task again.
          tasks: context.tasks.map((t) => (t.id === event.taskId ? { ...t, excluded: [...t.excluded, event.agent] } : t)),
          stats: { ...context.stats, rejected: context.stats.rejected + (event.reason === 'timeout' ? 0 : 1), timeouts: context.stats.timeouts + (event.reason === 'timeout' ? 1 : 0) },
        })),
        'route',
      ],
    },
    'reservation.refused': {
      actions: [
        assign(({ context, event }) => {
          const p = context.pending[event.reservationId];
          const w = p && context.workers[p.agent];
          // The agent's own view wins: it was not free, so route elsewhere until it says otherwise.
          return {
            pending: withoutPending(context, event.reservationId),
            workers: w ? { ...context.workers, [w.id]: { ...w, available: false } } : context.workers,
            stats: { ...context.stats, refused: context.stats.refused + 1 },
          };
        }),
        'route',
      ],
    },
  },
  states: {
    idle: {},
    waiting: {
      always: { guard: ({ context }) => context.tasks.length === 0, target: 'idle' },
      after: { tick: { target: 'waiting', reenter: true, actions: ['onTick', 'route'] } },
    },
  },
});

export const queueKind = defineKind({
  name: 'queue',
  machine: queueMachine,
  version: 1,
  events: QueueEventSchema,
  input: (id) => ({ id }),
  // Thousands of waiting tasks and agents: each step stores only the ones that changed.
  collections: {
    tasks: listPart((t: Task) => t.id, (tasks: Task[], c: QueueContext) => sortTasks(tasks, c.config)),
    workers: mapPart(),
    pending: mapPart(),
  },
});

