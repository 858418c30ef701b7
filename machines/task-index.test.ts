// The queue's unstored task index stays equal to its list through random steps, and routing through the
// index (one freed agent, or every free agent at once) offers exactly what a scan of every task would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { SharedMap } from '../actors/parts.ts';
import { Stepper } from '../actors/step.ts';
import { QueueEventSchema, dispatch, queueMachine, type QueueContext } from './queue.ts';
import { groupKey, taskIndex } from './task-index.ts';
import { bestWorker, currentStep, fits, workClass, type Task, type Worker } from './routing.ts';

const at = 1_700_000_000_000;
const skills = ['sales', 'billing', 'tech'];
const rnd = (() => {
  let x = 42;
  return (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) % n);
})();

const task = (i: number) => ({
  id: `t${i}`,
  channel: (['webchat', 'email', 'voice'] as const)[rnd(3)],
  skills: [{ name: skills[rnd(3)], level: 1 + rnd(3) }],
  language: rnd(2) ? 'zh' : 'en',
  tier: rnd(8) === 0 ? 'vip' : 'normal',
  enqueuedAt: at + i * 1000,
});
const worker = (i: number, available: boolean): Worker => ({
  id: `a${i}`,
  available,
  skills: { [skills[i % 3]]: 1 + (i % 3), [skills[(i + 1) % 3]]: 1, zh: 1, ...(i % 2 ? { en: 1 } : {}) },
  capacity: { voice: 1, chat: 3, email: 5 },
  load: { voice: 0, chat: 0, email: 0 },
  idleSince: at - i,
  held: [],
});

function expectIndexMatches(c: QueueContext): void {
  const index = taskIndex(c.id, c.tasks);
  assert.equal(index.byId.size, c.tasks.length);
  for (const t of c.tasks) assert.equal(index.byId.get(t.id), t);
  const groups = new Map<string, Task[]>();
  // Tasks on offer wait outside the groups (routing a freed agent looks only at tasks it could be offered).
  for (const t of [...c.tasks].sort((a, b) => a.enqueuedAt - b.enqueuedAt)) if (t.offer === undefined) groups.set(groupKey(t), [...(groups.get(groupKey(t)) ?? []), t]);
  assert.deepEqual(new Set(index.groups.keys()), new Set(groups.keys()));
  for (const [k, g] of groups) assert.deepEqual(index.groups.get(k)!.map((t) => t.id), g.map((t) => t.id));
}

test('the index follows every add, cancel, rejection and assignment', () => {
  const stepper = new Stepper(queueMachine);
  let snap: AnyMachineSnapshot = stepper.initial({ id: 'idx' }).snapshot;
  const step = (e: Record<string, unknown>) => {
    const res = stepper.step(snap, v.parse(QueueEventSchema, e) as EventObject);
    snap = res.snapshot;
    return res;
  };
  step({ type: 'configure', at, config: { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 120, match: 'any-level' }] } });
  for (let i = 0; i < 20; i++) step({ type: 'worker.update', at, worker: worker(i, false) });
  let next = 0;
  let now = at;
  for (let n = 0; n < 1500; n++) {
    now += 500;
    const c = snap.context as QueueContext;
    const r = rnd(10);
    if (r < 5 || c.tasks.length < 5) step({ type: 'task.add', at: now, task: task(next++) });
    else if (r < 6) step({ type: 'task.cancel', at: now, taskId: c.tasks.at(rnd(c.tasks.length))!.id });
    else {
      const res = step({ type: 'worker.update', at: now, worker: worker(rnd(20), rnd(3) > 0) });
      for (const e of res.effects) {
        if (e.type !== 'effect.tell' || e.event.type !== 'reserve') continue;
        const { reservationId, task: t } = e.event as unknown as { reservationId: string; task: Task };
        const agent = e.to.split('/')[1];
        if (rnd(3) === 0) step({ type: 'reservation.rejected', at: now, reservationId, taskId: t.id, agent, reason: 'declined' });
        else step({ type: 'reservation.accepted', at: now, reservationId, taskId: t.id, agent });
      }
    }
    expectIndexMatches(snap.context as QueueContext);
  }
  assert.ok(next > 500);
});

/** A queue with three escalation steps and 400 tasks waiting, one a second (`more` adds to each task). */
function waitingQueue(id: string, more: (i: number) => Record<string, unknown> = () => ({})): QueueContext {
  const stepper = new Stepper(queueMachine);
  let snap: AnyMachineSnapshot = stepper.initial({ id }).snapshot;
  const step = (e: Record<string, unknown>) => (snap = stepper.step(snap, v.parse(QueueEventSchema, e) as EventObject).snapshot);
  step({ type: 'configure', at, config: { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 300, match: 'any-level' }, { afterSec: 900, match: 'anyone' }] } });
  for (let i = 0; i < 400; i++) step({ type: 'task.add', at: at + i * 1000, task: { ...task(i), ...more(i) } });
  return snap.context as QueueContext;
}

test('a freed agent gets through the index exactly what scanning every task would give it', () => {
  for (let round = 0; round < 30; round++) {
    const w = worker(round, true);
    const c = { ...waitingQueue(`eq${round}`), workers: SharedMap.from({ [w.id]: w }) };
    const now = at + 1_000_000;
    const viaIndex = dispatch(c, now, { worker: w.id }).effects.map((e) => (e.type === 'effect.tell' ? (e.event as unknown as { task: Task }).task.id : ''));
    const viaScan = dispatch(c, now, 'all').effects.map((e) => (e.type === 'effect.tell' ? (e.event as unknown as { task: Task }).task.id : ''));
    assert.ok(viaScan.length > 0);
    assert.deepEqual(viaIndex, viaScan, `round ${round}`);
  }
});

/** The plain reading of routing: every waiting task in priority order to the best free agent that fits it. */
function scanEveryTask(c: QueueContext, now: number): string[] {
  const free = new Map<string, Worker>();
  for (const w of c.workers.values()) if (w.available) free.set(w.id, w);
  const offers: string[] = [];
  for (const t of c.tasks) {
    if (t.offer !== undefined) continue;
    const { step } = currentStep(t, now, c.config.steps);
    const found = [...free.values()].filter((w) => fits(w, t, step));
    const { worker } = bestWorker(t, found, now, c.config);
    if (!worker) continue;
    offers.push(`${t.id}>${worker.id}`);
    const cls = workClass(t.channel);
    free.set(worker.id, { ...worker, load: { ...worker.load, [cls]: worker.load[cls] + 1 } });
  }
  return offers;
}

test('every free agent at once: routing through the group heads offers what a scan of every task in priority order would', () => {
  for (let round = 0; round < 30; round++) {
    // Urgent tasks, and tasks some of these agents already declined, route apart from the others.
    const queue = waitingQueue(`all${round}`, () => ({ urgent: rnd(12) === 0, excluded: rnd(5) === 0 ? [`a${round * 50 + rnd(20)}`] : [] }));
    // Some agents free, some away; some already carrying work.
    const workers: Record<string, Worker> = {};
    for (let i = 0; i < 5 + rnd(40); i++) {
      const w = worker(round * 50 + i, rnd(4) > 0);
      workers[w.id] = { ...w, load: { voice: rnd(2), chat: rnd(3), email: rnd(4) } };
    }
    const c = { ...queue, workers: SharedMap.from(workers) };
    const now = at + 250_000 + rnd(1_000_000);
    const offers = dispatch(c, now, 'all').effects.flatMap((e) =>
      e.type === 'effect.tell' && e.event.type === 'reserve' ? [`${(e.event as unknown as { task: Task }).task.id}>${e.to.split('/')[1]}`] : [],
    );
    assert.ok(offers.length > 0, `round ${round}`);
    assert.deepEqual(offers, scanEveryTask(c, now), `round ${round}`);
  }
});
