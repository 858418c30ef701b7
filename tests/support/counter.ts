// A small machine that exercises every runtime feature: counting, replies, timers, effects, poison events.
import { assign, emit, setup } from 'xstate';
import { defineKind } from '../../actors/kind.ts';
import { publish, reply, tell } from '../../machines/effects.ts';

type Ev =
  | { type: 'inc'; by?: number }
  /** Order-sensitive: the count becomes a hash of every value in the order applied. */
  | { type: 'mix'; by: number }
  | { type: 'get' }
  | { type: 'boom' }
  | { type: 'arm'; ms: number }
  /** Arms a timer whose own event throws: a poison timer. */
  | { type: 'doom'; ms: number }
  | { type: 'disarm' }
  | { type: 'forward'; to: string }
  | { type: 'announce'; subject: string }
  | { type: 'grow'; kb: number };

/** How many times a `boom` was tried, retries included (the runtime's bounded retries are counted by it). */
export const poison = { attempts: 0 };

export const counterMachine = setup({
  types: {} as { context: { count: number; fired: number; seen: number; blob: string }; events: Ev },
  delays: { delay: ({ event }) => (event.type === 'arm' || event.type === 'doom' ? event.ms : 1000) },
}).createMachine({
  id: 'counter',
  context: { count: 0, fired: 0, seen: 0, blob: '' },
  initial: 'idle',
  on: {
    inc: { actions: assign({ count: ({ context, event }) => context.count + (event.by ?? 1), seen: ({ context }) => context.seen + 1 }) },
    mix: { actions: assign({ count: ({ context, event }) => (context.count * 31 + event.by) % 1_000_003 }) },
    get: { actions: emit(({ context }) => reply({ count: context.count, fired: context.fired })) },
    boom: {
      actions: assign(() => {
        poison.attempts++;
        throw new Error('boom is poison');
      }),
    },
    forward: { actions: emit(({ event }) => tell(event.to, { type: 'inc', by: 10 })) },
    grow: { actions: assign({ blob: ({ context, event }) => context.blob + 'x'.repeat(event.kb * 1024) }) },
    announce: { actions: emit(({ event, context }) => publish(event.subject, { count: context.count })) },
  },
  states: {
    idle: { on: { arm: 'armed', doom: 'doomed' } },
    armed: {
      after: { delay: { target: 'idle', actions: assign({ fired: ({ context }) => context.fired + 1 }) } },
      on: { disarm: 'idle' },
    },
    doomed: {
      after: {
        delay: {
          target: 'idle',
          actions: assign(() => {
            throw new Error('the timer is poison');
          }),
        },
      },
    },
  },
});

export const counterKind = defineKind({ name: 'counter', machine: counterMachine, version: 1 });
