// `npm run bench -- routing`: the queue's routing with 1,000 agents and 10,000 waiting tasks, stepped the
// way a node steps it: the runtime's Stepper, then the record a shard would store (parts planned, the
// snapshot without its parts, encoded). Agents accept what they are offered, so tasks leave the queue.
// In-process: the NATS writes themselves are measured by the actors bench.
import * as v from 'valibot';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { PartState, commitPart, planPart, stripContext } from '../actors/parts.ts';
import { encodeRecord } from '../actors/record.ts';
import { Stepper } from '../actors/step.ts';
import type { Effect } from '../machines/effects.ts';
import { queueKind, type QueueContext } from '../machines/queue.ts';
import { QueueConfigSchema, type Channel } from '../machines/routing.ts';
import { envCount, percentile, report } from './report.ts';

/** Steps the queue and builds what the shard would store for each step; returns ms taken and effects. */
function hostedQueue() {
  const stepper = new Stepper(queueKind.machine);
  const collections = queueKind.collections!;
  const parts = new Map(Object.keys(collections).map((f) => [f, new PartState()]));
  let snap: AnyMachineSnapshot = stepper.initial({ id: 'bench' }).snapshot;
  let recordBytes = 0;
  let maxRecordBytes = 0;
  let partBytes = 0;
  const byType = new Map<string, number[]>();
  return {
    step(e: EventObject): { ms: number; effects: Effect[] } {
      const t0 = performance.now();
      const res = stepper.step(snap, e);
      const t1 = performance.now();
      snap = res.snapshot;
      const context = snap.context as Record<string, unknown>;
      const plans = Object.entries(collections).map(([f, c]) => planPart('queue.bench', f, parts.get(f)!, context[f], c));
      const record = {
        machine: 'queue',
        version: queueKind.version,
        seq: 0,
        snapshot: stepper.persist({ ...snap, context: stripContext(context, collections) } as AnyMachineSnapshot),
        timers: [],
        outbox: [],
        steps: 0,
        parts: Object.fromEntries(plans.map((p) => [p.field, p.meta])),
      };
      const bytes = encodeRecord(record).length;
      for (const p of plans) {
        for (const w of p.writes) partBytes += w.data.length;
        commitPart(parts.get(p.field)!, p);
      }
      recordBytes += bytes;
      maxRecordBytes = Math.max(maxRecordBytes, bytes);
      const ms = performance.now() - t0;
      if (process.env.BENCH_PROFILE) {
        const k = `${e.type}:step=${(t1 - t0).toFixed(3)}`;
        byType.set(e.type, (byType.get(e.type) ?? [0, 0, 0]).map((x, i) => x + [ms, t1 - t0, 1][i]));
        void k;
      }
      return { ms, effects: res.effects };
    },
    stats: () => ({ recordBytes, maxRecordBytes, partBytes, byType }),
    context: () => snap.context as QueueContext,
  };
}

const SKILLS = ['after-sales', 'finance', 'billing', 'tech'];
export type Load = { voice: number; chat: number; email: number };

/** Agent i of the routing benches: two skills at mixed levels, Chinese, every other one English too. */
export function benchWorker(i: number, at: number, available: boolean, load: Load = { voice: 0, chat: 0, email: 0 }, held: string[] = []) {
  return {
    id: `a${i}`,
    available,
    skills: { [SKILLS[i % 4]]: 1 + (i % 5), [SKILLS[(i + 1) % 4]]: 1 + (i % 3), zh: 1, ...(i % 2 ? { en: 1 } : {}) },
    capacity: { voice: 1, chat: 3, email: 5 },
    load,
    idleSince: at - i * 1000,
    held,
  };
}

/** Task i of the routing benches: 55 % chat, 30 % email, 15 % voice; one in ten VIP. */
export function benchTask(i: number, at: number) {
  const r = i % 20;
  const channel: Channel = r < 11 ? 'webchat' : r < 17 ? 'email' : 'voice';
  return { id: `t${i}`, channel, skills: [{ name: SKILLS[i % 4], level: 1 + (i % 3) }], language: i % 3 ? 'zh' : 'en', tier: i % 10 === 0 ? ('vip' as const) : ('normal' as const), urgent: false, enqueuedAt: at + i, attrs: {}, excluded: [] };
}

export async function benchRouting(): Promise<void> {
  const AGENTS = envCount('BENCH_AGENTS', 1000);
  const TASKS = envCount('BENCH_TASKS', 10_000);
  const q = hostedQueue();
  const at = 1_700_000_000_000;
  q.step({ type: 'configure', at, config: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 60, match: 'any-level' }] }) } as EventObject);
  const worker = (i: number, available: boolean, load?: Load, held?: string[]) => benchWorker(i, at, available, load, held);
  for (let i = 0; i < AGENTS; i++) q.step({ type: 'worker.update', at, worker: worker(i, false) } as EventObject);
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) q.step({ type: 'task.add', at: at + i, task: benchTask(i, at) } as EventObject);
  const addMs = performance.now() - t0;

  // Agents become available one at a time; each is offered what it can take, holds the offers
  // (its load update), and accepts them one by one.
  const offerMs: number[] = [];
  let busyMs = 0;
  let assignments = 0;
  let now = at + TASKS;
  for (let i = 0; i < AGENTS; i++) {
    const offered = q.step({ type: 'worker.update', at: ++now, worker: worker(i, true) } as EventObject);
    offerMs.push(offered.ms);
    busyMs += offered.ms;
    const offers = offered.effects.flatMap((e) => (e.type === 'effect.tell' && e.event.type === 'reserve' ? [e.event as unknown as { reservationId: string; task: { id: string; channel: Channel } }] : []));
    if (!offers.length) continue;
    const load = { voice: 0, chat: 0, email: 0 };
    for (const o of offers) load[o.task.channel === 'voice' ? 'voice' : o.task.channel === 'email' ? 'email' : 'chat']++;
    busyMs += q.step({ type: 'worker.update', at: ++now, worker: worker(i, true, load, offers.map((o) => o.reservationId)) } as EventObject).ms;
    for (const o of offers) {
      busyMs += q.step({ type: 'reservation.accepted', at: ++now, reservationId: o.reservationId, taskId: o.task.id, agent: `a${i}` } as EventObject).ms;
      assignments++;
    }
  }
  const s = q.stats();
  if (process.env.BENCH_PROFILE) for (const [t, [ms, stepMs, n]] of s.byType) console.error(t, 'n', n, 'mean ms', (ms / n).toFixed(3), 'step-only', (stepMs / n).toFixed(3));
  const steps = offerMs.length + assignments * 2;
  report({
    name: 'assignments_per_s',
    value: assignments / (busyMs / 1000),
    unit: 'assignments/s',
    goal: 'value >= 2000',
    agents: AGENTS,
    queued_tasks: TASKS,
    assignments,
    task_add_per_s: Math.round(TASKS / (addMs / 1000)),
    mean_record_bytes: Math.round(s.recordBytes / (TASKS + AGENTS + steps)),
    max_record_bytes: s.maxRecordBytes,
    part_bytes_per_step: Math.round(s.partBytes / (TASKS + AGENTS + steps)),
    scope: 'in-process: queue stepped by the runtime Stepper, its record and parts built as a shard stores them; no NATS write (see README)',
  });
  report({ name: 'offer_p99_ms', value: percentile(offerMs, 99), unit: 'ms', goal: 'value <= 20', p50_ms: Math.round(percentile(offerMs, 50) * 1000) / 1000 });

  // Two minutes of the queue's tick over the tasks still waiting: position notices fall due (moved up a lot,
  // then the reminder), sent a bounded number a step with quick catch-up ticks between. Each tick step holds
  // the queue, so an agent freed meanwhile waits for it.
  const waiting = q.context().tasks.length;
  const tickMs: number[] = [];
  let notices = 0;
  for (let t = now + 5_000; t < now + 120_000; t += q.context().catchingUp ? 50 : 5_000) {
    const r = q.step({ type: 'xstate.after.tick.queue.waiting', at: t } as EventObject);
    tickMs.push(r.ms);
    notices += r.effects.filter((e) => e.type === 'effect.tell' && e.event.type === 'queue.position').length;
  }
  if (!notices) throw new Error('the queue sent no notices on its tick: the bench no longer reaches the tick');
  report({ name: 'tick_step_ms', value: Math.max(...tickMs), unit: 'ms', p50_ms: Math.round(percentile(tickMs, 50) * 1000) / 1000, ticks: tickMs.length, notices, waiting, note: 'the longest tick step (notices, escalation, re-routing) over two minutes, record built as a shard stores it' });
}
