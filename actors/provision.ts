// The JetStream streams and KV buckets the runtime needs; created idempotently by every node.
import { RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import { DEAD_STREAM, LEASE_BUCKET, MAIL_STREAM, NODE_BUCKET, PARTS_BUCKET, STATE_BUCKET, TIMER_BUCKET } from './address.ts';
import { MAX_WATCH_MS, WATCH_BUCKET } from './inspection.ts';

export interface Buckets {
  state: KV;
  parts: KV;
  timers: KV;
  leases: KV;
  nodes: KV;
  watches: KV;
}

export async function provision(nc: NatsConnection, jsm: JetStreamManager, replicas: number, leaseTtlMs: number): Promise<Buckets> {
  await ensureStream(jsm, {
    name: MAIL_STREAM,
    subjects: ['cc.mail.>'],
    // Work queue: a message leaves the stream once its actor has acknowledged it.
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(10 * 60_000),
  });
  await ensureStream(jsm, {
    name: DEAD_STREAM,
    subjects: ['cc.dead.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(30 * 24 * 3600_000),
    duplicate_window: nanos(10 * 60_000),
  });
  // What actors publish through their outbox for others to read later (e.g. a conversation's close for the
  // identity graph, storage/events.ts): an outbox publish with no stream behind it would fail forever.
  await ensureStream(jsm, {
    name: 'CC_EVENTS',
    subjects: ['cc.events.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(30 * 24 * 3600_000),
    duplicate_window: nanos(10 * 60_000),
  });
  const kvm = new Kvm(nc);
  // Created if missing, then opened: an opened handle reads through the stream leader, while the one
  // `create` returns uses direct gets, which any replica answers. A replica still catching up (after a
  // restart, say) answers with an older entry or none, and where no compare-and-set write follows to
  // catch it (a timer index read at a shard's start, a timer found not yet due) the deadline is lost.
  const open = async (name: string, ttl?: number) => {
    await kvm.create(name, { history: 1, replicas, ...(ttl ? { ttl } : {}) }).catch(() => undefined);
    return kvm.open(name);
  };
  return {
    state: await open(STATE_BUCKET),
    // Large context fields, written in pieces under fresh keys (parts.ts).
    parts: await open(PARTS_BUCKET),
    timers: await open(TIMER_BUCKET),
    // Shard claims name a node incarnation; they hold while that incarnation's membership key lives.
    leases: await open(LEASE_BUCKET),
    // Membership expires on the server's clock: a key not renewed within the TTL disappears.
    nodes: await open(NODE_BUCKET, leaseTtlMs),
    // Who watches which actors' inspection events (inspection.ts); a watch not renewed lapses.
    watches: await open(WATCH_BUCKET, MAX_WATCH_MS),
  };
}

/** Creates a stream, or keeps the one another node created. */
export async function ensureStream(jsm: JetStreamManager, cfg: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.add(cfg);
  } catch (e) {
    // Already there (another node created it): keep it.
    await jsm.streams.info(cfg.name!).catch(() => {
      throw e;
    });
  }
}
