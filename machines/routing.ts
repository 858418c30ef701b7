// TaskRouter-style routing as pure functions: which waiting task goes to which available agent, and why.
// The queue machine keeps its tasks in this order and calls these on every change.
import * as v from 'valibot';

export const CHANNELS = ['voice', 'webchat', 'app', 'email', 'sms', 'wecom', 'dingtalk', 'wechat', 'douyin', 'xiaohongshu'] as const;
export type Channel = (typeof CHANNELS)[number];
export const ChannelSchema = v.picklist(CHANNELS, 'unknown channel');

/** Capacity is counted per kind of work: a call, a chat-like conversation, an email. */
export type WorkClass = 'voice' | 'chat' | 'email';
export const workClass = (c: Channel): WorkClass => (c === 'voice' ? 'voice' : c === 'email' ? 'email' : 'chat');
export const DEFAULT_CAPACITY: Record<WorkClass, number> = { voice: 1, chat: 3, email: 5 };

const Attr = v.union([v.string(), v.number(), v.boolean()]);

/** A target expression over task attributes, as data: serializable, explainable, no eval. */
export type Expr =
  | { attr: string; op: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte'; value: string | number | boolean }
  | { attr: string; op: 'in'; value: (string | number)[] }
  | { attr: string; op: 'has'; value: string }
  | { all: Expr[] }
  | { any: Expr[] }
  | { not: Expr };
export const ExprSchema: v.GenericSchema<Expr> = v.union([
  v.object({ attr: v.string(), op: v.picklist(['eq', 'ne', 'gt', 'gte', 'lt', 'lte']), value: Attr }),
  v.object({ attr: v.string(), op: v.literal('in'), value: v.array(v.union([v.string(), v.number()])) }),
  v.object({ attr: v.string(), op: v.literal('has'), value: v.string() }),
  v.object({ all: v.array(v.lazy(() => ExprSchema)) }),
  v.object({ any: v.array(v.lazy(() => ExprSchema)) }),
  v.object({ not: v.lazy(() => ExprSchema) }),
]);

export const SkillNeedSchema = v.object({ name: v.pipe(v.string(), v.minLength(1)), level: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1) });
export type SkillNeed = v.InferOutput<typeof SkillNeedSchema>;

export const TaskSchema = v.object({
  id: v.pipe(v.string(), v.minLength(1)),
  channel: ChannelSchema,
  customer: v.optional(v.string()),
  skills: v.optional(v.array(SkillNeedSchema), []),
  language: v.optional(v.string()),
  tier: v.optional(v.picklist(['normal', 'vip']), 'normal'),
  urgent: v.optional(v.boolean(), false),
  enqueuedAt: v.number(),
  attrs: v.optional(v.record(v.string(), Attr), {}),
  /**
   * Agents that rejected or missed this task: not offered it again before `excludedUntil` (the queue opens
   * it to them on its first tick after that; a task stored without the time is opened on the next tick).
   */
  excluded: v.optional(v.array(v.string()), []),
  /** The queue's reofferSec after the latest decline. */
  excludedUntil: v.optional(v.number()),
  /** The queue position the customer was last told, and when. */
  told: v.optional(v.number()),
  toldAt: v.optional(v.number()),
  /** Set by the queue: the reservation this task is on offer under (it then waits outside the routing groups). */
  offer: v.optional(v.string()),
});
export type Task = v.InferOutput<typeof TaskSchema>;

export const WorkerSchema = v.object({
  id: v.string(),
  available: v.boolean(),
  skills: v.record(v.string(), v.number()),
  capacity: v.object({ voice: v.number(), chat: v.number(), email: v.number() }),
  load: v.object({ voice: v.number(), chat: v.number(), email: v.number() }),
  idleSince: v.number(),
  /** Reservations the agent already counts in its load. */
  held: v.optional(v.array(v.string()), []),
  /** The agent's presence (absent in updates from before it was sent): tells wrap-up (back soon) from away or offline. */
  presence: v.optional(v.picklist(['offline', 'available', 'busy', 'away', 'wrapup'])),
});
export type Worker = v.InferOutput<typeof WorkerSchema>;

/** An agent's answers to a reservation, sent to whoever reserved it (a queue, or a conversation for a direct transfer). */
export const ReservationAnswerSchemas = [
  v.object({ type: v.literal('reservation.accepted'), at: v.number(), reservationId: v.string(), taskId: v.string(), agent: v.string() }),
  v.object({ type: v.literal('reservation.rejected'), at: v.number(), reservationId: v.string(), taskId: v.string(), agent: v.string(), reason: v.string() }),
  v.object({ type: v.literal('reservation.refused'), at: v.number(), reservationId: v.string(), taskId: v.string(), reason: v.string() }),
] as const;

/** Escalation: after `afterSec` of waiting, match with this rule. */
export const StepSchema = v.object({
  afterSec: v.number(),
  match: v.picklist(['exact', 'any-level', 'language-only', 'anyone']),
});
export type Step = v.InferOutput<typeof StepSchema>;

/** reofferSec's default; also for a queue configured before the setting existed (its stored config lacks it). */
export const REOFFER_SEC = 60;

export const QueueConfigSchema = v.object({
  target: v.optional(ExprSchema),
  steps: v.optional(v.array(StepSchema), [{ afterSec: 0, match: 'exact' }]),
  overflow: v.optional(v.object({ afterSec: v.number(), queue: v.string() })),
  /** A normal task's priority grows by one VIP boost every agingSec of waiting: starvation is bounded. */
  agingSec: v.optional(v.number(), 600),
  /** Tell waiting digital customers their position and wait every reminderSec. */
  reminderSec: v.optional(v.pipe(v.number(), v.minValue(5, 'reminderSec must be at least 5')), 60),
  /** A customer whose place moved up a lot is told so, but not sooner than this after they were last told. */
  movedGapSec: v.optional(v.pipe(v.number(), v.minValue(0, 'movedGapSec must not be negative')), 30),
  serviceLevelSec: v.optional(v.number(), 30),
  /**
   * An agent who rejected or missed a task is offered others first; after this long (from the latest
   * decline) they may be offered it again, so that a customer whom every eligible agent declined once is
   * not left waiting for ever.
   */
  reofferSec: v.optional(v.pipe(v.number(), v.minValue(0, 'reofferSec must not be negative')), REOFFER_SEC),
});
export type QueueConfig = v.InferOutput<typeof QueueConfigSchema>;

const VIP_BOOST = 1000;
const VOICE_BOOST = 100;

/** Priority at time `now`: VIP/urgent first, then voice, then wait (which grows without bound). */
export function priority(t: Task, now: number, cfg: Pick<QueueConfig, 'agingSec'>): number {
  return boost(t) + ((now - t.enqueuedAt) / 1000) * (VIP_BOOST / cfg.agingSec);
}
export const boost = (t: Task) => (t.tier === 'vip' || t.urgent ? VIP_BOOST : 0) + (t.channel === 'voice' ? VOICE_BOOST : 0);

/**
 * Priority minus the part that grows with time: the order of two tasks never changes as they wait,
 * so the queue keeps tasks sorted by this key once, and ties go to the longest waiting.
 */
export const orderKey = (t: Task, cfg: Pick<QueueConfig, 'agingSec'>) => boost(t) - (t.enqueuedAt / 1000) * (VIP_BOOST / cfg.agingSec);

/** Where `t` goes in a list kept in priority order, an array or a SharedList (after equals: first come, first served). */
export function sortedIndex(tasks: { readonly length: number; at(i: number): Task | undefined }, t: Task, cfg: Pick<QueueConfig, 'agingSec'>): number {
  const k = orderKey(t, cfg);
  let lo = 0;
  let hi = tasks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const m = tasks.at(mid)!;
    const km = orderKey(m, cfg);
    if (km > k || (km === k && m.enqueuedAt <= t.enqueuedAt)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function insertSorted(tasks: Task[], t: Task, cfg: Pick<QueueConfig, 'agingSec'>): Task[] {
  const i = sortedIndex(tasks, t, cfg);
  return [...tasks.slice(0, i), t, ...tasks.slice(i)];
}

/** The order insertSorted keeps, for a list read back from storage. */
export function sortTasks(tasks: Task[], cfg: Pick<QueueConfig, 'agingSec'>): Task[] {
  return tasks
    .map((t) => ({ t, k: orderKey(t, cfg) }))
    .sort((a, b) => b.k - a.k || a.t.enqueuedAt - b.t.enqueuedAt)
    .map((x) => x.t);
}

export function evaluate(e: Expr, attrs: Record<string, unknown>): boolean {
  if ('all' in e) return e.all.every((x) => evaluate(x, attrs));
  if ('any' in e) return e.any.some((x) => evaluate(x, attrs));
  if ('not' in e) return !evaluate(e.not, attrs);
  const a = attrs[e.attr];
  switch (e.op) {
    case 'eq':
      return a === e.value;
    case 'ne':
      return a !== e.value;
    case 'gt':
      return typeof a === 'number' && a > (e.value as number);
    case 'gte':
      return typeof a === 'number' && a >= (e.value as number);
    case 'lt':
      return typeof a === 'number' && a < (e.value as number);
    case 'lte':
      return typeof a === 'number' && a <= (e.value as number);
    case 'in':
      return (e.value as unknown[]).includes(a);
    case 'has':
      return Array.isArray(a) && a.includes(e.value);
  }
}

/** The attributes a target expression sees: the task's own plus derived ones. */
export const taskAttrs = (t: Task, now: number): Record<string, unknown> => ({
  ...t.attrs,
  channel: t.channel,
  tier: t.tier,
  urgent: t.urgent,
  language: t.language ?? '',
  skills: t.skills.map((s) => s.name),
  waitSec: Math.floor((now - t.enqueuedAt) / 1000),
});

export function currentStep(t: Task, now: number, steps: Step[]): { index: number; step: Step } {
  const wait = (now - t.enqueuedAt) / 1000;
  let index = 0;
  steps.forEach((s, i) => {
    if (wait >= s.afterSec) index = i;
  });
  return { index, step: steps[index] ?? { afterSec: 0, match: 'exact' } };
}

/** Whether a worker can take a task under a rule: `refusal` without building reasons, for hot loops. */
export function fits(w: Worker, t: Task, step: Step): boolean {
  if (!w.available || t.excluded.includes(w.id)) return false;
  const cls = workClass(t.channel);
  if (w.load[cls] >= w.capacity[cls]) return false;
  if (t.language && step.match !== 'anyone' && !(t.language in w.skills)) return false;
  if (step.match === 'exact' || step.match === 'any-level') {
    for (const need of t.skills) {
      const have = w.skills[need.name];
      if (have === undefined || (step.match === 'exact' && have < need.level)) return false;
    }
  }
  return true;
}

/** Why a worker cannot take a task under a rule, or undefined when it can. */
export function refusal(w: Worker, t: Task, step: Step): string | undefined {
  if (!w.available) return 'not available';
  if (t.excluded.includes(w.id)) return 'already declined this task';
  const cls = workClass(t.channel);
  if (w.load[cls] >= w.capacity[cls]) return `no free ${cls} slot (${w.load[cls]}/${w.capacity[cls]})`;
  if (t.language && step.match !== 'anyone' && !(t.language in w.skills)) return `does not speak ${t.language}`;
  if (step.match === 'exact' || step.match === 'any-level') {
    for (const need of t.skills) {
      const have = w.skills[need.name];
      if (have === undefined) return `missing skill ${need.name}`;
      if (step.match === 'exact' && have < need.level) return `skill ${need.name}:${have} below ${need.level}`;
    }
  }
  return undefined;
}

/** A refusal without its figures, to count agents passed over by reason. */
export const reasonKey = (reason: string) => reason.replace(/ \(.*\)$/, '').replace(/:\d+ below \d+$/, ' too low');
export const RANKED_LOWER = 'ranked lower (skill level, then idle time)';

const skillScore = (w: Worker, t: Task) => t.skills.reduce((s, n) => s + (w.skills[n.name] ?? 0), 0);

export interface Explanation {
  task: string;
  agent: string;
  rule: string;
  priority: number;
  why: string;
  /** Up to five agents passed over, with the reason; `passed` counts all of them by reason. */
  others: { agent: string; reason: string }[];
  passed: Record<string, number>;
}

/** Ranks the workers able to take `t` now: highest skill level on the needed skills, then longest idle. */
export function bestWorker(t: Task, workers: Worker[], now: number, cfg: QueueConfig): { worker?: Worker; explanation?: Explanation; passed: Record<string, number> } {
  const { index, step } = currentStep(t, now, cfg.steps);
  const passed: Record<string, number> = {};
  const others: { agent: string; reason: string }[] = [];
  let best: Worker | undefined;
  for (const w of workers) {
    const no = refusal(w, t, step);
    if (no) {
      const key = reasonKey(no);
      passed[key] = (passed[key] ?? 0) + 1;
      if (others.length < 5) others.push({ agent: w.id, reason: no });
      continue;
    }
    if (!best || skillScore(w, t) > skillScore(best, t) || (skillScore(w, t) === skillScore(best, t) && w.idleSince < best.idleSince)) {
      if (best && others.length < 5) others.push({ agent: best.id, reason: RANKED_LOWER });
      best = w;
    } else if (others.length < 5) others.push({ agent: w.id, reason: RANKED_LOWER });
  }
  if (!best) return { passed };
  const p = priority(t, now, cfg);
  const reasons = [t.tier === 'vip' ? 'VIP' : '', t.urgent ? 'urgent' : '', t.channel === 'voice' ? 'voice' : '', `waited ${Math.round((now - t.enqueuedAt) / 1000)}s`].filter(Boolean);
  return {
    worker: best,
    passed,
    explanation: {
      task: t.id,
      agent: best.id,
      rule: `step ${index} (${step.match}, after ${step.afterSec}s)${cfg.target ? ' of target' : ''}`,
      priority: Math.round(p),
      why: `priority ${Math.round(p)} (${reasons.join(', ')}); chose ${best.id}: skill score ${skillScore(best, t)}, idle since ${new Date(best.idleSince).toISOString()}`,
      others,
      passed,
    },
  };
}
