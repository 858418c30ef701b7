// Path generation (@xstate/graph): from each machine's initial state, shortest event paths reach every one
// of its states. The sample events are the ones its mail carries; paths are found by the library, not by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getShortestPaths } from '@xstate/graph';
import type { AnyMachineSnapshot as AnySnapshot, AnyStateMachine, EventObject } from 'xstate';
import { agentMachine } from './agent.ts';
import { conversationMachine } from './conversation.ts';

/** Every leaf state's path from the root (`active`, `queued`…), as a snapshot's value names it. */
function stateNames(node: AnyStateMachine['root'], prefix = ''): string[] {
  return Object.entries(node.states).flatMap(([key, child]) => {
    const name = prefix ? `${prefix}.${key}` : key;
    return Object.keys(child.states).length ? stateNames(child, name) : [name];
  });
}

const valueName = (value: unknown): string => (typeof value === 'string' ? value : Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}.${valueName(v)}`).join(','));

/**
 * `key` tells states apart: their value and what of the context decides where events lead (all of the
 * context, with its durations and times, would make every path new).
 */
function reached(machine: AnyStateMachine, input: unknown, events: EventObject[], key: (s: AnySnapshot) => unknown = (s) => s.value) {
  const paths = getShortestPaths(machine, { input, events, serializeState: (s) => JSON.stringify(key(s as AnySnapshot)) });
  return new Map(paths.map((p) => [valueName(p.state.value), p.steps.map((s) => s.event.type)]));
}

test('agent: generated paths reach every presence state', () => {
  const voice = { id: 'v1', channel: 'voice', enqueuedAt: 0, skills: [], tier: 'normal', urgent: false, attrs: {}, excluded: [] };
  const events = [
    { type: 'login', at: 1 },
    { type: 'logout', at: 2 },
    { type: 'presence.set', at: 3, presence: 'away', reason: 'break' },
    { type: 'presence.set', at: 4, presence: 'available' },
    { type: 'reserve', at: 5, reservationId: 'r1', task: voice, replyTo: 'queue/q' },
    { type: 'offer.accept', at: 6, reservationId: 'r1' },
    { type: 'task.released', at: 7, conversation: 'v1' },
    { type: 'wrapup.done', at: 8 },
  ];
  // An agent's next state depends on the offers and tasks it holds.
  const paths = reached(agentMachine, { id: 'ann' }, events, (s) => [s.value, Object.keys(s.context.offers), Object.keys(s.context.tasks)]);
  assert.deepEqual([...paths.keys()].sort(), stateNames(agentMachine.root).sort());
  // The one into wrap-up goes through a call: held, accepted, ended.
  assert.deepEqual(paths.get('wrapup'), ['xstate.init', 'login', 'reserve', 'offer.accept', 'task.released']);
});

test('conversation: generated paths reach every state, from open to closed and reopened', () => {
  const events = [
    { type: 'open', at: 1, customer: 'u1', channel: 'webchat', queue: 'q', skills: [], tier: 'normal', urgent: false, attrs: {} },
    { type: 'offered', at: 2, agent: 'ann', reservationId: 'r1' },
    { type: 'requeued', at: 3, agent: 'ann', reason: 'timeout' },
    { type: 'assigned', at: 4, agent: 'ann', reservationId: 'r1' },
    { type: 'hold', at: 5 },
    { type: 'resume', at: 6 },
    { type: 'transfer', at: 7, to: 'agent/bob', note: '' },
    { type: 'reservation.refused', at: 8 },
    { type: 'wrapup', at: 9 },
    { type: 'close', at: 10, disposition: 'done' },
    { type: 'customer.left', at: 11 },
    { type: 'customer.message', at: 12 },
  ];
  const paths = reached(conversationMachine, { id: 'c1' }, events);
  assert.deepEqual([...paths.keys()].sort(), stateNames(conversationMachine.root).sort());
  assert.deepEqual(paths.get('waiting'), ['xstate.init', 'open', 'offered', 'requeued']);
  assert.deepEqual(paths.get('transferring'), ['xstate.init', 'open', 'assigned', 'transfer']);
});
