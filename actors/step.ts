// Pure stepping of a hosted machine: XState's transition() without creating an actor per event,
// and the split of the returned actions into what the runtime must do (timers, outbox, reply).
import { createActor } from 'xstate';
import type { AnyActorScope, AnyMachineSnapshot, AnyStateMachine, EventObject } from 'xstate';
import type { Effect } from '../machines/effects.ts';

export interface TimerSpec {
  id: string;
  delay: number;
  event: EventObject;
}

export interface StepResult {
  snapshot: AnyMachineSnapshot;
  effects: Effect[];
  /** Named actions with params, for kinds that map action names to effects. */
  named: { type: string; params: unknown }[];
  timers: TimerSpec[];
  cancels: string[];
}

interface ExecutableAction {
  type: string;
  params?: unknown;
}

export class HostedMachineError extends Error {}

export class Stepper {
  private readonly scope: AnyActorScope;
  private sink: ExecutableAction[] = [];

  constructor(readonly machine: AnyStateMachine) {
    // One inert scope per machine, as xstate's own transition() builds per call; reused so a step costs no actor.
    const self = createActor(machine);
    this.scope = {
      self,
      defer: () => {},
      id: '',
      logger: () => {},
      sessionId: '',
      stopChild: () => {},
      system: self.system,
      emit: () => {},
      actionExecutor: (a: ExecutableAction) => {
        this.sink.push(a);
      },
    } as unknown as AnyActorScope;
  }

  initial(input?: unknown): StepResult {
    return this.run(() => this.machine.getInitialSnapshot(this.scope, input) as AnyMachineSnapshot);
  }

  step(snapshot: AnyMachineSnapshot, event: EventObject): StepResult {
    return this.run(() => this.machine.transition(snapshot, event, this.scope) as AnyMachineSnapshot);
  }

  restore(persisted: unknown): AnyMachineSnapshot {
    return this.machine.restoreSnapshot(persisted as never, this.scope) as AnyMachineSnapshot;
  }

  persist(snapshot: AnyMachineSnapshot): unknown {
    return this.machine.getPersistedSnapshot(snapshot);
  }

  private run(fn: () => AnyMachineSnapshot): StepResult {
    this.sink = [];
    const snapshot = fn();
    const actions = this.sink;
    this.sink = [];
    if (snapshot.status === 'error') throw snapshot.error instanceof Error ? snapshot.error : new Error(String(snapshot.error));
    const out: StepResult = { snapshot, effects: [], named: [], timers: [], cancels: [] };
    for (const a of actions) classify(a, out, this.scope.self);
    return out;
  }
}

function classify(a: ExecutableAction, out: StepResult, self: unknown): void {
  const p = (a.params ?? {}) as Record<string, unknown>;
  switch (a.type) {
    case 'xstate.emit': {
      const ev = p.event as { type?: string } | undefined;
      if (ev && typeof ev.type === 'string' && ev.type.startsWith('effect.')) out.effects.push(ev as Effect);
      return;
    }
    case 'xstate.raise':
      if (typeof p.delay === 'number') {
        out.timers.push({ id: String(p.id ?? (p.event as EventObject).type), delay: p.delay, event: p.event as EventObject });
      }
      return;
    case 'xstate.sendTo':
      // Delayed sendTo(self) is the other way XState schedules; anything else must use tellActor().
      if (typeof p.delay === 'number' && p.to === self) {
        out.timers.push({ id: String(p.id ?? (p.event as EventObject).type), delay: p.delay, event: p.event as EventObject });
        return;
      }
      throw new HostedMachineError(`sendTo is not supported in hosted machines; emit effect.tell instead (action ${a.type})`);
    case 'xstate.cancel':
      out.cancels.push(String(p.sendId));
      return;
    case 'xstate.spawnChild':
    case 'xstate.stopChild':
      throw new HostedMachineError(`hosted machines must be pure: ${a.type} is not allowed; model children as actors`);
    default:
      if (!a.type.startsWith('xstate.')) out.named.push({ type: a.type, params: a.params });
  }
}

