// A queue: waiting tasks in priority order, its agents as routing sees them, reservations in flight,
// escalation and overflow, position notices, and the live figures supervisors watch.
import * as v from 'valibot';
import { assign, emit, enqueueActions, setup } from 'xstate';
import { defineKind } from '../actors/kind.ts';
import { SharedMap, listPart, noteChanges, sharedMapPart } from '../actors/parts.ts';
import { SharedList } from '../actors/shared-list.ts';
import { groupKey, taskIndex } from './task-index.ts';
import { notify, reply, tell, type Effect } from './effects.ts';
import {
  ChannelSchema,
  QueueConfigSchema,
  ReservationAnswerSchemas,
  TaskSchema,
  WorkerSchema,
  bestWorker,
  currentStep,
  fits,
  refusal,
  reasonKey,
  REOFFER_SEC,
  RANKED_LOWER,
  evaluate,
  sortedIndex,
  orderKey,
  sortTasks,
  taskAttrs,
  workClass,
  type Explanation,
  type QueueConfig,
  type Step,
  type Task,
  type Worker,
  type WorkClass,
} from './routing.ts';

const at = v.number();
export const QueueEventSchema = v.variant('type', [
  v.object({ type: v.literal('configure'), at, config: QueueConfigSchema }),
  v.object({ type: v.literal('task.add'), at, task: TaskSchema, note: v.optional(v.string()) }),
  v.object({ type: v.literal('task.cancel'), at, taskId: v.string() }),
  /** The customer's tier changed while their task waits (a supervisor made them VIP): it moves to its new place. */
  v.object({ type: v.literal('task.tier'), at, taskId: v.string(), tier: v.picklist(['normal', 'vip']) }),
  v.object({ type: v.literal('worker.update'), at, worker: WorkerSchema }),
  ...ReservationAnswerSchemas,
  v.object({ type: v.literal('tick'), at: v.optional(v.number()) }),
  v.object({ type: v.literal('get'), at: v.optional(v.number()) }),
  /** Asked before a caller is queued: can anyone here take this kind of work now or soon? (channel failover) */
  v.object({ type: v.literal('staffing'), at: v.optional(v.number()), channel: v.optional(ChannelSchema, 'voice') }),
]);
export type QueueEvent = v.InferOutput<typeof QueueEventSchema>;

export interface QueueStats {
  added: number;
  assigned: number;
  withinSl: number;
  overflowed: number;
  cancelled: number;
  /** Customers who left after waiting longer than the service level: missed, as much as a late answer (absent before it was counted). */
  abandonedLate?: number;
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
  /** In priority order; every new list is noted with what changed (see changedTasks). */
  tasks: SharedList<Task>;
  workers: SharedMap<Worker>;
  /** Reservations sent and not yet answered: task id and agent, by reservation id. */
  pending: SharedMap<Reservation>;
  seq: number;
  stats: QueueStats;
  /** Assignments per second (the inverse of the smoothed interval between them): the basis of wait estimates. */
  rate: number;
  lastAssignAt: number;
  /** The last tick left notices or overflows for the next (one step sends a bounded number): it comes soon. */
  catchingUp: boolean;
  /** No waiting customer was last told before this: until a notice can be due, the tick does not look at every task. */
  toldSince?: number;
  /** While catching up: where in the list the next tick goes on, so that a round reaches the back of the queue. */
  noticeFrom?: number;
  lastLiveAt: number;
  last?: Explanation;
  /**
   * The earliest time a declined task may be offered again to the agents who declined it; null when no
   * task is waiting out a decline. A snapshot from before this field has it undefined: the next tick looks.
   */
  reofferAt?: number | null;
}

const LIVE_EVERY_MS = 250;
/**
 * Notices and overflows one tick sends at most, front of the queue first; the rest follow on ticks
 * CATCH_UP_MS apart. A step's effects are stored in its record before they are sent: thousands at once
 * would not fit in one NATS message, and the actor's next turn (an agent freed, to be offered a task)
 * waits until they are acknowledged: 64 rather than 256 shortens that wait (README, routing bench), and
 * 10,000 waiting customers are still told in about 10 s.
 */
export const NOTICES_PER_STEP = 64;
export const OVERFLOWS_PER_STEP = 128;
const CATCH_UP_MS = 50;

const defaults = (): QueueConfig => v.parse(QueueConfigSchema, {});

export interface Reservation {
  taskId: string;
  agent: string;
  cls: WorkClass;
}

/** The agents; a plain record only in a snapshot stored before they were a SharedMap. */
const roster = (c: QueueContext): SharedMap<Worker> => (c.workers instanceof SharedMap ? c.workers : SharedMap.from(c.workers as unknown as Record<string, Worker>));

/**
 * The agents marked available, per version of the roster: a task that arrives looks at these, not at
 * every agent (a busy floor of a thousand agents gets thousands of tasks between two roster changes).
 */
const availableOf = new WeakMap<SharedMap<Worker>, Worker[]>();
function availableWorkers(workers: SharedMap<Worker>): Worker[] {
  let list = availableOf.get(workers);
  if (!list) {
    list = [];
    for (const w of workers.values()) if (w.available) list.push(w);
    availableOf.set(workers, list);
  }
  return list;
}

/** The reservations; a plain record only in a snapshot stored before they were a SharedMap. */
const reservations = (c: QueueContext): SharedMap<Reservation> => (c.pending instanceof SharedMap ? c.pending : SharedMap.from(c.pending as unknown as Record<string, Reservation>));

/**
 * Derived from the reservations: the tasks on offer and each agent's reservations. Agents answer offers
 * while thousands wait, so this is not rebuilt per step: it moves to each new version of the reservations
 * and is updated in place (a version asked for again later is rebuilt from scratch).
 */
interface OfferIndex {
  busy: Set<string>;
  byAgent: Map<string, Map<string, WorkClass>>;
}
const offerIndexes = new WeakMap<SharedMap<Reservation>, OfferIndex>();

function offerIndex(p: SharedMap<Reservation>): OfferIndex {
  let x = offerIndexes.get(p);
  if (!x) {
    x = { busy: new Set(), byAgent: new Map() };
    for (const [rid, r] of p) indexReservation(x, rid, r);
    offerIndexes.set(p, x);
  }
  return x;
}

function indexReservation(x: OfferIndex, rid: string, r: Reservation): void {
  x.busy.add(r.taskId);
  const mine = x.byAgent.get(r.agent) ?? new Map<string, WorkClass>();
  x.byAgent.set(r.agent, mine.set(rid, r.cls));
}

function withReservation(p: SharedMap<Reservation>, rid: string, r: Reservation): SharedMap<Reservation> {
  const next = p.set(rid, r);
  const x = offerIndexes.get(p);
  if (x) {
    offerIndexes.delete(p);
    indexReservation(x, rid, r);
    offerIndexes.set(next, x);
  }
  return next;
}

function withoutReservation(p: SharedMap<Reservation>, rid: string): SharedMap<Reservation> {
  const r = p.get(rid);
  if (!r) return p;
  const next = p.delete(rid);
  const x = offerIndexes.get(p);
  if (x) {
    offerIndexes.delete(p);
    // A task is on offer to one agent at a time, so its id leaves the busy set with its reservation.
    x.busy.delete(r.taskId);
    x.byAgent.get(r.agent)?.delete(rid);
    offerIndexes.set(next, x);
  }
  return next;
}

/** Reservations the agent has not counted yet, per kind of work: they still take a slot. */
function unseen(x: OfferIndex, w: Worker): Record<string, number> | undefined {
  let out: Record<string, number> | undefined;
  for (const [rid, cls] of x.byAgent.get(w.id) ?? []) {
    if (w.held.includes(rid)) continue;
    out ??= {};
    out[cls] = (out[cls] ?? 0) + 1;
  }
  return out;
}

function effective(w: Worker, extra: Record<string, number> | undefined): Worker {
  if (!extra) return w;
  return { ...w, load: { voice: w.load.voice + (extra.voice ?? 0), chat: w.load.chat + (extra.chat ?? 0), email: w.load.email + (extra.email ?? 0) } };
}

/**
 * Seconds of waiting per place in the queue: the smoothed interval between assignments. When customers
 * have waited with nobody assigned for longer than that interval, that time is the interval: a queue whose
 * agents stopped taking work does not keep promising the old pace. -1: no pace known yet. Found once per
 * step, however many customers it tells.
 */
export function waitPerPlaceSec(c: QueueContext, now: number): number {
  if (c.rate <= 0) return -1;
  // Waiting since the later of the last assignment and the arrival of the customer waiting longest: a queue
  // that stood empty overnight has not been slow.
  const since = Math.max(c.lastAssignAt, now - longestWaitMs(c, now));
  return Math.max(1 / c.rate, c.lastAssignAt > 0 ? (now - since) / 1000 : 0);
}

/** What changed, so that routing looks only where a new match can be: after each dispatch no waiting task fits a free agent. */
export type Focus = 'all' | 'none' | { task: string } | { worker: string };

/** Offers as many waiting tasks as free agents allow, highest priority first. */
export function dispatch(c: QueueContext, now: number, focus: Focus): { context: QueueContext; effects: Effect[] } {
  const effects: Effect[] = [];
  if (focus === 'none') return { context: c, effects };
  const offers = offerIndex(reservations(c));
  // Tasks on offer; each offer below adds to it (withReservation).
  const busy = offers.busy;
  const workers = roster(c);
  const one = typeof focus === 'object' && 'worker' in focus ? workers.get(focus.worker) : undefined;
  const pool = typeof focus === 'object' && 'worker' in focus ? (one ? [one] : []) : availableWorkers(workers);
  // Only agents with a free slot can take anything: with one agent freed among a thousand, this is one.
  const current = new Map<string, Worker>();
  for (const w of pool) {
    if (!w.available) continue;
    const e = effective(w, unseen(offers, w));
    if (hasRoom(e)) current.set(e.id, e);
  }
  if (!current.size) return { context: c, effects };
  const index = taskIndex(c.id, c.tasks);
  let { seq, last } = c;
  let pending = reservations(c);
  // Offered tasks are marked in the list at the end (the task index then keeps them out of its groups).
  const marked: [Task, Task][] = [];
  /** The queue after this dispatch's offers, offered tasks marked in the list. */
  const done = () => ({ context: { ...c, tasks: markOffers(c, marked), pending, seq, last }, effects });
  const offer = (t: Task, worker: Worker, why: Explanation) => {
    const cls = workClass(t.channel);
    const reservationId = `${c.id}-${++seq}`;
    pending = withReservation(pending, reservationId, { taskId: t.id, agent: worker.id, cls });
    marked.push([t, waitingTask(t, { offer: reservationId })]);
    const taken = { ...worker, load: { ...worker.load, [cls]: worker.load[cls] + 1 } };
    if (hasRoom(taken)) current.set(taken.id, taken);
    else current.delete(taken.id);
    last = why;
    effects.push(tell(`agent/${worker.id}`, { type: 'reserve', reservationId, task: t, replyTo: `queue/${c.id}`, explanation: why }));
  };

  if (typeof focus === 'object' && 'worker' in focus) {
    // One agent freed: the best task for it is the best of the groups' first waiting tasks that fit.
    for (let w = current.get(focus.worker); w; w = current.get(focus.worker)) {
      let best: Task | undefined;
      let bestKey = -Infinity;
      for (const group of index.groups.values()) {
        for (const t of group) {
          if (busy.has(t.id)) continue;
          // Later tasks of the group waited less, so their rule is no wider: if this one does not fit, none does.
          if (fits(w, t, currentStep(t, now, c.config.steps).step)) {
            const k = orderKey(t, c.config);
            if (k > bestKey || (k === bestKey && best && t.enqueuedAt < best.enqueuedAt)) {
              best = t;
              bestKey = k;
            }
          }
          break;
        }
      }
      if (!best) break;
      const { explanation } = bestWorker(best, [w], now, c.config);
      offer(best, w, passedOver(c, offers, best, w.id, currentStep(best, now, c.config.steps).step, explanation!));
    }
    return done();
  }

  // Free agents that fit, by escalation step and then by the needs of tasks alike: found once per dispatch.
  const matching = c.config.steps.map(() => new Map<string, Worker[]>());
  /** Offers `t` to the best free agent that fits it; false when none does. */
  const place = (t: Task): boolean => {
    const { index: stepIndex, step } = currentStep(t, now, c.config.steps);
    const key = groupKey(t);
    const byKey = matching[stepIndex] ?? (matching[stepIndex] = new Map());
    let found = byKey.get(key);
    if (!found) {
      found = [];
      for (const w of current.values()) if (fits(w, t, step)) found.push(w);
    } else {
      // Agents found for an earlier task alike, as they are now (some took work since).
      found = found.flatMap((w) => {
        const now = current.get(w.id);
        return now && fits(now, t, step) ? [now] : [];
      });
    }
    byKey.set(key, found);
    if (!found.length) return false;
    const { explanation } = bestWorker(t, found, now, c.config);
    if (!explanation) return false;
    // The free agents that did not fit are summed up, the first few with their reason.
    const others = [...explanation.others];
    let unmatched = 0;
    for (const w of current.values()) {
      if (found.includes(w)) continue;
      unmatched++;
      if (others.length < 5) others.push({ agent: w.id, reason: refusal(w, t, step) ?? 'no match' });
    }
    const why = unmatched ? { ...explanation, others, passed: { ...explanation.passed, 'no match under this rule': unmatched } } : explanation;
    offer(t, current.get(explanation.agent)!, why);
    return true;
  };

  if (typeof focus === 'object' && 'task' in focus) {
    const t = index.byId.get(focus.task);
    if (t && !busy.has(t.id)) place(t);
    return done();
  }

  // Every waiting task in priority order, read off the groups' heads: within a group the first waiting
  // task ranks highest (same boost, waited longest), and when no free agent fits it none fits the tasks
  // behind it (they waited less, so their rule is no wider), so the group is done. Ten thousand waiting
  // tasks in a hundred groups cost a hundred looks per offer, not ten thousand.
  const heads = new Map<string, { group: Task[]; at: number }>();
  for (const [key, group] of index.groups) heads.set(key, { group, at: 0 });
  while (current.size && heads.size) {
    let best: Task | undefined;
    let bestKey = -Infinity;
    let bestGroup = '';
    for (const [key, h] of heads) {
      while (h.at < h.group.length && busy.has(h.group[h.at].id)) h.at++;
      const t = h.group[h.at];
      if (!t) {
        heads.delete(key);
        continue;
      }
      const k = orderKey(t, c.config);
      if (k > bestKey || (k === bestKey && best && t.enqueuedAt < best.enqueuedAt)) {
        best = t;
        bestKey = k;
        bestGroup = key;
      }
    }
    if (!best) break;
    if (place(best)) heads.get(bestGroup)!.at++;
    else heads.delete(bestGroup);
  }
  return done();
}

/**
 * Tasks whose decliners' wait is over are open to every agent again (the tick's route then offers them).
 * Looks at the list only when the earliest such time has come.
 */
function reofferDeclined(c: QueueContext, now: number): QueueContext {
  if (c.reofferAt === null || (c.reofferAt !== undefined && now < c.reofferAt)) return c;
  const opened: [number, Task][] = [];
  let next: number | null = null;
  c.tasks.someFrom(0, (t, i) => {
    if (!t.excluded.length) return false;
    if ((t.excludedUntil ?? 0) <= now) opened.push([i, waitingTask(t, { excluded: [], excludedUntil: undefined })]);
    else next = next === null ? t.excludedUntil! : Math.min(next, t.excludedUntil!);
    return false;
  });
  const tasks = opened.length ? changedTasks(c, c.tasks.withAll(opened), opened.map(([, t]) => [t.id, t])) : c.tasks;
  return { ...c, tasks, reofferAt: next };
}

/**
 * The roster counted for explanations: agents not available, and agents full per kind of work; those with
 * room named. Like the offer index it moves to each new version of the roster and is updated in place.
 */
interface RosterSummary {
  unavailable: number;
  full: Record<WorkClass, number>;
  room: Record<WorkClass, Set<string>>;
}
const WORK_CLASSES: WorkClass[] = ['voice', 'chat', 'email'];
const summaries = new WeakMap<SharedMap<Worker>, RosterSummary>();

function rosterSummary(r: SharedMap<Worker>): RosterSummary {
  let x = summaries.get(r);
  if (!x) {
    x = { unavailable: 0, full: { voice: 0, chat: 0, email: 0 }, room: { voice: new Set(), chat: new Set(), email: new Set() } };
    for (const w of r.values()) countWorker(x, w, 1);
    summaries.set(r, x);
  }
  return x;
}

function countWorker(x: RosterSummary, w: Worker, sign: 1 | -1): void {
  if (!w.available) {
    x.unavailable += sign;
    return;
  }
  for (const cls of WORK_CLASSES) {
    if (w.load[cls] >= w.capacity[cls]) x.full[cls] += sign;
    else if (sign > 0) x.room[cls].add(w.id);
    else x.room[cls].delete(w.id);
  }
}

function withWorker(r: SharedMap<Worker>, w: Worker): SharedMap<Worker> {
  const next = r.set(w.id, w);
  const x = summaries.get(r);
  if (x) {
    summaries.delete(r);
    const old = r.get(w.id);
    if (old) countWorker(x, old, -1);
    countWorker(x, w, 1);
    summaries.set(next, x);
  }
  return next;
}

const ROOM_LOOKS = 32;
/**
 * The other agents of the queue and why they were not offered `t`, for an agent freed and offered it:
 * after every dispatch no free agent fits a waiting task, so each of them has a reason. Unavailable and
 * full agents are counted from the roster summary (a busy floor has a thousand); those with room are
 * looked at one by one, up to ROOM_LOOKS of them.
 */
function passedOver(c: QueueContext, offers: OfferIndex, t: Task, chosen: string, step: Step, why: Explanation): Explanation {
  const cls = workClass(t.channel);
  const workers = roster(c);
  const x = rosterSummary(workers);
  const others = [...why.others];
  const passed: Record<string, number> = { ...why.passed };
  const add = (key: string, n: number) => n > 0 && (passed[key] = (passed[key] ?? 0) + n);
  add('not available', x.unavailable);
  add(`no free ${cls} slot`, x.full[cls]);
  let looked = 0;
  for (const id of x.room[cls]) {
    if (id === chosen) continue;
    if (looked === ROOM_LOOKS) {
      // A burst with hundreds of agents free on paper (their offers not yet counted by them): summed up.
      add(`had a free ${cls} slot: offered other work or not matching`, x.room[cls].size - looked - (x.room[cls].has(chosen) ? 1 : 0));
      break;
    }
    looked++;
    const w = workers.get(id)!;
    const reason = refusal(effective(w, unseen(offers, w)), t, step) ?? RANKED_LOWER;
    add(reasonKey(reason), 1);
    if (others.length < 5) others.push({ agent: id, reason });
  }
  // A few of the counted ones by name too.
  for (const w of workers.values()) {
    if (others.length >= 5) break;
    if (w.id === chosen || x.room[cls].has(w.id)) continue;
    others.push({ agent: w.id, reason: refusal(w, t, step) ?? RANKED_LOWER });
  }
  return { ...why, others, passed };
}

const hasRoom = (w: Worker) => w.available && (w.load.voice < w.capacity.voice || w.load.chat < w.capacity.chat || w.load.email < w.capacity.email);

/** The place `i + 1` and its estimated wait, `perPlace` seconds a place (-1: not known). */
const positionNotice = (c: QueueContext, t: Task, i: number, perPlace: number) =>
  tell(`conversation/${t.id}`, { type: 'queue.position', queue: c.id, position: i + 1, estimatedWaitSec: perPlace < 0 ? -1 : Math.round((i + 1) * perPlace) });

/**
 * Position and wait notices (voice callers hear them as prompts), front of the queue first, at most
 * NOTICES_PER_STEP: to each waiting customer every reminderSec since they were last told, and in
 * between when their place moved up a lot (a third, and at least 3 places). Tasks remember what they
 * were told and when.
 */
function notices(c: QueueContext, now: number): { effects: Effect[]; tasks: SharedList<Task>; owed: boolean; toldSince: number; from: number } {
  const effects: Effect[] = [];
  const told: [number, Task][] = [];
  const remindBefore = now - c.config.reminderSec * 1000;
  const movedBefore = now - (c.config.movedGapSec ?? 30) * 1000;
  const since = c.toldSince ?? 0;
  // Everyone was told too recently for either kind of notice: nothing to look for.
  if (since > Math.max(remindBefore, movedBefore)) return { effects, tasks: c.tasks, owed: false, toldSince: since, from: 0 };
  // A round goes on from where the last step stopped; starting over at the front each time, customers at
  // the back would wait for ever if the front fell due again first. (Those that moved up past the point
  // meanwhile are told in the next round.)
  const from = c.catchingUp ? Math.min(c.noticeFrom ?? 0, c.tasks.length) : 0;
  let oldest = from ? since : now;
  const result = (owed: boolean, toldSince: number, from: number) => ({ effects, tasks: told.length ? changedTasks(c, c.tasks.withAll(told), told.map(([, t]) => [t.id, t])) : c.tasks, owed, toldSince, from });
  let stoppedAt = -1;
  let perPlace: number | undefined;
  c.tasks.someFrom(from, (t, i) => {
    const before = t.told;
    const toldAt = t.toldAt ?? 0;
    const moved = before !== undefined && toldAt <= movedBefore && before - (i + 1) >= Math.max(3, Math.ceil(before / 3));
    if (!moved && toldAt > remindBefore) {
      if (toldAt < oldest) oldest = toldAt;
      return false;
    }
    if (effects.length === NOTICES_PER_STEP) {
      stoppedAt = i;
      return true;
    }
    perPlace ??= waitPerPlaceSec(c, now);
    effects.push(positionNotice(c, t, i, perPlace));
    told.push([i, waitingTask(t, { told: i + 1, toldAt: now })]);
    return false;
  });
  // Not every task was looked at: the bound stays where it was.
  if (stoppedAt >= 0) return result(true, since, stoppedAt);
  return result(false, oldest, 0);
}

/**
 * Agents of this queue on duty for a kind of work: with capacity for it, and available (a busy agent is
 * available and full) or in wrap-up (back in moments). Away and offline agents are not taking calls.
 */
export function staffing(c: QueueContext, cls: WorkClass) {
  const able = [...roster(c).values()].filter((w) => w.capacity[cls] > 0 && (w.available || w.presence === 'wrapup'));
  return { queue: c.id, work: cls, onDuty: able.length, free: able.filter((w) => w.available && w.load[cls] < w.capacity[cls]).length };
}

/**
 * The wait of the customer waiting longest: the oldest of the index's group heads and of the tasks on
 * offer (still waiting, and outside the groups), not a walk over every task.
 */
function longestWaitMs(c: QueueContext, now: number): number {
  let oldest = now;
  const index = taskIndex(c.id, c.tasks);
  for (const g of index.groups.values()) oldest = Math.min(oldest, g[0].enqueuedAt);
  for (const r of reservations(c).values()) oldest = Math.min(oldest, index.byId.get(r.taskId)?.enqueuedAt ?? now);
  return now - oldest;
}

/** Answered within the service level, of those answered and those who gave up waiting after it. */
export function serviceLevelPct(s: QueueStats): number {
  const counted = s.assigned + (s.abandonedLate ?? 0);
  return counted ? Math.round((s.withinSl / counted) * 1000) / 10 : 100;
}

export function liveView(c: QueueContext, now: number) {
  const longest = longestWaitMs(c, now);
  const avg = (tier: string) => (c.stats.count[tier] ? Math.round(c.stats.waitMs[tier] / c.stats.count[tier]) : 0);
  return {
    queue: c.id,
    waiting: c.tasks.length,
    offering: reservations(c).size,
    longestWaitSec: Math.round(longest / 1000),
    serviceLevelPct: serviceLevelPct(c.stats),
    agentsAvailable: [...roster(c).values()].filter((w) => w.available).length,
    meanWaitMs: { normal: avg('normal'), vip: avg('vip') },
    stats: c.stats,
  };
}

const findTask = (c: QueueContext, taskId: string) => taskIndex(c.id, c.tasks).byId.get(taskId);

/**
 * A new list of waiting tasks, noted with what changed from the context's list: the task index and the
 * stored part follow the note instead of comparing ten thousand tasks on every step.
 */
const changedTasks = (c: QueueContext, tasks: SharedList<Task>, changes: [string, Task | null][]): SharedList<Task> => noteChanges(c.tasks, tasks, changes);

/** Where a waiting task is: found by its priority (the list is kept in that order), else by a scan. */
function indexOfTask(c: QueueContext, t: Task): number {
  const after = sortedIndex(c.tasks, t, c.config);
  for (let i = after - 1; i >= 0 && i >= after - 8; i--) if (c.tasks.at(i) === t) return i;
  return c.tasks.indexOf(t);
}

/** The list without one task, or with it replaced; the same list when it is not there. */
function replaceTask(c: QueueContext, taskId: string, by?: Task): SharedList<Task> {
  const t = findTask(c, taskId);
  if (!t) return c.tasks;
  const i = indexOfTask(c, t);
  return changedTasks(c, by ? c.tasks.with(i, by) : c.tasks.remove(i), [[taskId, by ?? null]]);
}
const removeTask = (c: QueueContext, taskId: string) => replaceTask(c, taskId);

/** The list with each offered task replaced by its marked copy, in place (offers do not move a task). */
function markOffers(c: QueueContext, marked: [Task, Task][]): SharedList<Task> {
  if (!marked.length) return c.tasks;
  const list = c.tasks.withAll(marked.map(([t, m]) => [indexOfTask(c, t), m]));
  return changedTasks(c, list, marked.map(([t, m]) => [t.id, m]));
}

type Patch = Partial<Pick<Task, 'told' | 'toldAt' | 'offer' | 'excluded' | 'excludedUntil' | 'tier'>>;
/**
 * A waiting task, always made by this one object literal: tasks spread from one another (and from mail)
 * ended up with a hidden class each in V8, so every read of a task field in routing and in the notice walk
 * was a megamorphic lookup (walking 7,400 tasks took 6–8 ms, 0.2–0.6 ms once they share one).
 */
function waitingTask(t: Task, patch: Patch = {}): Task {
  // Every field named (the type makes a new one in TaskSchema an error here until it is added).
  const task: { [K in keyof Required<Task>]: Task[K] } = {
    id: t.id,
    channel: t.channel,
    customer: t.customer,
    skills: t.skills,
    language: t.language,
    tier: patch.tier ?? t.tier,
    urgent: t.urgent,
    enqueuedAt: t.enqueuedAt,
    attrs: t.attrs,
    excluded: patch.excluded ?? t.excluded,
    excludedUntil: 'excludedUntil' in patch ? patch.excludedUntil : t.excludedUntil,
    told: 'told' in patch ? patch.told : t.told,
    toldAt: 'toldAt' in patch ? patch.toldAt : t.toldAt,
    offer: 'offer' in patch ? patch.offer : t.offer,
  };
  return task;
}

/** The task off offer again, if it was on offer under this reservation (a late duplicate answer changes nothing). */
const offerEnded = (t: Task, rid: string): Task => (t.offer === rid ? waitingTask(t, { offer: undefined }) : t);
const withoutPending = (c: QueueContext, rid: string) => withoutReservation(reservations(c), rid);

export const queueMachine = setup({
  types: {} as { context: QueueContext; events: QueueEvent; input: { id: string } },
  delays: { tick: ({ context }) => (context.catchingUp ? CATCH_UP_MS : 5_000) },
  actions: {
    /** Re-routes and shows the new figures; the step every change ends with. */
    route: enqueueActions(({ context, event, enqueue }, params: { focus: Focus } | undefined) => {
      const now = event.at ?? context.lastAssignAt;
      const { context: next, effects } = dispatch(context, now, params?.focus ?? 'all');
      enqueue.assign(next);
      for (const e of effects) enqueue.emit(e);
      // Supervisors see a queue with customers waiting at most every LIVE_EVERY_MS (and on every tick): a
      // busy queue steps thousands of times a second, and each live view walks every waiting task. An empty
      // queue has no tick to catch up with, and nothing to walk: every change shows at once.
      if (next.tasks.length === 0 || now - next.lastLiveAt >= LIVE_EVERY_MS || now < next.lastLiveAt) {
        enqueue.assign({ lastLiveAt: now });
        enqueue.emit(notify(`cc.live.queue.${context.id}`, liveView(next, now)));
      }
    }),
    /** Escalation, overflow and notices, on the queue's durable tick (every 5 s, or CATCH_UP_MS while catching up). */
    onTick: enqueueActions(({ context, event, enqueue }) => {
      const now = event.at ?? context.lastAssignAt;
      const overflow = context.config.overflow;
      const regular = !context.catchingUp;
      let more = false;
      let c = context;
      if (overflow) {
        const busy = offerIndex(reservations(c)).busy;
        const gone: Task[] = [];
        for (const t of c.tasks) {
          if (busy.has(t.id) || now - t.enqueuedAt < overflow.afterSec * 1000) continue;
          if (gone.length === OVERFLOWS_PER_STEP) {
            more = true;
            break;
          }
          gone.push(t);
        }
        for (const t of gone) {
          // A new queue is a new chance: agents who declined here may be asked there.
          enqueue.emit(tell(`queue/${overflow.queue}`, { type: 'task.add', task: { ...t, excluded: [], excludedUntil: undefined }, note: `overflow from ${c.id}` }));
          enqueue.emit(tell(`conversation/${t.id}`, { type: 'queue.overflowed', from: c.id, to: overflow.queue }));
        }
        if (gone.length) {
          const left = new Set(gone);
          const tasks = changedTasks(c, c.tasks.filter((t) => !left.has(t)), gone.map((t) => [t.id, null]));
          c = { ...c, tasks, stats: { ...c.stats, overflowed: c.stats.overflowed + gone.length } };
        }
      }
      c = reofferDeclined(c, now);
      const told = notices(c, now);
      for (const e of told.effects) enqueue.emit(e);
      c = { ...c, tasks: told.tasks, catchingUp: more || told.owed, toldSince: told.toldSince, noticeFrom: told.from };
      // The regular tick always shows the figures, even when nothing else happened.
      if (regular) c = { ...c, lastLiveAt: 0 };
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
    tasks: SharedList.empty<Task>(),
    workers: SharedMap.from<Worker>(),
    pending: SharedMap.from<Reservation>(),
    seq: 0,
    stats: { added: 0, assigned: 0, withinSl: 0, overflowed: 0, cancelled: 0, abandonedLate: 0, rejected: 0, timeouts: 0, refused: 0, waitMs: {}, count: {} },
    rate: 0,
    lastAssignAt: 0,
    catchingUp: false,
    lastLiveAt: 0,
    reofferAt: null,
  }),
  initial: 'idle',
  on: {
    configure: { actions: [assign({ config: ({ event }) => event.config }), 'route'] },
    get: { actions: emit(({ context, event }) => reply({ ...liveView(context, event.at ?? context.lastAssignAt), tasks: context.tasks.map((t) => t.id), last: context.last })) },
    staffing: { actions: emit(({ context, event }) => reply(staffing(context, workClass(event.channel)))) },
    'task.add': [
      {
        // A task the queue's target does not select is refused with the reason, never silently kept.
        guard: ({ context, event }) => Boolean(context.config.target) && !evaluate(context.config.target!, taskAttrs(event.task, event.at)),
        actions: emit(({ context, event }) => tell(`conversation/${event.task.id}`, { type: 'queue.refused', queue: context.id, reason: 'task does not match the queue target' })),
      },
      {
        // No target: the queue moves to waiting by its own `always` (re-entering waiting on every
        // arrival would restart the tick, and a queue with a task every few seconds would never tick).
        actions: [
          enqueueActions(({ context, event, enqueue }) => {
            // The task remembers the place it is told (below, once routing had its go).
            // A task added again (same id) takes its new place: one change for the stored part either way.
            const old = findTask(context, event.task.id);
            const rest = old ? context.tasks.remove(indexOfTask(context, old)) : context.tasks;
            const i = sortedIndex(rest, event.task, context.config);
            const toldAt = event.at ?? context.lastAssignAt;
            const task = waitingTask(event.task, { told: i + 1, toldAt, offer: undefined });
            enqueue.assign({
              // The bound on when waiting customers were last told: this one's time alone in an empty queue
              // (0 would make the next tick look at every task for notices none can be due for).
              toldSince: rest.length ? Math.min(context.toldSince ?? 0, toldAt) : toldAt,
              // Nothing is owed in a queue that emptied: a round left unfinished does not go on with new customers.
              ...(rest.length ? {} : { catchingUp: false, noticeFrom: undefined }),
              tasks: changedTasks(context, rest.insert(i, task), [[task.id, task]]),
              stats: { ...context.stats, added: context.stats.added + 1 },
            });
          }),
          { type: 'route', params: ({ event }) => ({ focus: { task: event.task.id } }) },
          // The customer is told their place at once, unless an agent was offered the task just now: an SMS
          // or email saying "number 1 in the queue" would then be noise the customer pays for.
          enqueueActions(({ context, event, enqueue }) => {
            const t = findTask(context, event.task.id);
            if (t && !t.offer) enqueue.emit(positionNotice(context, t, indexOfTask(context, t), waitPerPlaceSec(context, event.at)));
          }),
        ],
      },
    ],
    'task.cancel': {
      actions: [
        assign(({ context, event }) => {
          const t = findTask(context, event.taskId);
          // Leaving within the service level is the customer's own choice; after it, the queue missed them.
          const late = t !== undefined && event.at - t.enqueuedAt > context.config.serviceLevelSec * 1000;
          return {
            tasks: removeTask(context, event.taskId),
            stats: { ...context.stats, cancelled: context.stats.cancelled + (t ? 1 : 0), abandonedLate: (context.stats.abandonedLate ?? 0) + (late ? 1 : 0) },
          };
        }),
        { type: 'route', params: { focus: 'none' as Focus } },
      ],
    },
    'task.tier': {
      actions: [
        assign(({ context, event }) => {
          const t = findTask(context, event.taskId);
          if (!t || t.tier === event.tier) return {};
          // Out of its old place and into the one its new priority gives it; an offer in progress stays on it.
          const rest = context.tasks.remove(indexOfTask(context, t));
          const moved = waitingTask(t, { tier: event.tier });
          return { tasks: changedTasks(context, rest.insert(sortedIndex(rest, moved, context.config), moved), [[moved.id, moved]]) };
        }),
        { type: 'route', params: ({ event }) => ({ focus: { task: event.taskId } }) },
      ],
    },
    'worker.update': { actions: [assign({ workers: ({ context, event }) => withWorker(roster(context), event.worker) }), { type: 'route', params: ({ event }) => ({ focus: { worker: event.worker.id } }) }] },
    'reservation.accepted': {
      actions: [
        assign(({ context, event }) => {
          const t = findTask(context, event.taskId);
          if (!t) return { pending: withoutPending(context, event.reservationId) };
          const wait = event.at - t.enqueuedAt;
          // From the later of the last assignment and this task's arrival: time with nobody waiting is not slow service.
          const dt = Math.max(0.001, (event.at - Math.max(context.lastAssignAt, t.enqueuedAt)) / 1000);
          const s = context.stats;
          return {
            pending: withoutPending(context, event.reservationId),
            tasks: removeTask(context, t.id),
            // Smoothed over the intervals, not their inverses: one assignment moments after another would
            // otherwise make the pace look a thousand times faster for the next several.
            rate: context.rate === 0 ? 1 / dt : 1 / (0.8 / context.rate + 0.2 * dt),
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
        // Nothing new is free: the agent's slot stays taken until its own update says otherwise.
        { type: 'route', params: { focus: 'none' as Focus } },
      ],
    },
    'reservation.rejected': {
      actions: [
        assign(({ context, event }) => {
          const t = findTask(context, event.taskId);
          const stats = { ...context.stats, rejected: context.stats.rejected + (event.reason === 'timeout' ? 0 : 1), timeouts: context.stats.timeouts + (event.reason === 'timeout' ? 1 : 0) };
          if (!t) return { pending: withoutPending(context, event.reservationId), stats };
          // The agent who declined is offered other tasks first, and this one again only after reofferSec.
          const until = event.at + (context.config.reofferSec ?? REOFFER_SEC) * 1000;
          const declined = waitingTask(offerEnded(t, event.reservationId), { excluded: t.excluded.includes(event.agent) ? t.excluded : [...t.excluded, event.agent], excludedUntil: until });
          return {
            pending: withoutPending(context, event.reservationId),
            tasks: replaceTask(context, t.id, declined),
            reofferAt: context.reofferAt == null ? until : Math.min(context.reofferAt, until),
            stats,
          };
        }),
        'route',
      ],
    },
    'reservation.refused': {
      actions: [
        assign(({ context, event }) => {
          const p = reservations(context).get(event.reservationId);
          const w = p && roster(context).get(p.agent);
          const t = p && findTask(context, p.taskId);
          // The agent's own view wins: it was not free, so route elsewhere until it says otherwise.
          return {
            pending: withoutPending(context, event.reservationId),
            tasks: t && t.offer === event.reservationId ? replaceTask(context, t.id, offerEnded(t, event.reservationId)) : context.tasks,
            workers: w ? withWorker(roster(context), { ...w, available: false }) : context.workers,
            stats: { ...context.stats, refused: context.stats.refused + 1 },
          };
        }),
        'route',
      ],
    },
  },
  states: {
    idle: { always: { guard: 'hasTasks', target: 'waiting' } },
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
    tasks: listPart((t: Task) => t.id, (tasks: Task[], c: QueueContext) => SharedList.from(sortTasks(tasks, c.config).map((t) => waitingTask(t)))),
    workers: sharedMapPart(),
    pending: sharedMapPart(),
  },
});

