// Side effects a pure machine asks the runtime for: machines `emit` these events, e.g.
// `emit(({ context }) => tell(`agent/${context.agentId}`, { type: 'offer' }))`, and the actor runtime
// (actors/) carries them out after the new snapshot is persisted.
import type { EventObject } from 'xstate';

/** Durable message to another actor (`kind/id`), through the outbox: sent once even if the actor replays. */
export interface TellEffect {
  type: 'effect.tell';
  to: string;
  event: EventObject;
}
/** Durable publish to a JetStream subject, through the outbox (deduplicated). */
export interface PublishEffect {
  type: 'effect.publish';
  subject: string;
  data: unknown;
}
/** Best-effort core NATS publish for screens (presence, typing, live counters); never replayed. */
export interface NotifyEffect {
  type: 'effect.notify';
  subject: string;
  data: unknown;
}
/** The answer to the `ask` being processed (ignored for `tell`). */
export interface ReplyEffect {
  type: 'effect.reply';
  data: unknown;
}
export type Effect = TellEffect | PublishEffect | NotifyEffect | ReplyEffect;

export const tell = (to: string, event: EventObject & Record<string, unknown>): TellEffect => ({ type: 'effect.tell', to, event });
export const publish = (subject: string, data: unknown): PublishEffect => ({ type: 'effect.publish', subject, data });
export const notify = (subject: string, data: unknown): NotifyEffect => ({ type: 'effect.notify', subject, data });
export const reply = (data: unknown): ReplyEffect => ({ type: 'effect.reply', data });
