// What a node needs to host one kind of actor.
import type { AnyStateMachine, EventObject } from 'xstate';
import type * as v from 'valibot';
import type { Effect } from '../machines/effects.ts';
import type { Collection } from './parts.ts';

export interface ActorKind {
  /** The `kind` of `kind/id`. */
  name: string;
  machine: AnyStateMachine;
  /** Stored with every snapshot; a snapshot from another version loads only through `migrations`. */
  version: number;
  /** migrations[n] turns a persisted snapshot of version n into version n + 1. */
  migrations?: Record<number, (persisted: unknown) => unknown>;
  /** Machine input of a new actor, from its id. */
  input?: (id: string) => unknown;
  /** Validates events at the boundary; by default any object with a string `type`. */
  events?: v.GenericSchema<unknown, EventObject>;
  /** Maps named actions (with params) to effects, for machines that prefer names over emit. */
  effects?: Record<string, (params: unknown) => Effect[]>;
  /** Context fields too large to store whole on every step: kept as parts that store only their changes. */
  collections?: Record<string, Collection>;
}

export function defineKind(kind: ActorKind): ActorKind {
  return kind;
}
