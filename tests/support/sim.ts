// A deterministic, in-process post office for pure machines: delivers `tell` effects between actors
// and fires delayed events when the test advances the clock. No NATS: for machine flow tests.
import { initialTransition, transition, type AnyMachineSnapshot, type EventObject } from 'xstate';
import * as v from 'valibot';
import type { ActorKind } from '../../actors/kind.ts';
import type { Effect } from '../../machines/effects.ts';

interface Timer {
  due: number;
  to: string;
  id: string;
  event: EventObject;
}

export class Sim {
  now = 1_700_000_000_000;
  readonly snapshots = new Map<string, AnyMachineSnapshot>();
  readonly notices: { subject: string; data: unknown }[] = [];
  readonly replies: unknown[] = [];
  readonly log: { to: string; event: EventObject }[] = [];
  private timers: Timer[] = [];
  private readonly mail: { to: string; event: EventObject & { at?: number }; timer?: boolean }[] = [];

  constructor(private readonly kinds: Record<string, ActorKind>) {}

  send(to: string, event: EventObject & Record<string, unknown>): void {
    this.mail.push({ to, event: { at: this.now, ...event } });
    this.drain();
  }

  state(address: string): AnyMachineSnapshot {
    return this.snapshots.get(address) ?? this.load(address);
  }

  /** Advances the clock, firing due timers in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due);
      const t = this.timers[0];
      if (!t || t.due > until) break;
      this.timers.shift();
      this.now = t.due;
      this.mail.push({ to: t.to, event: { ...t.event, at: t.due }, timer: true });
      this.drain();
    }
    this.now = until;
  }

  private load(address: string): AnyMachineSnapshot {
    const [kind, id] = address.split('/');
    const k = this.kinds[kind];
    if (!k) throw new Error(`no kind ${kind} for ${address}`);
    const [snap, actions] = initialTransition(k.machine, k.input?.(id));
    this.snapshots.set(address, snap);
    this.apply(address, actions);
    return snap;
  }

  private drain(): void {
    while (this.mail.length) {
      const { to, event, timer } = this.mail.shift()!;
      this.log.push({ to, event });
      const k = this.kinds[to.split('/')[0]];
      if (!k) continue; // e.g. customer/… when the test does not host customers
      const before = this.state(to);
      // As the runtime does: mail passes the kind's schema (defaults filled in); timer events come from the machine.
      const checked = k.events && !timer ? v.parse(k.events, event) : event;
      const [snap, actions] = transition(k.machine, before, checked);
      this.snapshots.set(to, snap);
      this.apply(to, actions);
    }
  }

  private apply(address: string, actions: { type: string; params?: unknown }[]): void {
    for (const a of actions) {
      const p = (a.params ?? {}) as Record<string, unknown>;
      if (a.type === 'xstate.raise' && typeof p.delay === 'number') {
        this.timers = this.timers.filter((t) => !(t.to === address && t.id === p.id));
        this.timers.push({ due: this.now + p.delay, to: address, id: String(p.id), event: p.event as EventObject });
      } else if (a.type === 'xstate.cancel') {
        this.timers = this.timers.filter((t) => !(t.to === address && t.id === p.sendId));
      } else if (a.type === 'xstate.emit') {
        const e = p.event as Effect;
        if (e.type === 'effect.tell') this.mail.push({ to: e.to, event: { at: this.now, ...e.event } });
        else if (e.type === 'effect.notify' || e.type === 'effect.publish') this.notices.push({ subject: e.subject, data: e.data });
        else if (e.type === 'effect.reply') this.replies.push(e.data);
      }
    }
  }
}
