// XState-shaped inspection events, and who is watching for them.
// A snapshot (`@xstate.snapshot`, on every change) always goes out: the workspace's index follows them.
// Each event applied (`@xstate.event`) and each activation (`@xstate.actor`) go out only for actors
// someone watches, as XState inspects only the actors it was asked to. Otherwise every ask that reads
// state would cost a publish that nobody receives (about a sixth of an ask's cost on the host).
// A watch is a key in a KV bucket that the watcher renews: nodes started later still see it, and one
// whose watcher died lapses by itself.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import * as v from 'valibot';
import { IdSchema, KindSchema } from './address.ts';

export const WATCH_BUCKET = 'cc_inspect_watch';
/** The longest a watch holds without renewal; the bucket drops older keys. */
export const MAX_WATCH_MS = 10 * 60_000;
export const MIN_WATCH_MS = 10_000;

/** A snapshot as asks are answered and inspection shows it. */
export const snapshotView = (s: AnyMachineSnapshot) => ({ value: s.value, context: s.context, status: s.status });

// Shaped like XState's inspection events, with the actor's address as its id.
export function snapshotInspection(kind: string, id: string, event: EventObject, s: AnyMachineSnapshot, node: string) {
  return { type: '@xstate.snapshot', actorRef: `${kind}/${id}`, rootId: `${kind}/${id}`, event, snapshot: snapshotView(s), node, at: Date.now() };
}

export function eventInspection(kind: string, id: string, event: EventObject, sourceRef: string | undefined, node: string) {
  return { type: '@xstate.event', actorRef: `${kind}/${id}`, rootId: `${kind}/${id}`, event, sourceRef, node, at: Date.now() };
}

export function actorInspection(kind: string, id: string, node: string) {
  return { type: '@xstate.actor', actorRef: `${kind}/${id}`, rootId: `${kind}/${id}`, node, at: Date.now() };
}

const Watch = v.object({ until: v.number() });
const dec = new TextDecoder();
const enc = new TextEncoder();

/** What a node knows of the watches: the bucket's keys, followed as they change. */
export class Watches {
  /** `kind` or `kind/id` → watcher → until (ms since epoch). */
  private readonly targets = new Map<string, Map<string, number>>();
  private stopFollowing: () => void = () => {};

  /**
   * Follows the bucket: its current watches arrive first (moments after this returns, so an actor
   * activated at once may miss its `@xstate.actor`), then every change.
   */
  static async follow(kv: KV, log: { warn(o: object, m: string): void }): Promise<Watches> {
    const w = new Watches();
    const it = await kv.watch();
    let stopped = false;
    w.stopFollowing = () => {
      stopped = true;
      it.stop();
    };
    void (async () => {
      for await (const e of it) w.apply(e.key, e.operation === 'PUT' ? e.value : undefined);
      if (!stopped) log.warn({}, 'inspection watches are no longer followed: the bucket watch ended');
    })().catch((err: Error) => log.warn({ err }, 'inspection watches are no longer followed'));
    return w;
  }

  /** A key `<kind>.<watcher>` watches every actor of the kind, `<kind>.<id>.<watcher>` one actor. */
  apply(key: string, value: Uint8Array | undefined): void {
    const parts = key.split('.');
    if (parts.length < 2 || parts.length > 3) return;
    const watcher = parts.pop()!;
    const target = parts.join('/');
    let until: number | undefined;
    try {
      const r = value && v.safeParse(Watch, JSON.parse(dec.decode(value)));
      until = r && r.success ? r.output.until : undefined;
    } catch {
      until = undefined;
    }
    const m = this.targets.get(target);
    if (until === undefined) {
      m?.delete(watcher);
      if (m && !m.size) this.targets.delete(target);
    } else if (m) m.set(watcher, until);
    else this.targets.set(target, new Map([[watcher, until]]));
  }

  watched(kind: string, id: string): boolean {
    // The common case, nobody watching anything, costs one size check per event.
    return this.targets.size > 0 && (this.live(kind) || this.live(`${kind}/${id}`));
  }

  private live(target: string): boolean {
    const m = this.targets.get(target);
    if (!m) return false;
    const now = Date.now();
    for (const [watcher, until] of m) {
      if (until > now) return true;
      // A watcher that died leaves its key until the bucket ages it out, and no change is sent for that.
      m.delete(watcher);
    }
    this.targets.delete(target);
    return false;
  }

  stop(): void {
    this.stopFollowing();
  }
}

export interface InspectionWatch {
  /** Resolves once the watch is withdrawn. */
  stop(): Promise<void>;
}

/**
 * Asks every node to publish `@xstate.event` and `@xstate.actor` for one actor (`id`) or every actor of a
 * kind, while the returned watch lives: it is renewed every third of `ttlMs`, and lapses between two and
 * three thirds of `ttlMs` after the watcher goes away without stopping it. Nodes learn of it within
 * milliseconds. Its end is set on the watcher's clock and read on each node's: the 10-s minimum keeps a
 * few seconds of clock difference from ending a watch early. The bucket is the nodes' (provision.ts).
 */
export async function watchInspection(nc: NatsConnection, target: { kind: string; id?: string }, opts: { ttlMs?: number } = {}): Promise<InspectionWatch> {
  v.parse(KindSchema, target.kind);
  if (target.id !== undefined) v.parse(IdSchema, target.id);
  const ttl = Math.min(Math.max(opts.ttlMs ?? 60_000, MIN_WATCH_MS), MAX_WATCH_MS);
  const kv = await new Kvm(nc).open(WATCH_BUCKET).catch((err: Error) => {
    throw new Error(`no actor node has created ${WATCH_BUCKET} yet: ${err.message}`);
  });
  const key = [target.kind, target.id, crypto.randomUUID().replaceAll('-', '')].filter(Boolean).join('.');
  const put = () => kv.put(key, enc.encode(JSON.stringify({ until: Date.now() + ttl })));
  await put();
  const renew = setInterval(() => void put().catch(() => undefined), Math.floor(ttl / 3));
  (renew as { unref?: () => void }).unref?.();
  return {
    async stop() {
      clearInterval(renew);
      await kv.delete(key).catch(() => undefined);
    },
  };
}
