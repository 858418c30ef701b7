// The agent machine with a queue and conversations around it (tests/support/sim.ts): what it tells
// queues and supervisors as its load and presence change, wrap-up, logout, and its snapshot migration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { initialTransition, transition } from 'xstate';
import { agentKind, agentMachine, migrateAgentV1, type AgentContext } from './agent.ts';
import { conversationKind } from './conversation.ts';
import { queueKind, type QueueContext } from './queue.ts';
import { QueueConfigSchema, type Worker } from './routing.ts';
import { Sim } from '../tests/support/sim.ts';

const kinds = { agent: agentKind, queue: queueKind, conversation: conversationKind };
const ctx = (sim: Sim) => sim.state('agent/ann').context as AgentContext;
/** What the agent last told its queue, and what supervisors last saw. */
const toldQueue = (sim: Sim) => sim.log.filter((m) => m.to === 'queue/q' && m.event.type === 'worker.update').map((m) => (m.event as unknown as { worker: Worker }).worker);
const shown = (sim: Sim) => sim.notices.filter((n) => n.subject === 'cc.live.agent.ann').map((n) => (n.data as { presence: string }).presence);

function onDuty(capacity = { voice: 1, chat: 1, email: 1 }) {
  const sim = new Sim(kinds);
  sim.send('queue/q', { type: 'configure', config: v.parse(QueueConfigSchema, {}) });
  sim.send('agent/ann', { type: 'profile.set', skills: {}, capacity, queues: ['q'], maxWrapUpMs: 10_000 });
  sim.send('agent/ann', { type: 'login' });
  return sim;
}

/** Opens a conversation in the queue and has ann accept it. */
function serve(sim: Sim, id: string, channel: 'webchat' | 'voice' | 'email') {
  sim.send(`conversation/${id}`, { type: 'open', customer: `u-${id}`, channel, queue: 'q' });
  const rid = Object.keys(ctx(sim).offers)[0];
  assert.ok(rid, `ann was offered ${id}`);
  sim.send('agent/ann', { type: 'offer.accept', reservationId: rid });
  assert.equal(String(sim.state(`conversation/${id}`).value), 'active');
}

test('an agent who went away is announced as away when a task ends, and the queue offers them nothing', () => {
  const sim = onDuty();
  serve(sim, 'c1', 'webchat');
  sim.send('agent/ann', { type: 'presence.set', presence: 'away', reason: 'lunch' });
  sim.send('conversation/c1', { type: 'wrapup' });
  sim.send('conversation/c1', { type: 'close' });
  const last = toldQueue(sim).at(-1)!;
  assert.equal(last.presence, 'away');
  assert.equal(last.available, false, 'the freed slot does not make an away agent available');
  assert.equal(shown(sim).at(-1), 'away');
  // A new customer waits: the queue does not try the away agent (no reservation, so no refusal either).
  sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'webchat', queue: 'q' });
  assert.equal(String(sim.state('conversation/c2').value), 'queued');
  assert.equal(sim.log.filter((m) => m.event.type === 'reservation.refused').length, 0);
  assert.equal((sim.state('queue/q').context as QueueContext).tasks.length, 1);
});

test('an offer that times out after the agent went away is given back, and the agent stays announced as away', () => {
  const sim = onDuty();
  sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'q' });
  assert.equal(Object.keys(ctx(sim).offers).length, 1);
  sim.send('agent/ann', { type: 'presence.set', presence: 'away' });
  sim.advance(20_001);
  assert.deepEqual(ctx(sim).offers, {});
  assert.equal(ctx(sim).load.chat, 0);
  assert.equal(toldQueue(sim).at(-1)!.presence, 'away');
  assert.equal(String(sim.state('conversation/c1').value), 'waiting', 'the task is back in line');
});

test('a full agent is shown as busy and stays on duty for routing; a voice call ends straight in wrap-up', () => {
  const sim = onDuty();
  serve(sim, 'v1', 'voice');
  assert.equal(shown(sim).at(-1), 'available', 'the voice slot is taken, chat and email are free');
  // Fill the other kinds too.
  serve(sim, 'c1', 'webchat');
  serve(sim, 'e1', 'email');
  assert.equal(shown(sim).at(-1), 'busy');
  const full = toldQueue(sim).at(-1)!;
  assert.equal(full.presence, 'busy');
  assert.equal(full.available, true, 'a busy agent is available and full: back on a slot as soon as one frees');
  const before = toldQueue(sim).length;
  sim.send('conversation/v1', { type: 'wrapup' });
  sim.send('conversation/v1', { type: 'close' });
  assert.equal(String(sim.state('agent/ann').value), 'wrapup');
  assert.deepEqual(
    toldQueue(sim).slice(before).map((w) => w.presence),
    ['wrapup'],
    'the call ending is announced once, as wrap-up, never as available first',
  );
  sim.advance(10_001);
  assert.equal(String(sim.state('agent/ann').value), 'available', 'the wrap-up timer ends it');
  assert.ok(ctx(sim).durations.wrapup >= 10_000);
});

test('logout gives held offers back to their queue and books the time to the state the agent was in', () => {
  const sim = onDuty();
  sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'webchat', queue: 'q' });
  const [rid] = Object.keys(ctx(sim).offers);
  sim.send('agent/ann', { type: 'presence.set', presence: 'away' });
  sim.advance(5_000);
  sim.send('agent/ann', { type: 'logout' });
  assert.equal(String(sim.state('agent/ann').value), 'offline');
  assert.deepEqual(ctx(sim).offers, {});
  assert.equal(ctx(sim).load.chat, 0);
  const back = sim.log.find((m) => m.to === 'queue/q' && m.event.type === 'reservation.rejected');
  assert.equal((back?.event as unknown as { reservationId: string; reason: string }).reservationId, rid);
  assert.equal((back?.event as unknown as { reason: string }).reason, 'agent logged out');
  assert.equal(ctx(sim).durations.away, 5_000);
  assert.equal(ctx(sim).durations.online, undefined);
  assert.equal(shown(sim).at(-1), 'offline');
});

test('wrap-up ends when the agent says so, before the timer', () => {
  const sim = onDuty();
  serve(sim, 'v1', 'voice');
  sim.send('conversation/v1', { type: 'wrapup' });
  sim.send('conversation/v1', { type: 'close' });
  sim.advance(3_000);
  sim.send('agent/ann', { type: 'wrapup.done' });
  assert.equal(String(sim.state('agent/ann').value), 'available');
  assert.equal(ctx(sim).durations.wrapup, 3_000);
  sim.advance(20_000);
  assert.equal(ctx(sim).durations.wrapup, 3_000, 'the cancelled timer does not end a wrap-up again');
});

test('signing off during wrap-up: offline, the wrap-up time counted, and its timer ends nothing later', () => {
  const sim = onDuty();
  serve(sim, 'v1', 'voice');
  sim.send('conversation/v1', { type: 'wrapup' });
  sim.send('conversation/v1', { type: 'close' });
  assert.equal(String(sim.state('agent/ann').value), 'wrapup');
  sim.advance(4_000);
  sim.send('agent/ann', { type: 'logout' });
  assert.equal(String(sim.state('agent/ann').value), 'offline');
  assert.equal(ctx(sim).durations.wrapup, 4_000);
  sim.advance(20_000);
  assert.equal(String(sim.state('agent/ann').value), 'offline');
});

test('a version 1 snapshot loads with the state it was in', () => {
  const [snap] = initialTransition(agentMachine, { id: 'ann' });
  const [away] = transition(agentMachine, transition(agentMachine, snap, { type: 'login', at: 1 })[0], { type: 'presence.set', at: 2, presence: 'away' });
  const { state: _, ...v1Context } = away.context;
  const v1 = { ...agentMachine.getPersistedSnapshot(away), context: v1Context };
  const migrated = migrateAgentV1(JSON.parse(JSON.stringify(v1))) as { context: AgentContext };
  assert.equal(migrated.context.state, 'away');
  assert.equal(agentKind.migrations?.[1], migrateAgentV1);
  assert.equal(agentKind.version, 2);
  assert.throws(() => migrateAgentV1({ value: 'dancing', context: {} }), /unknown state "dancing"/);
});
