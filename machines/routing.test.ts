// Routing as pure functions, then the agent, queue and conversation machines together in a
// deterministic in-process simulation (tests/support/sim.ts): offers, accept, reject, timeout, transfers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { WRAPUP_RAN_OUT, agentKind, type AgentContext } from './agent.ts';
import { conversationKind, type ConversationContext } from './conversation.ts';
import { customerKind } from './customer.ts';
import { queueKind, type QueueContext } from './queue.ts';
import { QueueConfigSchema, TaskSchema, bestWorker, evaluate, insertSorted, priority, type Task, type Worker } from './routing.ts';
import { Sim } from '../tests/support/sim.ts';

const cfg = v.parse(QueueConfigSchema, {});
const task = (over: Partial<Task> & { id: string }): Task => v.parse(TaskSchema, { channel: 'webchat', enqueuedAt: 0, ...over });
const worker = (id: string, over: Partial<Worker> = {}): Worker => ({
  id,
  available: true,
  skills: {},
  capacity: { voice: 1, chat: 3, email: 5 },
  load: { voice: 0, chat: 0, email: 0 },
  idleSince: 0,
  held: [],
  ...over,
});

describe('routing functions', () => {
  test('VIP and urgent first, then voice, then longest wait; a normal task overtakes a VIP after waiting long enough', () => {
    let q: Task[] = [];
    q = insertSorted(q, task({ id: 'normal-old', enqueuedAt: 0 }), cfg);
    q = insertSorted(q, task({ id: 'normal-new', enqueuedAt: 5_000 }), cfg);
    q = insertSorted(q, task({ id: 'voice', channel: 'voice', enqueuedAt: 10_000 }), cfg);
    q = insertSorted(q, task({ id: 'vip', tier: 'vip', enqueuedAt: 20_000 }), cfg);
    q = insertSorted(q, task({ id: 'urgent', urgent: true, enqueuedAt: 30_000 }), cfg);
    assert.deepEqual(q.map((t) => t.id), ['vip', 'urgent', 'voice', 'normal-old', 'normal-new']);
    // Starvation is bounded: after agingSec (600 s) more of waiting a normal task outranks a fresh VIP.
    const old = task({ id: 'old', enqueuedAt: 0 });
    const fresh = task({ id: 'fresh', tier: 'vip', enqueuedAt: 601_000 });
    assert.ok(priority(old, 601_000, cfg) > priority(fresh, 601_000, cfg));
    assert.deepEqual(insertSorted([fresh], old, cfg).map((t) => t.id), ['old', 'fresh']);
  });

  test('target expressions over task attributes', () => {
    const attrs = { channel: 'webchat', tier: 'vip', skills: ['after-sales'], waitSec: 40 };
    assert.ok(evaluate({ all: [{ attr: 'channel', op: 'in', value: ['webchat', 'app'] }, { attr: 'skills', op: 'has', value: 'after-sales' }] }, attrs));
    assert.ok(evaluate({ any: [{ attr: 'tier', op: 'eq', value: 'normal' }, { attr: 'waitSec', op: 'gte', value: 30 }] }, attrs));
    assert.ok(!evaluate({ not: { attr: 'tier', op: 'eq', value: 'vip' } }, attrs));
    assert.ok(!evaluate({ attr: 'waitSec', op: 'lt', value: 10 }, attrs));
  });

  test('agent choice: skill level first, then longest idle; every pass-over has a reason', () => {
    const t = task({ id: 't', skills: [{ name: 'after-sales', level: 2 }], language: 'zh' });
    const ws = [
      worker('junior', { skills: { 'after-sales': 1, zh: 1 }, idleSince: 0 }),
      worker('senior-recent', { skills: { 'after-sales': 4, zh: 1 }, idleSince: 50 }),
      worker('senior-idle', { skills: { 'after-sales': 4, zh: 1 }, idleSince: 10 }),
      worker('english', { skills: { 'after-sales': 5, en: 1 } }),
      worker('full', { skills: { 'after-sales': 5, zh: 1 }, load: { voice: 0, chat: 3, email: 0 } }),
      worker('away', { available: false, skills: { 'after-sales': 5, zh: 1 } }),
    ];
    const r = bestWorker(t, ws, 1000, cfg);
    assert.equal(r.worker?.id, 'senior-idle');
    const why = Object.fromEntries(r.explanation!.others.map((o) => [o.agent, o.reason]));
    assert.match(why.junior, /skill after-sales:1 below 2/);
    assert.match(why.english, /does not speak zh/);
    assert.match(why.full, /no free chat slot \(3\/3\)/);
    assert.match(why.away, /not available/);
    assert.match(r.explanation!.rule, /step 0 \(exact/);
  });

  test('escalation widens the match as the task waits', () => {
    const steps = v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 30, match: 'any-level' }, { afterSec: 60, match: 'anyone' }] });
    const t = task({ id: 't', skills: [{ name: 'finance', level: 3 }], language: 'en' });
    const ws = [worker('low', { skills: { finance: 1, en: 1 } }), worker('none', { skills: { zh: 1 } })];
    assert.equal(bestWorker(t, ws, 10_000, steps).worker, undefined);
    assert.equal(bestWorker(t, ws, 31_000, steps).worker?.id, 'low');
    assert.match(bestWorker(t, ws, 31_000, steps).explanation!.rule, /step 1 \(any-level/);
    assert.equal(bestWorker(t, [ws[1]], 61_000, steps).worker?.id, 'none');
  });

  test('the language-only step drops the skills but keeps the language', () => {
    const cfg = v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 20, match: 'language-only' }] });
    const t = task({ id: 't', skills: [{ name: 'finance', level: 2 }], language: 'zh' });
    const ws = [worker('en-finance', { skills: { finance: 5, en: 1 } }), worker('zh-only', { skills: { zh: 1 } })];
    assert.equal(bestWorker(t, ws, 10_000, cfg).worker, undefined);
    const r = bestWorker(t, ws, 21_000, cfg);
    assert.equal(r.worker?.id, 'zh-only');
    assert.match(r.explanation!.rule, /step 1 \(language-only/);
    assert.deepEqual(r.explanation!.others, [{ agent: 'en-finance', reason: 'does not speak zh' }]);
  });

  test('an agent without a configured capacity takes 1 voice, 3 chats and 5 emails', () => {
    const sim = new Sim({ agent: agentKind });
    sim.send('agent/new', { type: 'login' });
    assert.deepEqual(ctx<AgentContext>(sim, 'agent/new').capacity, { voice: 1, chat: 3, email: 5 });
  });
});

const kinds = { agent: agentKind, queue: queueKind, conversation: conversationKind };
const ctx = <T>(sim: Sim, a: string) => sim.state(a).context as T;
const value = (sim: Sim, a: string) => String(sim.state(a).value);

function setup(sim: Sim, agents: { id: string; skills?: Record<string, number>; capacity?: { voice: number; chat: number; email: number } }[], queue = 'support') {
  sim.send(`queue/${queue}`, { type: 'configure', config: v.parse(QueueConfigSchema, { reminderSec: 30 }) });
  for (const a of agents) {
    sim.send(`agent/${a.id}`, { type: 'profile.set', skills: a.skills ?? { zh: 1 }, capacity: a.capacity, queues: [queue], offerTimeoutMs: 20_000, maxMisses: 2, maxWrapUpMs: 10_000 });
    sim.send(`agent/${a.id}`, { type: 'login' });
  }
}

describe('agent, queue and conversation together', () => {
  test('a chat is offered to the best agent, accepted, answered, wrapped up and closed', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann', skills: { zh: 1, 'after-sales': 3 } }, { id: 'bob', skills: { zh: 1 } }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support', skills: [{ name: 'after-sales', level: 2 }], language: 'zh' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    const ann = ctx<AgentContext>(sim, 'agent/ann');
    assert.equal(ann.load.chat, 1);
    const [rid] = Object.keys(ann.offers);
    // Offered at once: no place in the queue to tell (an SMS or email customer would pay for the noise).
    assert.ok(!sim.log.some((m) => m.to === 'conversation/c1' && m.event.type === 'queue.position'));
    sim.send('agent/ann', { type: 'offer.accept', reservationId: rid });
    assert.equal(value(sim, 'conversation/c1'), 'active');
    const q = ctx<QueueContext>(sim, 'queue/support');
    assert.equal(q.tasks.length, 0);
    assert.equal(q.stats.assigned, 1);
    assert.match(q.last!.why, /chose ann/);
    sim.send('conversation/c1', { type: 'agent.message' });
    sim.send('conversation/c1', { type: 'wrapup' });
    sim.send('conversation/c1', { type: 'close', disposition: 'solved' });
    assert.equal(value(sim, 'conversation/c1'), 'closed');
    assert.equal(ctx<AgentContext>(sim, 'agent/ann').load.chat, 0);
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').breaches.length, 0);
  });

  test('reject and timeout re-offer to someone else; missed offers set the agent away', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }, { id: 'bob' }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    const first = ctx<ConversationContext>(sim, 'conversation/c1').agent!;
    const other = first === 'ann' ? 'bob' : 'ann';
    const [rid] = Object.keys(ctx<AgentContext>(sim, `agent/${first}`).offers);
    sim.send(`agent/${first}`, { type: 'offer.reject', reservationId: rid, reason: 'busy' });
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').agent, other);
    assert.equal(ctx<AgentContext>(sim, `agent/${first}`).load.chat, 0);
    // The other agent lets it time out twice (two conversations): maxMisses 2 sets them away.
    sim.send(`agent/${first}`, { type: 'presence.set', presence: 'away', reason: 'break' });
    sim.advance(20_001);
    assert.equal(ctx<QueueContext>(sim, 'queue/support').stats.timeouts, 1);
    sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'webchat', queue: 'support' });
    sim.advance(20_001);
    assert.equal(value(sim, `agent/${other}`), 'away');
    assert.equal(ctx<AgentContext>(sim, `agent/${other}`).reason, 'missed offers');
    assert.ok(ctx<AgentContext>(sim, `agent/${other}`).durations.available >= 40_000);
  });

  test('a customer every agent declined is offered again after reofferSec, not left waiting for ever', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    const [rid] = Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers);
    sim.send('agent/ann', { type: 'offer.reject', reservationId: rid, reason: 'busy' });
    assert.equal(value(sim, 'conversation/c1'), 'waiting');
    // Others first: a newer chat goes to ann while c1 waits out her decline.
    sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'webchat', queue: 'support' });
    assert.equal(value(sim, 'conversation/c2'), 'offered');
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    sim.advance(50_000);
    assert.equal(value(sim, 'conversation/c1'), 'waiting');
    assert.deepEqual(ctx<QueueContext>(sim, 'queue/support').tasks.at(0)?.excluded, ['ann']);
    // reofferSec (60 s by default) after the decline, on the queue's next tick, she is asked again.
    sim.advance(15_000);
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').agent, 'ann');
    const q = ctx<QueueContext>(sim, 'queue/support');
    assert.deepEqual(q.tasks.at(0)?.excluded, []);
    assert.equal(q.reofferAt, null);
    assert.equal(q.stats.rejected, 1);
  });

  test('an agent freed and offered a waiting task: the explanation says why not the others', () => {
    const sim = new Sim(kinds);
    const one = { voice: 0, chat: 1, email: 0 };
    setup(sim, [{ id: 'ann', capacity: one }, { id: 'bob', capacity: one }, { id: 'cat', capacity: one }]);
    sim.send('agent/cat', { type: 'presence.set', presence: 'away', reason: 'break' });
    for (const c of ['c1', 'c2', 'c3']) sim.send(`conversation/${c}`, { type: 'open', customer: `u-${c}`, channel: 'webchat', queue: 'support' });
    for (const a of ['ann', 'bob']) sim.send(`agent/${a}`, { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, `agent/${a}`).offers)[0] });
    assert.equal(value(sim, 'conversation/c3'), 'queued');
    const first = ctx<ConversationContext>(sim, 'conversation/c1').agent!;
    const other = first === 'ann' ? 'bob' : 'ann';
    sim.send('conversation/c1', { type: 'wrapup' });
    sim.send('conversation/c1', { type: 'close' });
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c3').agent, first);
    const why = ctx<QueueContext>(sim, 'queue/support').last!;
    assert.equal(why.task, 'c3');
    assert.deepEqual(why.passed, { 'no free chat slot': 1, 'not available': 1 });
    const reasons = Object.fromEntries(why.others.map((o) => [o.agent, o.reason]));
    assert.deepEqual(reasons, { [other]: 'no free chat slot (1/1)', cat: 'not available' });
  });

  test("a chat left in wrap-up is closed by the agent's timer, and its slot freed", () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann', capacity: { voice: 0, chat: 1, email: 0 } }]);
    sim.send('agent/ann', { type: 'profile.set', maxConversationWrapUpMs: 120_000 });
    const take = (id: string) => {
      sim.send(`conversation/${id}`, { type: 'open', customer: `u-${id}`, channel: 'webchat', queue: 'support' });
      sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
      sim.send(`conversation/${id}`, { type: 'agent.message' });
      sim.send(`conversation/${id}`, { type: 'wrapup' });
    };
    // Closed in time: the timer is cancelled and never closes anything later.
    take('c1');
    sim.advance(30_000);
    sim.send('conversation/c1', { type: 'close', disposition: 'solved' });
    // Left in wrap-up: the slot is held (c3 waits) until the limit, then the conversation closes.
    take('c2');
    sim.send('conversation/c3', { type: 'open', customer: 'u-c3', channel: 'webchat', queue: 'support' });
    sim.advance(119_000);
    assert.equal(value(sim, 'conversation/c2'), 'wrapup');
    assert.equal(value(sim, 'conversation/c3'), 'queued');
    sim.advance(2_000);
    assert.equal(value(sim, 'conversation/c2'), 'closed');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c2').disposition, WRAPUP_RAN_OUT);
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').disposition, 'solved');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c3').agent, 'ann');
    assert.equal(sim.log.filter((m) => m.event.type === 'close' && m.to === 'conversation/c1').length, 1);
  });

  test('a queue configured before reofferSec existed offers a declined task again after the default', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    // As stored then: the parsed config had no reofferSec.
    delete (ctx<QueueContext>(sim, 'queue/support').config as Partial<QueueContext['config']>).reofferSec;
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    sim.send('agent/ann', { type: 'offer.reject', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0], reason: 'busy' });
    assert.ok(Number.isFinite(ctx<QueueContext>(sim, 'queue/support').reofferAt));
    sim.advance(65_000);
    assert.equal(value(sim, 'conversation/c1'), 'offered');
  });

  test('a queue that stood empty overnight does not tell the next customers it is slow', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann', capacity: { voice: 0, chat: 1, email: 0 } }]);
    const told = (id: string) => sim.log.filter((m) => m.to === `conversation/${id}` && m.event.type === 'queue.position').map((m) => (m.event as unknown as { estimatedWaitSec: number }).estimatedWaitSec);
    const accept = () => sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    const close = (id: string) => {
      sim.send(`conversation/${id}`, { type: 'wrapup' });
      sim.send(`conversation/${id}`, { type: 'close' });
    };
    // An evening at one answer every 30 s…
    for (let k = 0; k < 4; k++) sim.send(`conversation/e${k}`, { type: 'open', customer: `e${k}`, channel: 'webchat', queue: 'support' });
    for (let k = 0; k < 4; k++) {
      accept();
      sim.advance(30_000);
      close(`e${k}`);
    }
    // …then twelve hours with nobody waiting, and three chats in the morning.
    sim.advance(12 * 3600_000);
    for (const id of ['m1', 'm2', 'm3']) sim.send(`conversation/${id}`, { type: 'open', customer: id, channel: 'webchat', queue: 'support' });
    accept();
    assert.ok(told('m2')[0] <= 120, `m2 told ${told('m2')[0]} s for the second place`);
    sim.advance(30_000);
    close('m1');
    accept();
    assert.ok(1 / ctx<QueueContext>(sim, 'queue/support').rate < 120, 'the night did not enter the pace');
  });

  test('the wait estimate follows the pace of answers, and grows when agents stop taking work', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann', capacity: { voice: 0, chat: 1, email: 0 } }]);
    const estimates = (id: string) => sim.log.filter((m) => m.to === `conversation/${id}` && m.event.type === 'queue.position').map((m) => (m.event as unknown as { estimatedWaitSec: number }).estimatedWaitSec);
    const accept = () => sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    // One answered at once, then one every 20 s.
    for (let k = 0; k < 6; k++) sim.send(`conversation/c${k}`, { type: 'open', customer: `u${k}`, channel: 'webchat', queue: 'support' });
    for (let k = 0; k < 4; k++) {
      accept();
      sim.advance(20_000);
      sim.send(`conversation/c${k}`, { type: 'wrapup' });
      sim.send(`conversation/c${k}`, { type: 'close' });
    }
    accept(); // c4; c5 is next
    const paced = ctx<QueueContext>(sim, 'queue/support');
    // The answer moments after the first did not make the pace look a thousand times faster.
    assert.ok(1 / paced.rate > 5 && 1 / paced.rate <= 20, `interval ${1 / paced.rate} s`);
    sim.log.length = 0;
    // ann keeps c4 for ten minutes: c5's reminders (every 30 s) say longer and longer.
    sim.advance(600_000);
    const told = estimates('c5');
    assert.ok(told.length >= 10, `${told.length} reminders`);
    assert.ok(told[0] <= 40, `first reminder ${told[0]} s`);
    assert.ok(told.at(-1)! >= 570, `last reminder ${told.at(-1)} s`);
    assert.deepEqual([...told].sort((a, b) => a - b), told, 'never shorter than the one before');
  });

  test('hold and resume; direct transfers an agent refuses or rejects go to the queue; a call from the chat declined goes there too', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }, { id: 'bob' }]);
    sim.send('agent/bob', { type: 'presence.set', presence: 'away', reason: 'lunch' });
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    const accept = (agent: string) => sim.send(`agent/${agent}`, { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, `agent/${agent}`).offers)[0] });
    accept('ann');
    sim.send('conversation/c1', { type: 'hold' });
    assert.equal(value(sim, 'conversation/c1'), 'onHold');
    sim.send('conversation/c1', { type: 'resume' });
    assert.equal(value(sim, 'conversation/c1'), 'active');
    // To bob, who is away: refused, so to the queue, where ann (freed by the transfer) is offered it.
    sim.send('conversation/c1', { type: 'transfer', to: 'agent/bob', note: 'billing question' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').agent, 'ann');
    accept('ann');
    // To bob, now back, who rejects it: to the queue again.
    sim.send('agent/bob', { type: 'presence.set', presence: 'available' });
    sim.send('conversation/c1', { type: 'transfer', to: 'agent/bob', note: 'billing, second try' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').agent, 'bob');
    sim.send('agent/bob', { type: 'offer.reject', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/bob').offers)[0], reason: 'not mine' });
    assert.ok(sim.log.some((m) => m.to === 'conversation/c1' && m.event.type === 'reservation.rejected'));
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    const c1 = ctx<ConversationContext>(sim, 'conversation/c1');
    assert.deepEqual(c1.transfers.map((t) => [t.from, t.to, t.note]), [['agent/ann', 'agent/bob', 'billing question'], ['agent/ann', 'agent/bob', 'billing, second try']]);
    accept(c1.agent!);
    // A call from the chat: its agent is offered the voice task first; declined, it goes to the queue, voice first.
    const holder = ctx<ConversationContext>(sim, 'conversation/c1').agent!;
    sim.send('conversation/c1', { type: 'call.request', callId: 'call-1' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    sim.send(`agent/${holder}`, { type: 'offer.reject', reservationId: 'c1-call-1', reason: 'cannot talk now' });
    assert.ok(['queued', 'offered'].includes(value(sim, 'conversation/c1')));
    assert.ok(sim.log.some((m) => m.to === 'queue/support' && m.event.type === 'task.add' && (m.event as unknown as { task: Task }).task.channel === 'voice'));
  });

  test('a customer who leaves after a re-queue is taken off the queue; an answer that overtakes its offer still assigns', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    sim.send('agent/ann', { type: 'offer.reject', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0], reason: 'busy' });
    assert.equal(value(sim, 'conversation/c1'), 'waiting');
    sim.send('conversation/c1', { type: 'customer.left' });
    assert.equal(value(sim, 'conversation/c1'), 'closed');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').outcome, 'abandoned');
    assert.equal(ctx<QueueContext>(sim, 'queue/support').tasks.length, 0);
    // `assigned` can reach a conversation before its `offered` (two senders): it is taken in queued and in waiting.
    sim.send('agent/ann', { type: 'presence.set', presence: 'away' });
    for (const id of ['c2', 'c3']) sim.send(`conversation/${id}`, { type: 'open', customer: `u-${id}`, channel: 'webchat', queue: 'support' });
    sim.send('conversation/c2', { type: 'assigned', agent: 'ann', reservationId: 'r-2' });
    assert.equal(value(sim, 'conversation/c2'), 'active');
    sim.send('conversation/c3', { type: 'requeued', agent: 'ann', reason: 'timeout' });
    sim.send('conversation/c3', { type: 'offered', agent: 'ann', reservationId: 'r-3' });
    sim.send('conversation/c3', { type: 'requeued', agent: 'ann', reason: 'timeout' });
    assert.equal(value(sim, 'conversation/c3'), 'waiting');
    sim.send('conversation/c3', { type: 'assigned', agent: 'ann', reservationId: 'r-3b' });
    assert.equal(value(sim, 'conversation/c3'), 'active');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c3').outcome, 'assigned');
  });

  test('capacity per channel is never exceeded; voice before digital; VIP first', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'solo', capacity: { voice: 1, chat: 2, email: 1 } }]);
    sim.send('agent/solo', { type: 'presence.set', presence: 'away', reason: 'lunch' });
    sim.send('conversation/n1', { type: 'open', customer: 'a', channel: 'webchat', queue: 'support' });
    sim.advance(1000);
    sim.send('conversation/n2', { type: 'open', customer: 'b', channel: 'webchat', queue: 'support' });
    sim.send('conversation/v1', { type: 'open', customer: 'c', channel: 'voice', queue: 'support' });
    sim.send('conversation/vip', { type: 'open', customer: 'd', channel: 'webchat', queue: 'support', tier: 'vip' });
    assert.deepEqual(ctx<QueueContext>(sim, 'queue/support').tasks.map((t) => t.id), ['vip', 'v1', 'n1', 'n2']);
    sim.send('agent/solo', { type: 'presence.set', presence: 'available' });
    const a = ctx<AgentContext>(sim, 'agent/solo');
    assert.deepEqual(Object.values(a.offers).map((o) => o.task.id).sort(), ['n1', 'v1', 'vip']);
    assert.deepEqual(a.load, { voice: 1, chat: 2, email: 0 });
    assert.equal(value(sim, 'conversation/n2'), 'queued');
  });

  test('transfer to a queue and to an agent keep one conversation and release the old agent', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    setup(sim, [{ id: 'bob' }], 'billing');
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    sim.send('conversation/c1', { type: 'transfer', to: 'queue/billing', note: 'refund question' });
    assert.equal(ctx<AgentContext>(sim, 'agent/ann').load.chat, 0);
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').agent, 'bob');
    sim.send('agent/bob', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/bob').offers)[0] });
    sim.send('conversation/c1', { type: 'transfer', to: 'agent/ann', note: 'back to you' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    const c = ctx<ConversationContext>(sim, 'conversation/c1');
    assert.equal(value(sim, 'conversation/c1'), 'active');
    assert.equal(c.agent, 'ann');
    assert.deepEqual(c.transfers.map((t) => [t.from, t.to, t.note]), [['agent/ann', 'queue/billing', 'refund question'], ['agent/bob', 'agent/ann', 'back to you']]);
    assert.equal(ctx<AgentContext>(sim, 'agent/bob').load.chat, 0);
  });

  test('chat escalated to voice stays one conversation and moves the agent load', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    sim.send('conversation/c1', { type: 'channel.switch', channel: 'voice' });
    const c = ctx<ConversationContext>(sim, 'conversation/c1');
    assert.deepEqual(c.channels.map((x) => x.channel), ['webchat', 'voice']);
    assert.deepEqual(ctx<AgentContext>(sim, 'agent/ann').load, { voice: 1, chat: 0, email: 0 });
    // After a voice task the agent gets wrap-up time, ended by the durable timer.
    sim.send('conversation/c1', { type: 'wrapup' });
    sim.send('conversation/c1', { type: 'close' });
    assert.equal(value(sim, 'agent/ann'), 'wrapup');
    sim.advance(10_001);
    assert.equal(value(sim, 'agent/ann'), 'available');
  });

  test('SLA timers: first response breached when nobody answers in time; a reply stops the next-response clock', () => {
    const sim = new Sim(kinds);
    setup(sim, [{ id: 'ann' }]);
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support', slaFirstSec: 30, slaNextSec: 60 });
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    sim.advance(31_000);
    assert.deepEqual(ctx<ConversationContext>(sim, 'conversation/c1').breaches.map((b) => b.kind), ['first']);
    sim.send('conversation/c1', { type: 'agent.message' });
    sim.send('conversation/c1', { type: 'customer.message' });
    sim.advance(30_000);
    sim.send('conversation/c1', { type: 'agent.message' });
    sim.advance(60_000);
    assert.deepEqual(ctx<ConversationContext>(sim, 'conversation/c1').breaches.map((b) => b.kind), ['first']);
    sim.send('conversation/c1', { type: 'customer.message' });
    sim.advance(61_000);
    assert.deepEqual(ctx<ConversationContext>(sim, 'conversation/c1').breaches.map((b) => b.kind), ['first', 'next']);
  });

  test('a waiting customer made VIP moves to the front of the queue at once and is offered first', () => {
    const sim = new Sim({ ...kinds, customer: customerKind });
    sim.send('queue/support', { type: 'configure', config: v.parse(QueueConfigSchema, {}) });
    for (const [c, u] of [['c1', 'u1'], ['c2', 'u2'], ['c3', 'u3']]) {
      sim.send(`conversation/${c}`, { type: 'open', customer: u, channel: 'webchat', queue: 'support' });
      sim.advance(1_000);
    }
    const order = () => ctx<QueueContext>(sim, 'queue/support').tasks.map((t) => t.id);
    assert.deepEqual(order(), ['c1', 'c2', 'c3'], 'longest wait first');
    sim.send('customer/u3', { type: 'tier.set', tier: 'vip' });
    assert.deepEqual(order(), ['c3', 'c1', 'c2'], 'the VIP jumps the queue');
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c3').task?.tier, 'vip', 'and keeps the tier for a requeue');
    // Among VIPs the longest wait first; back to normal, a task takes its place by its wait again.
    sim.send('customer/u2', { type: 'tier.set', tier: 'vip' });
    assert.deepEqual(order(), ['c2', 'c3', 'c1']);
    sim.send('customer/u2', { type: 'tier.set', tier: 'normal' });
    assert.deepEqual(order(), ['c3', 'c1', 'c2']);
    setup(sim, [{ id: 'ann' }]);
    const first = sim.log.find((m) => m.to === 'agent/ann' && m.event.type === 'reserve');
    assert.equal((first?.event as unknown as { task: { id: string } }).task.id, 'c3', 'the VIP is offered first');
  });

  test("two queues never both get an agent's last free slot: the agent holds one reservation and refuses the other", () => {
    const sim = new Sim(kinds);
    for (const q of ['sales', 'support']) sim.send(`queue/${q}`, { type: 'configure', config: v.parse(QueueConfigSchema, {}) });
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'sales' });
    sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'webchat', queue: 'support' });
    // One chat slot, two queues: both hear at once that it is free, and both reserve it before the agent answers either.
    sim.send('agent/ann', { type: 'profile.set', skills: { zh: 1 }, capacity: { voice: 0, chat: 1, email: 0 }, queues: ['sales', 'support'], offerTimeoutMs: 20_000 });
    sim.send('agent/ann', { type: 'login' });
    const reserves = sim.log.filter((m) => m.to === 'agent/ann' && m.event.type === 'reserve');
    assert.equal(reserves.length, 2, 'both queues offered');
    const refusals = sim.log.filter((m) => m.event.type === 'reservation.refused');
    assert.equal(refusals.length, 1, 'one was refused');
    const ann = ctx<AgentContext>(sim, 'agent/ann');
    assert.equal(ann.load.chat, 1);
    assert.equal(Object.keys(ann.offers).length, 1);
    const refusedBy = refusals[0].to.split('/')[1];
    const q = ctx<QueueContext>(sim, `queue/${refusedBy}`);
    assert.equal(q.stats.refused, 1);
    assert.equal(q.tasks.length, 1, 'its task waits for the next free agent');
    assert.equal(value(sim, refusedBy === 'sales' ? 'conversation/c1' : 'conversation/c2'), 'queued');
  });

  test('SLA clocks stop when the conversation ends: abandoned or refused while waiting, closed from hold; a reopen starts them again', () => {
    const sim = new Sim(kinds);
    const breaches = (id: string) => ctx<ConversationContext>(sim, `conversation/${id}`).breaches.map((b) => b.kind);
    const published = (id: string) => sim.notices.filter((n) => n.subject === `cc.live.sla.${id}`).length;
    sim.send('queue/support', { type: 'configure', config: v.parse(QueueConfigSchema, {}) });
    sim.send('queue/voice-only', { type: 'configure', config: v.parse(QueueConfigSchema, { target: { attr: 'channel', op: 'eq', value: 'voice' } }) });
    // No agent on duty: c1 waits, then its customer leaves; c2 is refused by the queue's target.
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support', slaFirstSec: 30, slaNextSec: 60 });
    sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'email', queue: 'voice-only', slaFirstSec: 30 });
    assert.equal(value(sim, 'conversation/c2'), 'closed');
    sim.advance(10_000);
    sim.send('conversation/c1', { type: 'customer.left' });
    assert.equal(value(sim, 'conversation/c1'), 'closed');
    sim.advance(120_000);
    assert.deepEqual(breaches('c1'), [], 'nobody owes an answer to a customer who left');
    assert.deepEqual(breaches('c2'), [], 'nor to one the queue refused');
    assert.equal(published('c1') + published('c2'), 0, 'and supervisors are not told of a breach');
    // c3: answered, then the customer writes again; the agent holds, wraps up and closes without replying.
    setup(sim, [{ id: 'ann' }]);
    sim.send('conversation/c3', { type: 'open', customer: 'u3', channel: 'webchat', queue: 'support', slaFirstSec: 30, slaNextSec: 60 });
    sim.send('agent/ann', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/ann').offers)[0] });
    sim.send('conversation/c3', { type: 'agent.message' });
    sim.send('conversation/c3', { type: 'customer.message' });
    sim.send('conversation/c3', { type: 'hold' });
    sim.send('conversation/c3', { type: 'wrapup' });
    sim.send('conversation/c3', { type: 'close', disposition: 'solved' });
    sim.advance(120_000);
    assert.deepEqual(breaches('c3'), [], 'a closed conversation breaches nothing');
    // A timer already due when it closed (or one a snapshot from before this rule still holds) is ignored.
    sim.send('conversation/c3', { type: 'sla.next' });
    sim.send('conversation/c3', { type: 'sla.first' });
    assert.deepEqual(breaches('c3'), []);
    // c1 comes back (within the reopen window) and nobody has ever answered it: the first-response clock runs again.
    sim.send('agent/ann', { type: 'presence.set', presence: 'away' });
    sim.send('conversation/c1', { type: 'customer.message' });
    assert.equal(value(sim, 'conversation/c1'), 'queued');
    sim.advance(31_000);
    assert.deepEqual(breaches('c1'), ['first']);
    assert.equal(published('c1'), 1);
  });

  test('overflow to another queue after waiting; a closed conversation reopens on a new customer message', () => {
    const sim = new Sim(kinds);
    sim.send('queue/support', { type: 'configure', config: v.parse(QueueConfigSchema, { overflow: { afterSec: 10, queue: 'backup' } }) });
    setup(sim, [{ id: 'bob' }], 'backup');
    sim.send('agent/bob', { type: 'presence.set', presence: 'away' });
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'support' });
    sim.advance(11_000);
    assert.equal(ctx<QueueContext>(sim, 'queue/support').stats.overflowed, 1);
    assert.equal(ctx<ConversationContext>(sim, 'conversation/c1').queue, 'backup');
    sim.send('agent/bob', { type: 'presence.set', presence: 'available' });
    sim.send('agent/bob', { type: 'offer.accept', reservationId: Object.keys(ctx<AgentContext>(sim, 'agent/bob').offers)[0] });
    sim.send('conversation/c1', { type: 'wrapup' });
    sim.send('conversation/c1', { type: 'close' });
    sim.advance(60_000);
    sim.send('conversation/c1', { type: 'customer.message' });
    assert.equal(value(sim, 'conversation/c1'), 'offered');
  });

  test('a queue target refuses tasks it does not select, with the reason', () => {
    const sim = new Sim(kinds);
    sim.send('queue/voice-only', { type: 'configure', config: v.parse(QueueConfigSchema, { target: { attr: 'channel', op: 'eq', value: 'voice' } }) });
    sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'email', queue: 'voice-only' });
    assert.equal(value(sim, 'conversation/c1'), 'closed');
    assert.match(ctx<ConversationContext>(sim, 'conversation/c1').disposition, /does not match the queue target/);
  });
});
