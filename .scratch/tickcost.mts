import * as v from 'valibot';
import type { EventObject } from 'xstate';
import { Stepper } from '/work/main/actors/step.ts';
import { queueKind } from '/work/main/machines/queue.ts';
import { QueueConfigSchema } from '/work/main/machines/routing.ts';
import { benchTask, benchWorker } from '/work/main/bench/routing.ts';
const stepper = new Stepper(queueKind.machine);
let snap = stepper.initial({ id: 'bench' }).snapshot;
const at = Date.now();
const step = (e: object) => { const t0 = performance.now(); snap = stepper.step(snap, e as EventObject).snapshot; return performance.now() - t0; };
step({ type: 'configure', at, config: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 60, match: 'any-level' }] }) });
for (let i = 0; i < 1000; i++) step({ type: 'worker.update', at, worker: benchWorker(i, at, false) });
for (let i = 0; i < 10000; i++) step({ type: 'task.add', at: at + i, task: benchTask(i, at) });
for (let i = 0; i < 5; i++) step({ type: 'worker.update', at: at + 20000, worker: benchWorker(i, at, true) });
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
const session = new Session(); session.connect();
await session.post('Profiler.enable'); await session.post('Profiler.start');
for (let r = 0; r < 60; r++) {
  const id = (snap as any).children ? '' : '';
  step({ type: 'xstate.after.tick.queue.waiting', at: at + 20000 + r * 5000 }); step({ type: 'worker.update', at: at + 20001 + r * 5000, worker: benchWorker(100 + r, at, true) });
}

const { profile } = await session.post('Profiler.stop');
writeFileSync('tick.cpuprofile', JSON.stringify(profile));
