// An actor node: joins the membership, owns shards through leases, hosts them, and hands them over
// when members come and go. A node whose membership heartbeat lapses stops its shards before its key can expire.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import { LEASE_BUCKET, NODE_BUCKET, keys } from './address.ts';
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import { ActorClient } from './client.ts';
import type { ActorKind } from './kind.ts';
import { actorMetrics, type ActorMetrics } from './metrics.ts';
import { liveMembers } from './membership.ts';
import { assignShards } from './placement.ts';
import { provision, type Buckets } from './provision.ts';
import type { ActivationEvent, HostedKind, NodeServices, RuntimeOptions } from './services.ts';
import { Shard } from './shard.ts';
import { Stepper } from './step.ts';
import { Gate } from './gate.ts';
import { Watches } from './inspection.ts';

export interface ActorNodeOptions extends Partial<RuntimeOptions> {
  nc: NatsConnection;
  /** A second connection for heartbeats and shard claims, so they never queue behind mail. */
  controlNc?: NatsConnection;
  nodeId: string;
  kinds: ActorKind[];
  /** Host shards (core role); false makes a client-only node that can tell and ask. */
  host?: boolean;
  leaseTtlMs?: number;
  replicas?: number;
  /** Actors of this node that may step at once. */
  concurrency?: number;
  log?: Logger;
  registry?: Registry;
  onActivation?: (ev: ActivationEvent, kind: string, id: string) => void;
}

interface Owned {
  shard: Shard;
  /** Revision of our claim in the lease bucket. */
  rev: number;
  releasing?: boolean;
  /** Its start finished: it takes mail and arms timers. Only these count as owned in status and metrics. */
  started?: boolean;
}

export class ActorNode {
  readonly client: ActorClient;
  readonly registry: Registry;
  readonly metrics: ActorMetrics;
  private readonly owned = new Map<string, Owned>();
  private readonly kinds = new Map<string, HostedKind>();
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private members: string[] = [];
  private live = new Map<string, string>();
  private readonly incarnation = crypto.randomUUID();
  /** When the last heartbeat that succeeded was sent: our key lives until at least this + TTL. */
  private aliveSince = 0;
  private unwatch: () => void = () => {};
  /** Claims of fenced shards still to delete (slot -> claim revision). */
  private readonly withdrawals = new Map<string, number>();
  private reconciling: Promise<void> = Promise.resolve();
  private stopping = false;

  private constructor(
    private readonly opts: ActorNodeOptions,
    private readonly svc: NodeServices,
    private readonly control: Buckets,
    private readonly controlJsm: JetStreamManager,
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
    // A cluster that is still electing its JetStream leader answers with errors or not at all: keep trying.
    const { jsm, controlJsm, buckets } = await retry(async () => {
      const jsm: JetStreamManager = await jetstreamManager(opts.nc);
      const buckets = await provision(opts.nc, jsm, opts.replicas ?? 1, ttl);
      if (!opts.controlNc) return { jsm, controlJsm: jsm, buckets };
      const kvm = new Kvm(opts.controlNc);
      buckets.leases = await kvm.open(LEASE_BUCKET);
      buckets.nodes = await kvm.open(NODE_BUCKET);
      return { jsm, controlJsm: await jetstreamManager(opts.controlNc), buckets };
    }, 60_000);
    const registry = opts.registry ?? new Registry();
    const log = opts.log ?? pino({ level: 'silent' });
    // Only a hosting node publishes inspection events, so only it follows who watches them.
    const watches = opts.host === false || opts.inspect === false ? new Watches() : await retry(() => Watches.follow(buckets.watches, log), 60_000);
    const svc: NodeServices = {
      nodeId: opts.nodeId,
      nc: opts.nc,
      js: jsm.jetstream(),
      jsm,
      stateKv: buckets.state,
      partsKv: buckets.parts,
      timerKv: buckets.timers,
      metrics: actorMetrics(registry),
      gate: new Gate(opts.concurrency ?? 256),
      watches,
      log,
      options: {
        shards: opts.shards ?? 32,
        idleMs: opts.idleMs ?? 60_000,
        retries: opts.retries ?? 2,
        inspect: opts.inspect ?? true,
      },
      onActivation: opts.onActivation ?? (() => {}),
    };
    const node = new ActorNode(opts, svc, buckets, controlJsm, ttl, registry);
    if (opts.host !== false) await node.join();
    return node;
  }

  get id(): string {
    return this.opts.nodeId;
  }

  private get claim(): string {
    return `${this.id} ${this.incarnation}`;
  }

  tell: ActorClient['tell'] = (t, e, o) => this.client.tell(t, e, o);
  ask: ActorClient['ask'] = (t, e, o) => this.client.ask(t, e, o);

  /** Health for /healthz. */
  status() {
    let resident = 0;
    let started = 0;
    for (const o of this.owned.values()) {
      resident += o.shard.resident;
      if (o.started) started++;
    }
    return {
      // A hosting node whose membership heartbeat lapsed has stopped its shards (see fence): it is down.
      state: this.opts.host === false || this.alive() ? ('ok' as const) : ('down' as const),
      node: this.id,
      members: this.members.length,
      // A claimed shard still starting (its consumer, its timers) is not counted: its start may yet fail.
      shards_owned: started,
      shards_total: this.kinds.size * this.svc.options.shards,
      resident_actors: resident,
    };
  }

  /** Whether this node publishes the actor's `@xstate.event` and `@xstate.actor` inspection now (someone watches it). */
  inspects(kind: string, id: string): boolean {
    return this.svc.watches.watched(kind, id);
  }

  ownedShards(): string[] {
    return [...this.owned.keys()].sort();
  }

  /**
   * Membership is one key per node in a bucket whose entries expire on the server after the TTL.
   * A shard claim names the node's incarnation and holds while that key lives, so a node renews
   * one key, not one per shard; it stops its shards itself before its key can have expired.
   */
  private async join(): Promise<void> {
    await this.beat();
    const every = Math.max(200, Math.floor(this.ttl / 4));
    this.timers.push(setInterval(() => void this.beat(), every));
    this.timers.push(setInterval(() => this.fenceAfterIo(), 100));
    this.timers.push(setInterval(() => this.schedule(), Math.min(1_000, every)));
    // A cluster just back from a restart may time out a while before it serves watches: keep trying.
    await retry(() => this.watchClaims(), 60_000);
    this.schedule();
  }

  private async beat(): Promise<void> {
    const sentAt = Date.now();
    try {
      await this.control.nodes.put(this.id, this.incarnation);
      this.aliveSince = sentAt;
    } catch (e) {
      this.svc.log.warn({ err: e }, 'membership heartbeat failed');
    }
  }

  /** Another node claimed one of our shards (it judged us dead): stop it at once. */
  private async watchClaims(): Promise<void> {
    const w = await this.control.leases.watch({ include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of w) {
        const o = this.owned.get(e.key);
        if (o && (e.operation !== 'PUT' || e.string() !== this.claim) && e.revision > o.rev) this.lose(e.key, o, `claimed by ${e.string() || 'nobody'}`);
      }
    })().catch(() => undefined);
    this.unwatch = () => w.stop();
  }

  private schedule(): void {
    // Bounded, so one request that never returns cannot stop the node from ever reconciling again.
    this.reconciling = this.reconciling
      .then(() => within(this.reconcile(), Math.max(10_000, 3 * this.ttl), 'reconcile'))
      .catch((e) => this.svc.log.warn({ err: e }, 'reconcile failed'));
  }

  /** Drains the shards that belong elsewhere now and claims the free ones that belong here. */
  private async reconcile(): Promise<void> {
    if (this.stopping) return;
    await this.withdraw();
    const live = await liveMembers(this.controlJsm, this.control.nodes);
    live.set(this.id, this.incarnation);
    this.live = live;
    this.members = [...live.keys()].sort();
    const mine = new Set<string>();
    for (const kind of this.kinds.keys()) {
      const slots = Array.from({ length: this.svc.options.shards }, (_, i) => keys.lease(kind, i));
      for (const [slot, node] of assignShards(slots, this.members)) if (node === this.id) mine.add(slot);
    }
    for (const [slot, o] of [...this.owned]) {
      if (mine.has(slot) || this.stopping || o.releasing) continue;
      await this.release(slot, o);
    }
    if (!this.alive()) return;
    await Promise.all([...mine].filter((slot) => !this.owned.has(slot) && !this.withdrawals.has(slot)).map((slot) => this.acquire(slot)));
  }

  /** Claims a shard if nobody holds it, or its holder's incarnation is gone (dead or restarted). */
  private async acquire(slot: string): Promise<void> {
    if (this.stopping) return;
    let rev: number;
    try {
      const e = await this.control.leases.get(slot);
      if (e?.operation === 'PUT' && e.string() !== this.claim) {
        const [holder, inc] = e.string().split(' ');
        if (this.live.get(holder) === inc) return; // a live node holds it until it hands it over
      }
      rev = !e ? await this.control.leases.create(slot, this.claim) : await this.control.leases.update(slot, this.claim, e.revision);
    } catch {
      return; // another node claimed it first
    }
    const [kindName, index] = slot.split('.');
    const shard = new Shard(this.svc, this.kinds.get(kindName)!, Number(index));
    const o: Owned = { shard, rev };
    this.owned.set(slot, o);
    try {
      await within(shard.start(), Math.max(10_000, 2 * this.ttl), `start of shard ${slot}`);
      if (this.owned.get(slot) !== o) return; // lost while starting
      o.started = true;
      this.svc.metrics.shardsOwned.inc({ kind: kindName });
      this.svc.log.info({ slot }, 'shard acquired');
    } catch (e) {
      this.svc.log.error({ err: e, slot }, 'shard start failed');
      if (this.owned.get(slot) === o) {
        this.owned.delete(slot);
        shard.abort();
        await this.control.leases.delete(slot, { previousSeq: o.rev }).catch(() => undefined);
      }
    }
  }

  private async release(slot: string, o: Owned): Promise<void> {
    o.releasing = true;
    await o.shard.drain();
    if (this.owned.get(slot) !== o) return; // lost while draining
    this.owned.delete(slot);
    if (o.started) this.svc.metrics.shardsOwned.dec({ kind: o.shard.kind });
    await this.control.leases.delete(slot, { previousSeq: o.rev }).catch(() => undefined);
    this.svc.log.info({ slot }, 'shard released');
  }

  /** True while our membership key is certainly alive on the server. */
  private alive(): boolean {
    return Date.now() - this.aliveSince < this.ttl - Math.max(500, this.ttl / 5);
  }

  /**
   * Decides only after this turn's I/O: a starved process runs its late timers before it reads the
   * heartbeat replies waiting on its socket, and would otherwise fence on a key it had just renewed.
   */
  private fenceAfterIo(): void {
    setImmediate(() => this.fence());
  }

  /** Stops every shard before our membership key can have expired and others may take them. */
  private fence(): void {
    if (this.alive()) return;
    for (const [slot, o] of this.owned) this.lose(slot, o, 'membership heartbeat not renewed in time', true);
  }

  /** Stops a shard at once; a fenced node also withdraws its claim, or a live node would hold it forever. */
  private lose(slot: string, o: Owned, why: string, withdraw = false): void {
    if (this.owned.get(slot) !== o) return;
    this.owned.delete(slot);
    o.shard.abort();
    if (o.started) this.svc.metrics.shardsOwned.dec({ kind: o.shard.kind });
    this.svc.log.warn({ slot, why }, 'shard lost');
    if (withdraw) {
      this.withdrawals.set(slot, o.rev);
      void this.withdraw();
    }
  }

  private async withdraw(): Promise<void> {
    for (const [slot, rev] of [...this.withdrawals]) {
      try {
        await this.control.leases.delete(slot, { previousSeq: rev });
        this.withdrawals.delete(slot);
      } catch (e) {
        // Someone else claimed it meanwhile: nothing left to withdraw. Otherwise retry next reconcile.
        if (/wrong last sequence/i.test((e as Error).message)) this.withdrawals.delete(slot);
      }
    }
  }

  /** Graceful stop: hand every shard over (drained, persisted), leave the membership. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.reconciling;
    for (const t of this.timers) clearInterval(t);
    // Keep the heartbeat while draining so the claims stay ours until each shard is handed over.
    const keepAlive = setInterval(() => void this.beat(), Math.max(200, Math.floor(this.ttl / 4)));
    this.timers.push(setInterval(() => this.fenceAfterIo(), 100));
    await Promise.all([...this.owned].map(([slot, o]) => this.release(slot, o)));
    clearInterval(keepAlive);
    for (const t of this.timers) clearInterval(t);
    this.unwatch();
    this.svc.watches.stop();
    await this.control.nodes.delete(this.id).catch(() => undefined);
  }
}

async function retry<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() + pause > deadline) throw e;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, fail) => {
      t = setTimeout(() => fail(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]);
}
