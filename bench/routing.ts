// `npm run bench -- routing`: the queue's routing with 1,000 agents and 10,000 waiting tasks, stepped the
// way a node steps it (the runtime's Stepper, then the snapshot serialized for persistence), in-process.
import * as v from 'valibot';
import { Stepper } from '../actors/step.ts';
import { queueMachine } from '../machines/queue.ts';
import { QueueConfigSchema, type Channel } from '../machines/routing.ts';
import { percentile, report } from './report.ts';

export async function benchRouting(): Promise<void> {
  const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
  const TASKS = Number(process.env.BENCH_TASKS ?? 10_000);
  const stepper = new Stepper(queueMachine);
  let snap = stepper.initial({ id: 'bench' }).snapshot;
  const at = 1_700_000_000_000;
  const step = (e: Record<string, unknown> & { type: string }) => (snap = stepper.step(snap, e).snapshot);
  step({ type: 'configure', at, config: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 60, match: 'any-level' }] }) });
  const skills = ['after-sales', 'finance', 'billing', 'tech'];
  const worker = (i: number, available: boolean) => ({
    id: `a${i}`,
    available,
    skills: { [skills[i % 4]]: 1 + (i % 5), [skills[(i + 1) % 4]]: 1 + (i % 3), zh: 1, ...(i % 2 ? { en: 1 } : {}) },
    capacity: { voice: 1, chat: 3, email: 5 },
    load: { voice: 0, chat: 0, email: 0 },
    idleSince: at - i * 1000,
    held: [],
  });
  for (let i = 0; i < AGENTS; i++) step({ type: 'worker.update', at, worker: worker(i, false) });
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) {
    const r = i % 20;
    const channel: Channel = r < 11 ? 'webchat' : r < 17 ? 'email' : 'voice';
    step({
      type: 'task.add',
      at: at + i,
      task: { id: `t${i}`, channel, skills: [{ name: skills[i % 4], level: 1 + (i % 3) }], language: i % 3 ? 'zh' : 'en', tier: i % 10 === 0 ? 'vip' : 'normal', urgent: false, enqueuedAt: at + i, attrs: {}, excluded: [] },
    });
  }
  const addMs = performance.now() - t0;
  const bytes = JSON.stringify(stepper.persist(snap)).length;

  // Agents become available one at a time; each step offers that agent every task it can take.
  const offerMs: number[] = [];
  const decideMs: number[] = [];
  let assignments = 0;
  for (let i = 0; i < AGENTS; i++) {
    const s = performance.now();
    const ev = { type: 'worker.update', at: at + TASKS + i, worker: worker(i, true) };
    const res = stepper.step(snap, ev);
    const decided = performance.now();
    JSON.stringify(stepper.persist(res.snapshot));
    offerMs.push(performance.now() - s);
    decideMs.push(decided - s);
    snap = res.snapshot;
    assignments += res.effects.filter((e) => e.type === 'effect.tell' && e.event.type === 'reserve').length;
  }
  const totalS = offerMs.reduce((a, b) => a + b, 0) / 1000;
  report({
    name: 'assignments_per_s',
    value: assignments / totalS,
    unit: 'assignments/s',
    goal: 'value >= 2000',
    agents: AGENTS,
    queued_tasks: TASKS,
    assignments,
    decide_only_per_s: Math.round(assignments / (decideMs.reduce((a, b) => a + b, 0) / 1000)),
    snapshot_bytes: bytes,
    task_add_per_s: Math.round(TASKS / (addMs / 1000)),
    scope: 'in-process: queue machine stepped by the runtime Stepper and serialized; no NATS write (see README)',
  });
  report({ name: 'offer_p99_ms', value: percentile(offerMs, 99), unit: 'ms', goal: 'value <= 20', p50_ms: Math.round(percentile(offerMs, 50) * 1000) / 1000, decide_p99_ms: Math.round(percentile(decideMs, 99) * 1000) / 1000 });
}
