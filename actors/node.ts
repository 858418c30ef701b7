// An actor node: joins the membership, owns shards through leases, hosts them, and hands them over
// when members come and go. A node that cannot renew a lease stops that shard before the lease can expire.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import { keys } from './address.ts';
import { ActorClient } from './client.ts';
import type { ActorKind } from './kind.ts';
import { actorMetrics, type ActorMetrics } from './metrics.ts';
import { assignShards } from './placement.ts';
import { provision, type Buckets } from './provision.ts';
import type { ActivationEvent, HostedKind, NodeServices, RuntimeOptions } from './services.ts';
import { Shard } from './shard.ts';
import { Stepper } from './step.ts';

export interface ActorNodeOptions extends Partial<RuntimeOptions> {
  nc: NatsConnection;
  nodeId: string;
  kinds: ActorKind[];
  /** Host shards (core role); false makes a client-only node that can tell and ask. */
  host?: boolean;
  leaseTtlMs?: number;
  replicas?: number;
  log?: Logger;
  registry?: Registry;
  onActivation?: (ev: ActivationEvent, kind: string, id: string) => void;
}

interface Owned {
  shard: Shard;
  rev: number;
  releasing?: boolean;
  /** When the last successful renewal was sent: the lease is valid until this + TTL on the server. */
  renewedAt: number;
}

export class ActorNode {
  readonly client: ActorClient;
  readonly registry: Registry;
  readonly metrics: ActorMetrics;
  private readonly owned = new Map<string, Owned>();
  private readonly kinds = new Map<string, HostedKind>();
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private members: string[] = [];
  private reconciling: Promise<void> = Promise.resolve();
  private stopping = false;

  private constructor(
    private readonly opts: ActorNodeOptions,
    private readonly svc: NodeServices,
    private readonly buckets: Buckets,
    private readonly ttl: number,
    registry: Registry,
  ) {
    this.client = new ActorClient(opts.nc, svc.options.shards);
    this.registry = registry;
    this.metrics = svc.metrics;
    for (const kind of opts.kinds) this.kinds.set(kind.name, { kind, stepper: new Stepper(kind.machine) });
  }

  static async start(opts: ActorNodeOptions): Promise<ActorNode> {
    const ttl = opts.leaseTtlMs ?? 5_000;
    const jsm: JetStreamManager = await jetstreamManager(opts.nc);
    const buckets = await provision(opts.nc, jsm, opts.replicas ?? 1, ttl);
    const registry = opts.registry ?? new Registry();
    const log = opts.log ?? pino({ level: 'silent' });
    const svc: NodeServices = {
      nodeId: opts.nodeId,
      nc: opts.nc,
      js: jsm.jetstream(),
      jsm,
      stateKv: buckets.state,
      timerKv: buckets.timers,
      metrics: actorMetrics(registry),
      log,
      options: {
        shards: opts.shards ?? 32,
        idleMs: opts.idleMs ?? 60_000,
        retries: opts.retries ?? 2,
        inspect: opts.inspect ?? true,
      },
      onActivation: opts.onActivation ?? (() => {}),
    };
    const node = new ActorNode(opts, svc, buckets, ttl, registry);
    if (opts.host !== false) await node.join();
    return node;
  }

  get id(): string {
    return this.opts.nodeId;
  }

  tell: ActorClient['tell'] = (t, e, o) => this.client.tell(t, e, o);
  ask: ActorClient['ask'] = (t, e, o) => this.client.ask(t, e, o);

  /** Health for /healthz. */
  status() {
    let resident = 0;
    for (const o of this.owned.values()) resident += o.shard.resident;
    return {
      node: this.id,
      members: this.members.length,
      shards_owned: this.owned.size,
      shards_total: this.kinds.size * this.svc.options.shards,
      resident_actors: resident,
    };
  }

  ownedShards(): string[] {
    return [...this.owned.keys()].sort();
  }

  private async join(): Promise<void> {
    const beat = async () => {
      try {
        await this.buckets.nodes.put(this.id, JSON.stringify({ at: Date.now() }));
      } catch (e) {
        this.svc.log.warn({ err: e }, 'membership heartbeat failed');
      }
    };
    await beat();
    const every = Math.max(200, Math.floor(this.ttl / 3));
    this.timers.push(setInterval(beat, every));
    this.timers.push(setInterval(() => this.renew(), every));
    this.timers.push(setInterval(() => this.fence(), 100));
    this.timers.push(setInterval(() => this.schedule(), Math.min(1_000, every)));
    this.schedule();
  }

  private schedule(): void {
    this.reconciling = this.reconciling.then(() => this.reconcile()).catch((e) => this.svc.log.error({ err: e }, 'reconcile failed'));
  }

  /** Drains the shards that belong elsewhere now and acquires the free ones that belong here. */
  private async reconcile(): Promise<void> {
    if (this.stopping) return;
    const found: string[] = [];
    for await (const k of await this.buckets.nodes.keys()) found.push(k);
    if (!found.includes(this.id)) found.push(this.id);
    this.members = found.sort();
    const mine = new Set<string>();
    for (const kind of this.kinds.keys()) {
      const slots = Array.from({ length: this.svc.options.shards }, (_, i) => keys.lease(kind, i));
      for (const [slot, node] of assignShards(slots, this.members)) if (node === this.id) mine.add(slot);
    }
    for (const [slot, o] of [...this.owned]) {
      if (mine.has(slot) || this.stopping || o.releasing) continue;
      await this.release(slot, o);
    }
    await Promise.all(
      [...mine].filter((slot) => !this.owned.has(slot)).map((slot) => this.acquire(slot)),
    );
  }

  private async acquire(slot: string): Promise<void> {
    if (this.stopping) return;
    const sentAt = Date.now();
    let rev: number;
    try {
      rev = await this.buckets.leases.create(slot, this.id);
    } catch {
      return; // held by another node until it hands over or its lease expires
    }
    const [kindName, index] = slot.split('.');
    const shard = new Shard(this.svc, this.kinds.get(kindName)!, Number(index));
    const o: Owned = { shard, rev, renewedAt: sentAt };
    this.owned.set(slot, o);
    try {
      await shard.start();
      this.svc.metrics.shardsOwned.inc({ kind: kindName });
      this.svc.log.info({ slot }, 'shard acquired');
    } catch (e) {
      this.svc.log.error({ err: e, slot }, 'shard start failed');
      shard.abort();
      this.owned.delete(slot);
      await this.buckets.leases.delete(slot).catch(() => undefined);
    }
  }

  private async release(slot: string, o: Owned): Promise<void> {
    o.releasing = true;
    await o.shard.drain();
    if (this.owned.get(slot) !== o) return; // lost while draining
    this.owned.delete(slot);
    this.svc.metrics.shardsOwned.dec({ kind: o.shard.kind });
    try {
      await this.buckets.leases.delete(slot, { previousSeq: o.rev });
    } catch {
      /* already expired or taken */
    }
    this.svc.log.info({ slot }, 'shard released');
  }

  private async renew(): Promise<void> {
    await Promise.all(
      [...this.owned].map(async ([slot, o]) => {
        const sentAt = Date.now();
        try {
          o.rev = await this.buckets.leases.update(slot, this.id, o.rev);
          o.renewedAt = sentAt;
        } catch (e) {
          if (/wrong last sequence/i.test((e as Error).message)) this.lose(slot, o, 'lease taken by another node');
        }
      }),
    );
  }

  /** Stops any shard whose lease may have expired on the server, before another node can take it. */
  private fence(): void {
    const margin = Math.max(500, this.ttl / 5);
    for (const [slot, o] of this.owned) {
      if (Date.now() - o.renewedAt > this.ttl - margin) this.lose(slot, o, 'lease not renewed in time');
    }
  }

  private lose(slot: string, o: Owned, why: string): void {
    if (this.owned.get(slot) !== o) return;
    this.owned.delete(slot);
    o.shard.abort();
    this.svc.metrics.shardsOwned.dec({ kind: o.shard.kind });
    this.svc.log.warn({ slot, why }, 'shard lost');
  }

  /** Graceful stop: hand every shard over (drained, persisted), leave the membership. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.reconciling;
    for (const t of this.timers) clearInterval(t);
    // Renew while draining so the leases stay ours until each shard is handed over.
    const keepAlive = setInterval(() => void this.renew(), Math.max(200, Math.floor(this.ttl / 3)));
    await Promise.all([...this.owned].map(([slot, o]) => this.release(slot, o)));
    clearInterval(keepAlive);
    await this.buckets.nodes.delete(this.id).catch(() => undefined);
  }
}
