// Waiting customers hear their place when queued, at every reminder, and in between when it moves up a lot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { QueueConfigSchema } from './routing.ts';
import { NOTICES_PER_STEP, OVERFLOWS_PER_STEP, queueKind, type QueueContext } from './queue.ts';
import { Sim } from '../tests/support/sim.ts';

/** What `collect` finds after the tick due within 5 s, then after each of the three catch-up ticks 50 ms apart. */
function tickSteps<T>(sim: Sim, collect: () => T[]): T[][] {
  const steps: T[][] = [];
  for (let k = 0; k < 4; k++) {
    sim.advance(k === 0 ? 5_000 : 50);
    steps.push(collect());
  }
  return steps;
}

test('a customer is told again between reminders only when their place moved up by a third and 3 places, and not within movedGapSec', () => {
  const sim = new Sim({ queue: queueKind });
  const positions = () => {
    const out = sim.log.filter((m) => m.event.type === 'queue.position').map((m) => `${m.to.split('/')[1]}@${(m.event as unknown as { position: number }).position}`);
    sim.log.length = 0;
    return out;
  };
  sim.send('queue/n', { type: 'configure', config: { reminderSec: 600 } });
  for (let i = 0; i < 12; i++) sim.send('queue/n', { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now + i } });
  assert.deepEqual(positions(), Array.from({ length: 12 }, (_, i) => `t${i}@${i + 1}`), 'each is told its place when queued');
  // The first four leave (answered elsewhere).
  for (let i = 0; i < 4; i++) sim.send('queue/n', { type: 'task.cancel', taskId: `t${i}` });
  sim.advance(25_000);
  assert.deepEqual(positions(), [], 'told when queued moments ago: not again within 30 s');
  sim.advance(5_000);
  // t4 was 5th, now 1st (up 4 ≥ max(3, 2)) … t11 was 12th, now 8th (up 4 ≥ max(3, 4)).
  assert.deepEqual(positions(), ['t4@1', 't5@2', 't6@3', 't7@4', 't8@5', 't9@6', 't10@7', 't11@8']);
  sim.advance(5_000);
  assert.deepEqual(positions(), [], 'nothing moved since: nobody is told again');
  assert.equal((sim.state('queue/n').context as QueueContext).tasks.find((t) => t.id === 't11')?.told, 8);
  // At the reminder, everyone hears their place.
  sim.advance(600_000);
  assert.equal(new Set(positions()).size, 8);
});

test('reminders come per customer, at most NOTICES_PER_STEP a step, front of the queue first; the rest follow on quick ticks', () => {
  const sim = new Sim({ queue: queueKind });
  const told = () => {
    const out = sim.log.filter((m) => m.event.type === 'queue.position').map((m) => (m.event as unknown as { position: number }).position);
    sim.log.length = 0;
    return out;
  };
  const N = 3 * NOTICES_PER_STEP + 10;
  sim.send('queue/r', { type: 'configure', config: { reminderSec: 60 } });
  for (let i = 0; i < N; i++) sim.send('queue/r', { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now + i } });
  assert.equal(told().length, N, 'each is told its place when queued');
  sim.advance(55_000);
  assert.deepEqual(told(), [], 'nobody is due before their reminder');
  // The reminders fall due together: each step sends a bounded share, front first, ticks 50 ms apart.
  const steps = tickSteps(sim, told);
  assert.deepEqual(steps.map((s) => s.length), [NOTICES_PER_STEP, NOTICES_PER_STEP, NOTICES_PER_STEP, 10]);
  assert.deepEqual(steps.flat(), Array.from({ length: N }, (_, i) => i + 1), 'every customer once, in queue order');
  assert.equal((sim.state('queue/r').context as QueueContext).catchingUp, false);
  sim.advance(4_000);
  assert.deepEqual(told(), [], 'back to the regular tick, nobody due');
  // Customers told because they moved up are reminded a whole reminderSec after that, not with the others.
  const toldIds = () => {
    const out = sim.log.filter((m) => m.event.type === 'queue.position').map((m) => m.to.split('/')[1]);
    sim.log.length = 0;
    return new Set(out);
  };
  for (let i = 0; i < 30; i++) sim.send('queue/r', { type: 'task.cancel', taskId: `t${i}` });
  sim.advance(25_000);
  assert.equal(toldIds().size, 0, 'moved up, but told less than movedGapSec ago');
  sim.advance(5_000);
  const moved = toldIds();
  assert.ok(moved.size > 0 && moved.size <= NOTICES_PER_STEP && moved.has('t30'), `moved up: ${moved.size}`);
  sim.advance(27_000);
  const reminded = toldIds();
  assert.equal(reminded.size, N - 30 - moved.size, 'the others are reminded');
  assert.ok([...moved].every((id) => !reminded.has(id)), 'those told on moving up are not');
  sim.advance(30_000);
  assert.deepEqual(toldIds(), moved, 'their own reminder comes later');
});

test('a reminder round reaches the back of the queue even when the front is owed notices again on every step', () => {
  const sim = new Sim({ queue: queueKind });
  const N = 6 * NOTICES_PER_STEP;
  sim.send('queue/f', { type: 'configure', config: { reminderSec: 60, movedGapSec: 0 } });
  for (let i = 0; i < N; i++) sim.send('queue/f', { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now } });
  sim.advance(59_000);
  sim.log.length = 0;
  // From the reminder on, a hundred customers at the front leave before every step: those behind them
  // move up a lot each time (and movedGapSec is 0), so the front is always owed notices.
  let gone = 0;
  const last = `t${N - 1}`;
  let reached = false;
  for (let step = 0; step < 12 && !reached; step++) {
    sim.advance(step === 0 ? 1_000 : 50);
    reached = sim.log.some((m) => m.to === `conversation/${last}` && m.event.type === 'queue.position');
    for (let k = 0; k < 100; k++) sim.send('queue/f', { type: 'task.cancel', taskId: `t${gone++}` });
  }
  assert.ok(reached, 'the customer at the back was reminded within the round');
});

test('notice settings are bounded: reminders at least 5 s apart, no negative gap', () => {
  const problem = (config: object) => v.safeParse(QueueConfigSchema, config).issues?.[0].message;
  assert.equal(problem({ reminderSec: 1 }), 'reminderSec must be at least 5');
  assert.equal(problem({ movedGapSec: -1 }), 'movedGapSec must not be negative');
  assert.equal(problem({ reminderSec: 5, movedGapSec: 0 }), undefined);
});

test('a mass overflow moves at most OVERFLOWS_PER_STEP tasks a tick, front first, until every aged task has moved', () => {
  const sim = new Sim({ queue: queueKind });
  const N = 2 * OVERFLOWS_PER_STEP + 7;
  sim.send('queue/o', { type: 'configure', config: { overflow: { afterSec: 30, queue: 'spill' }, reminderSec: 3600 } });
  // All queued at once (a burst), so all pass the 30 s together.
  const at = sim.now;
  for (let i = 0; i < N; i++) sim.send('queue/o', { type: 'task.add', task: { id: `t${i}`, channel: 'email', enqueuedAt: at } });
  const moved = () => {
    const out = sim.log.filter((m) => m.to === 'queue/spill' && m.event.type === 'task.add').map((m) => (m.event as unknown as { task: { id: string } }).task.id);
    sim.log.length = 0;
    return out;
  };
  sim.advance(25_000);
  assert.deepEqual(moved(), [], 'nobody has waited 30 s yet');
  const steps = tickSteps(sim, moved);
  assert.deepEqual(steps.map((s) => s.length), [OVERFLOWS_PER_STEP, OVERFLOWS_PER_STEP, 7, 0]);
  assert.deepEqual(steps.flat(), Array.from({ length: N }, (_, i) => `t${i}`), 'each task once, in queue order');
  const c = sim.state('queue/o').context as QueueContext;
  assert.deepEqual([c.tasks.length, c.stats.overflowed, c.catchingUp], [0, N, false]);
});

test('arrivals do not hold back the tick: a queue with a task every second still overflows and reminds on time', () => {
  const sim = new Sim({ queue: queueKind });
  sim.send('queue/b', { type: 'configure', config: { overflow: { afterSec: 10, queue: 'spill' }, reminderSec: 3600 } });
  for (let i = 0; i < 30; i++) {
    sim.send('queue/b', { type: 'task.add', task: { id: `t${i}`, channel: 'email', enqueuedAt: sim.now } });
    sim.advance(1_000);
  }
  const c = sim.state('queue/b').context as QueueContext;
  // Ticks at 5, 10, … 30 s: by 30 s the tasks queued up to 20 s have moved on, the last ten still wait.
  assert.ok(c.stats.overflowed >= 19 && c.stats.overflowed <= 21, `overflowed ${c.stats.overflowed}`);
  assert.equal(c.tasks.length, 30 - c.stats.overflowed);
});

test('staffing: agents on duty for voice are the available (busy ones too) and those in wrap-up; away, offline and chat-only are not', () => {
  const sim = new Sim({ queue: queueKind });
  const worker = (id: string, presence: 'available' | 'busy' | 'wrapup' | 'away' | 'offline', voice = 1) => ({
    id,
    available: presence === 'available' || presence === 'busy',
    presence,
    skills: {},
    capacity: { voice, chat: 3, email: 5 },
    load: { voice: presence === 'busy' ? voice : 0, chat: 0, email: 0 },
    idleSince: 0,
  });
  const ask = () => {
    sim.replies.length = 0;
    sim.send('queue/s', { type: 'staffing', channel: 'voice' });
    return sim.replies.at(-1);
  };
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 0, free: 0 }, 'a queue nobody joined');
  sim.send('queue/s', { type: 'worker.update', worker: worker('away', 'away') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('gone', 'offline') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('chat', 'available', 0) });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 0, free: 0 });
  sim.send('queue/s', { type: 'worker.update', worker: worker('wrap', 'wrapup') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('busy', 'busy') });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 2, free: 0 });
  sim.send('queue/s', { type: 'worker.update', worker: worker('free', 'available') });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 3, free: 1 });
});

test('customers queued moments ago set the bound the tick checks before looking at every task', () => {
  const sim = new Sim({ queue: queueKind });
  const first = sim.now;
  for (let i = 0; i < 3; i++) {
    sim.send('queue/b', { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now } });
    sim.advance(10);
  }
  // No customer was told before the first one was: until a notice can be due, the tick does not walk the queue.
  assert.equal((sim.state('queue/b').context as QueueContext).toldSince, first);
  sim.send('queue/b', { type: 'task.cancel', taskId: 't0' });
  sim.send('queue/b', { type: 'task.cancel', taskId: 't1' });
  sim.send('queue/b', { type: 'task.cancel', taskId: 't2' });
  sim.advance(60_000);
  sim.send('queue/b', { type: 'task.add', task: { id: 't3', channel: 'webchat', enqueuedAt: sim.now } });
  assert.equal((sim.state('queue/b').context as QueueContext).toldSince, sim.now, 'an empty queue starts a new bound');
});

test('a queue that emptied mid-round starts afresh: customers queued after it are reminded on the next tick', () => {
  const sim = new Sim({ queue: queueKind });
  const Q = 'queue/s';
  const ctx = () => sim.state(Q).context as QueueContext;
  const reminded = () => {
    const out = sim.log.filter((m) => m.event.type === 'queue.position').map((m) => m.to);
    sim.log.length = 0;
    return out;
  };
  sim.send(Q, { type: 'configure', config: { reminderSec: 60 } });
  const N = NOTICES_PER_STEP + 50;
  for (let i = 0; i < N; i++) sim.send(Q, { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now + i } });
  sim.advance(60_000);
  assert.equal(ctx().catchingUp, true, 'a round of reminders is half done');
  for (let i = 0; i < N; i++) sim.send(Q, { type: 'task.cancel', taskId: `t${i}` });
  // Mail held up for two minutes (an outage) arrives: customers queued 120 s ago and told nothing since.
  const old = sim.now - 120_000;
  for (let i = 0; i < 10; i++) sim.send(Q, { type: 'task.add', at: old, task: { id: `n${i}`, channel: 'webchat', enqueuedAt: old + i } });
  reminded();
  sim.advance(5_000);
  assert.deepEqual(reminded(), Array.from({ length: 10 }, (_, i) => `conversation/n${i}`));
});

test('supervisors see a queue that empties within the throttle, and every change of an empty queue, at once', () => {
  const sim = new Sim({ queue: queueKind });
  const live = () => sim.notices.filter((n) => n.subject === 'cc.live.queue.s').map((n) => n.data as { waiting: number; offering: number; agentsAvailable: number });
  const worker = (id: string, available: boolean) => ({ id, available, skills: {}, capacity: { voice: 1, chat: 3, email: 5 }, load: { voice: 0, chat: 0, email: 0 }, idleSince: 0, held: [] });
  sim.send('queue/s', { type: 'configure', config: {} });
  sim.advance(1_000);
  sim.send('queue/s', { type: 'task.add', task: { id: 't1', channel: 'webchat', enqueuedAt: sim.now } });
  assert.equal(live().at(-1)?.waiting, 1);
  sim.advance(100);
  // Within 250 ms of the last view the queue empties (the customer left): no tick is left to show it.
  sim.send('queue/s', { type: 'task.cancel', taskId: 't1' });
  assert.equal(String(sim.state('queue/s').value), 'idle');
  assert.deepEqual(live().at(-1), { ...live().at(-1), waiting: 0, offering: 0 }, 'the last view is of the empty queue');
  // Agents coming and going in an empty queue show at once, however close together.
  sim.send('queue/s', { type: 'worker.update', worker: worker('ann', true) });
  sim.send('queue/s', { type: 'worker.update', worker: worker('bob', true) });
  assert.equal(live().at(-1)?.agentsAvailable, 2);
  sim.send('queue/s', { type: 'worker.update', worker: worker('ann', false) });
  assert.equal(live().at(-1)?.agentsAvailable, 1);
  sim.advance(60_000);
  assert.equal(live().at(-1)?.agentsAvailable, 1, 'and nothing stale comes after');
});

test('longest wait: the customer waiting longest, whatever their group, and while an agent is offered them', () => {
  const sim = new Sim({ queue: queueKind });
  const longest = () => (sim.notices.filter((n) => n.subject === 'cc.live.queue.lw').at(-1)!.data as { longestWaitSec: number }).longestWaitSec;
  const ann = (load: number) => ({ id: 'ann', available: true, skills: { en: 1 }, capacity: { voice: 0, chat: 1, email: 0 }, load: { voice: 0, chat: load, email: 0 }, idleSince: 0, held: [] });
  sim.send('queue/lw', { type: 'configure', config: {} });
  sim.send('queue/lw', { type: 'task.add', task: { id: 'old', channel: 'webchat', language: 'en', enqueuedAt: sim.now } });
  sim.advance(10_000);
  sim.send('queue/lw', { type: 'task.add', task: { id: 'vip', channel: 'webchat', tier: 'vip', language: 'zh', enqueuedAt: sim.now } });
  sim.advance(20_000);
  sim.send('queue/lw', { type: 'task.add', task: { id: 'mail', channel: 'email', enqueuedAt: sim.now } });
  assert.equal(longest(), 30);
  // ann speaks English: she is offered the oldest; until she answers, that customer still waits.
  sim.send('queue/lw', { type: 'worker.update', worker: ann(0) });
  const offer = sim.log.filter((m) => m.to === 'agent/ann' && m.event.type === 'reserve').at(-1)!.event as unknown as { reservationId: string; task: { id: string } };
  assert.equal(offer.task.id, 'old');
  sim.advance(5_000);
  assert.equal(longest(), 35);
  sim.send('queue/lw', { type: 'worker.update', worker: ann(1) });
  sim.send('queue/lw', { type: 'reservation.accepted', reservationId: offer.reservationId, taskId: 'old', agent: 'ann' });
  sim.advance(5_000);
  assert.equal(longest(), 30, 'then the VIP, queued 10 s after');
});

test('service level: answered within it, of those answered and those who left after waiting longer than it', () => {
  const sim = new Sim({ queue: queueKind });
  const view = () => (sim.notices.filter((n) => n.subject === 'cc.live.queue.sl').at(-1)!.data as { serviceLevelPct: number; stats: QueueContext['stats'] });
  const free = (load: number) => sim.send('queue/sl', { type: 'worker.update', worker: { id: 'ann', available: true, skills: {}, capacity: { voice: 0, chat: 1, email: 0 }, load: { voice: 0, chat: load, email: 0 }, idleSince: 0, held: [] } });
  const accept = () => {
    const r = sim.log.filter((m) => m.to === 'agent/ann' && m.event.type === 'reserve').at(-1)!.event as unknown as { reservationId: string; task: { id: string } };
    free(1);
    sim.send('queue/sl', { type: 'reservation.accepted', reservationId: r.reservationId, taskId: r.task.id, agent: 'ann' });
  };
  sim.send('queue/sl', { type: 'configure', config: { serviceLevelSec: 30 } });
  for (const id of ['t1', 't2', 't3']) sim.send('queue/sl', { type: 'task.add', task: { id, channel: 'webchat', enqueuedAt: sim.now } });
  sim.advance(10_000);
  free(0);
  accept(); // t1, after 10 s: within
  sim.advance(40_000);
  sim.send('queue/sl', { type: 'task.cancel', taskId: 't2' }); // left after 50 s: missed
  sim.send('queue/sl', { type: 'task.add', task: { id: 't4', channel: 'webchat', enqueuedAt: sim.now } });
  sim.advance(5_000);
  sim.send('queue/sl', { type: 'task.cancel', taskId: 't4' }); // left after 5 s: not counted
  assert.equal(view().stats.abandonedLate, 1);
  assert.equal(view().serviceLevelPct, 50);
  free(0);
  accept(); // t3, after 56 s: late
  sim.advance(1_000);
  free(1);
  assert.equal(view().stats.assigned, 2);
  assert.equal(view().serviceLevelPct, 33.3);
});
