// Actor addresses (`kind/id`), shard hashing and the NATS subjects and keys derived from them.
import * as v from 'valibot';

const KIND = /^[a-z][a-z0-9_]{0,31}$/;
/** Ids are one NATS subject token and one KV key token: no dots, spaces or wildcards. */
const ID = /^[A-Za-z0-9_=-]{1,200}$/;
export const KindSchema = v.pipe(v.string(), v.regex(KIND, 'actor kind must be lower-case letters, digits or _ (at most 32)'));
export const IdSchema = v.pipe(v.string(), v.regex(ID, 'actor id must be 1 to 200 letters, digits, _, - or ='));
/** The same rule as IdSchema, for the per-message paths that need only a yes or no. */
export const isId = (id: string): boolean => ID.test(id);

export interface ActorRef {
  readonly kind: string;
  readonly id: string;
}

export class AddressError extends Error {}

export function ref(kind: string, id: string): ActorRef {
  // Every tell and ask comes here: the usual case is two regex tests, valibot only says what is wrong.
  if (KIND.test(kind) && ID.test(id)) return { kind, id };
  const k = v.safeParse(KindSchema, kind);
  if (!k.success) throw new AddressError(`${k.issues[0].message}: ${JSON.stringify(kind)}`);
  const i = v.safeParse(IdSchema, id);
  if (!i.success) throw new AddressError(`${i.issues[0].message}: ${JSON.stringify(id)}`);
  return { kind, id };
}

/** Parses `kind/id`. */
export function parseRef(address: string): ActorRef {
  const slash = address.indexOf('/');
  if (slash < 1) throw new AddressError(`actor address must be kind/id: ${JSON.stringify(address)}`);
  return ref(address.slice(0, slash), address.slice(slash + 1));
}

export const refString = (r: ActorRef): string => `${r.kind}/${r.id}`;

/** FNV-1a: stable across runtimes and processes, so every node agrees on placement. */
export function shardOf(id: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export const MAIL_STREAM = 'CC_MAIL';
export const DEAD_STREAM = 'CC_DEAD';
export const STATE_BUCKET = 'cc_state';
export const TIMER_BUCKET = 'cc_timers';
export const PARTS_BUCKET = 'cc_parts';
export const LEASE_BUCKET = 'cc_leases';
export const NODE_BUCKET = 'cc_nodes';

export const HDR_ACTOR = 'Cc-Actor';
export const HDR_REASON = 'Cc-Reason';
/** On a tell an actor's outbox sends: the sender, for the receiver's inspection events. */
export const HDR_FROM = 'Cc-From';

export const subjects = {
  mail: (kind: string, shard: number) => `cc.mail.${kind}.${shard}`,
  /** An ask names its actor in the subject's last token; a shard listens on `cc.ask.<kind>.<shard>.*`. */
  ask: (kind: string, shard: number, id: string) => `cc.ask.${kind}.${shard}.${id}`,
  askShard: (kind: string, shard: number) => `cc.ask.${kind}.${shard}.*`,
  dead: (kind: string) => `cc.dead.${kind}`,
  /** `@xstate.snapshot` events (the workspace's index follows these). */
  inspect: (kind: string, id: string) => `cc.inspect.${kind}.${id}`,
  /** `@xstate.event` (every event applied) and `@xstate.actor` (each activation) events. */
  inspectEvent: (kind: string, id: string) => `cc.inspect.${kind}.${id}.event`,
  inspectActor: (kind: string, id: string) => `cc.inspect.${kind}.${id}.actor`,
};

export const keys = {
  state: (r: ActorRef) => `${r.kind}.${r.id}`,
  /** Prefix of the stored parts of one actor's context. */
  parts: (r: ActorRef) => `${r.kind}.${r.id}`,
  timer: (kind: string, shard: number, id: string) => `${kind}.${shard}.${id}`,
  timersOfShard: (kind: string, shard: number) => `${kind}.${shard}.>`,
  lease: (kind: string, shard: number) => `${kind}.${shard}`,
};

export const consumerName = (kind: string, shard: number) => `mail_${kind}_${shard}`;
