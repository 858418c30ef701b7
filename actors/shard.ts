// One shard of one kind, hosted by the node that holds its lease: consumes the shard's mail,
// runs each actor's messages one at a time, persists snapshots, fires durable timers, passivates idle actors.
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type Msg, type Subscription } from '@nats-io/nats-core';
import * as v from 'valibot';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import type { Effect } from '../machines/effects.ts';
import { HDR_ACTOR, HDR_FROM, HDR_REASON, MAIL_STREAM, isId, consumerName, keys, parseRef, shardOf, subjects } from './address.ts';
import { EventSchema } from './client.ts';
import { Deadlines } from './deadlines.ts';
import { actorInspection, eventInspection, snapshotInspection, snapshotView as view } from './inspection.ts';
import { decodeRecord, encodeRecord, type ActorRecord, type OutboxEntry, type Timer } from './record.ts';
import { PartMissing, PartState, StoreUnavailable, commitPart, listValue, loadPart, planPart, stripContext, writeBackground, type PartMeta, type PartPlan } from './parts.ts';
import type { HostedKind, NodeServices } from './services.ts';
import type { StepResult } from './step.ts';

type Work =
  | { t: 'mail'; msg: JsMsg; seq: number; event: EventObject }
  | { t: 'ask'; msg: Msg; event: EventObject }
  | { t: 'timer' };

/** One resident actor. Kept small: 100,000 of them may be resident at once. */
class Activation {
  snap: AnyMachineSnapshot | undefined = undefined;
  seq = 0;
  steps = 0;
  rev = 0;
  timers: Timer[] = [];
  /** A new actor's initial step: its entry effects and timers are applied with its first batch. */
  init: StepResult | undefined = undefined;
  mailbox: Work[] | undefined = undefined;
  /** Messages still to apply one at a time (after a batch whose state was too large to store). */
  solo = 0;
  running = false;
  /** Reported as activated (and not yet passivated) to metrics and the activation hook. */
  live = false;
  lastUsed = 0;
  /** The stored view of the kind's large context fields (parts.ts), by field. */
  parts: Map<string, PartState> | undefined = undefined;
  /** New bases of parts being written in the background: the actor stays resident until they are. */
  writing = 0;
  /** The stored record, when its outbox has been sent but is still in it: the next record, or a write once the mailbox is empty, clears it. */
  sent: ActorRecord | undefined = undefined;
}

const MAX_BATCH = 64;
/** Reads of an actor whose record names a part that is not there, before its mail is dead-lettered (see PartMissing). */
const MAX_PART_READS = 5;
/** When the shard's timer index is read again after its start (doubling each time), and at most how far apart. */
const RESCAN_FIRST_MS = 5_000;
const RESCAN_MAX_MS = 60_000;
/** Tries of one outbox entry before it is dead-lettered (with the step's backoff, a few seconds). */
const MAX_OUTBOX_ATTEMPTS = 5;
const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Failed tries by key, up to a bound: `again` counts one more and says whether another may follow. Once
 * it says no, it keeps saying no until the caller, having given up, forgets the key.
 */
class Tries {
  private readonly failed = new Map<string, number>();
  constructor(readonly max: number) {}

  again(key: string): boolean {
    const n = (this.failed.get(key) ?? 0) + 1;
    if (n >= this.max) return false;
    this.failed.set(key, n);
    return true;
  }

  forget(key: string): void {
    if (this.failed.size) this.failed.delete(key);
  }
}

export class Shard {
  private readonly acts = new Map<string, Activation>();
  /** Activations that found a part missing, by actor id. */
  private readonly partReads = new Tries(MAX_PART_READS);
  /** Failed sends of outbox entries, by message id (see publishOutbox). */
  private readonly outboxTries = new Tries(MAX_OUTBOX_ATTEMPTS);
  private readonly deadlines: Deadlines;
  private messages: ConsumerMessages | undefined;
  private asks: Subscription | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private rescanTimer: ReturnType<typeof setTimeout> | undefined;
  private state: 'new' | 'running' | 'draining' | 'stopped' = 'new';
  private delivered = 0;
  /** `delivered` when the sweeper last looked: unchanged means the shard was quiet since. */
  private deliveredAtSweep = 0;
  /** The mailbox lag last reported. */
  private lag = 0;
  private readonly label: { kind: string };
  private readonly lagLabel: { kind: string; shard: string };
  private readonly viaMail: { kind: string; via: string };
  private readonly viaAsk: { kind: string; via: string };
  private readonly viaTimer: { kind: string; via: string };

  constructor(
    private readonly svc: NodeServices,
    private readonly hk: HostedKind,
    readonly index: number,
  ) {
    this.deadlines = new Deadlines((id) => this.enqueue(id, { t: 'timer' }));
    this.label = { kind: hk.kind.name };
    this.lagLabel = { kind: hk.kind.name, shard: String(index) };
    this.viaMail = { kind: hk.kind.name, via: 'mail' };
    this.viaAsk = { kind: hk.kind.name, via: 'ask' };
    this.viaTimer = { kind: hk.kind.name, via: 'timer' };
  }

  get kind(): string {
    return this.hk.kind.name;
  }

  get resident(): number {
    return this.acts.size;
  }

  private get live(): boolean {
    return this.state === 'running' || this.state === 'draining';
  }

  async start(): Promise<void> {
    const { jsm, js, nc } = this.svc;
    const name = consumerName(this.kind, this.index);
    // The node gives up on a start that takes too long and may start this shard again: a start that
    // goes on after abort() must not bring a second copy of the shard to life.
    const check = () => {
      if (this.state !== 'stopped') return;
      this.deadlines.clear();
      void this.messages?.close().catch(() => undefined);
      throw new Error(`shard ${this.kind}.${this.index} was stopped while starting`);
    };
    // A fresh consumer hands over every unacknowledged message at once, including those a dead owner held.
    await jsm.consumers.delete(MAIL_STREAM, name).catch(() => undefined);
    check();
    await jsm.consumers.add(MAIL_STREAM, {
      durable_name: name,
      filter_subject: subjects.mail(this.kind, this.index),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(60_000),
      max_ack_pending: 4096,
      max_deliver: -1,
    });
    check();
    this.state = 'running';
    await this.armFromIndex();
    check();
    const consumer = await js.consumers.get(MAIL_STREAM, name);
    check();
    this.messages = await consumer.consume({ max_messages: 256 });
    check();
    void (async () => {
      for await (const m of this.messages!) this.onMail(m);
    })().catch((e) => this.svc.log.error({ err: e, kind: this.kind, shard: this.index }, 'mail consumer stopped'));
    const idFrom = subjects.ask(this.kind, this.index, '').length;
    this.asks = nc.subscribe(subjects.askShard(this.kind, this.index), { callback: (err, m) => (err ? undefined : this.onAsk(m, m.subject.slice(idFrom))) });
    const every = Math.max(250, Math.floor(this.svc.options.idleMs / 2));
    this.sweeper = setInterval(() => {
      this.passivateIdle();
      this.refreshLag();
    }, every);
    this.scheduleRescan(RESCAN_FIRST_MS);
  }

  /** Graceful hand-off: stop taking mail, finish what was delivered, persist, release the consumer. */
  async drain(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'draining';
    this.stopInputs();
    // New bases being written in the background are finished too, so the next owner does not find them pending.
    while ([...this.acts.values()].some((a) => a.running || a.mailbox?.length || a.writing)) await sleep(5);
    await this.svc.jsm.consumers.delete(MAIL_STREAM, consumerName(this.kind, this.index)).catch(() => undefined);
    this.finish('passivate');
  }

  /** Lost the lease: stop at once; whatever is unacknowledged goes to the next owner. */
  abort(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.stopInputs();
    this.finish('drop');
  }

  private stopInputs(): void {
    void this.messages?.close().catch(() => undefined);
    this.asks?.unsubscribe();
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
  }

  private finish(why: 'passivate' | 'drop'): void {
    this.state = 'stopped';
    this.deadlines.clear();
    for (const [id, a] of this.acts) if (a.live) this.svc.onActivation(why, this.kind, id);
    this.svc.metrics.resident.dec(this.label, this.acts.size);
    this.acts.clear();
  }

  /**
   * Arms each deadline of the shard's timer index that is sooner than what the clock holds for its actor
   * (at the start, every one). Waking an actor early is harmless: it re-arms for what is due.
   */
  private async armFromIndex(): Promise<void> {
    const { timerKv } = this.svc;
    const it = await timerKv.keys(keys.timersOfShard(this.kind, this.index));
    const found: string[] = [];
    for await (const k of it) found.push(k);
    await Promise.all(
      found.map(async (k) => {
        const e = await timerKv.get(k);
        if (!e || e.operation !== 'PUT') return;
        const id = k.slice(k.indexOf('.', k.indexOf('.') + 1) + 1);
        const due = Number(e.string());
        const armed = this.deadlines.get(id);
        if (armed === undefined || due < armed) this.deadlines.set(id, due);
      }),
    );
  }

  /**
   * The timer index is read again after the start, at growing intervals up to RESCAN_MAX_MS. A listing
   * taken while the bucket's stream was still settling (a new leader catching up after a whole-cluster
   * restart) can come back without keys that are there, and a deadline never armed never fires: seen
   * in CI, all the timers of two shards.
   */
  private scheduleRescan(ms: number): void {
    this.rescanTimer = setTimeout(() => void this.rescan(ms), ms);
  }

  private async rescan(last: number): Promise<void> {
    if (this.state !== 'running') return;
    try {
      await this.armFromIndex();
    } catch (e) {
      this.svc.log.warn({ err: e, kind: this.kind, shard: this.index }, 'timer index not read again; next time');
    }
    if (this.state === 'running') this.scheduleRescan(Math.min(last * 2, RESCAN_MAX_MS));
  }

  private onMail(m: JsMsg): void {
    if (!this.live) return;
    if ((this.delivered++ & 63) === 0) this.setLag(m.info.pending);
    const id = m.headers?.get(HDR_ACTOR) ?? '';
    if (!isId(id)) {
      void this.deadLetter(m, `missing or invalid ${HDR_ACTOR} header`, id);
      return;
    }
    let event: EventObject;
    try {
      event = this.validate(JSON.parse(dec.decode(m.data)));
    } catch (e) {
      void this.deadLetter(m, `invalid event: ${(e as Error).message}`, id);
      return;
    }
    this.enqueue(id, { t: 'mail', msg: m, seq: m.seq, event });
  }

  private onAsk(m: Msg, id: string): void {
    if (!this.live || this.state === 'draining') return; // no answer: the caller retries with the next owner
    if (!isId(id)) return void m.respond(answer(false, `invalid actor id in the subject: ${JSON.stringify(id)}`));
    let event: EventObject;
    try {
      event = this.validate(JSON.parse(dec.decode(m.data)));
    } catch (e) {
      return void m.respond(answer(false, `invalid event: ${(e as Error).message}`));
    }
    this.enqueue(id, { t: 'ask', msg: m, event });
  }

  private validate(raw: unknown): EventObject {
    const r = v.safeParse(this.hk.kind.events ?? EventSchema, raw);
    if (!r.success) throw new Error(`${r.issues[0].message}${v.getDotPath(r.issues[0]) ? ` at ${v.getDotPath(r.issues[0])}` : ''}`);
    return r.output as EventObject;
  }

  private enqueue(id: string, w: Work): void {
    if (!this.live) return;
    let a = this.acts.get(id);
    if (!a) {
      a = new Activation();
      this.acts.set(id, a);
      this.svc.metrics.resident.inc(this.label);
    }
    (a.mailbox ??= []).push(w);
    if (!a.running) void this.run(id, a);
  }

  private async run(id: string, a: Activation): Promise<void> {
    a.running = true;
    let pause = 50;
    try {
      while (a.mailbox?.length && this.live) {
        let batch: Work[] | undefined;
        try {
          await this.svc.gate.enter();
          try {
            if (!a.snap && !(await this.activate(id, a))) return;
            if (!a.mailbox?.length || !this.live) break;
            batch = a.mailbox.splice(0, a.solo ? 1 : MAX_BATCH);
            if (a.solo) a.solo--;
            if (!a.mailbox.length) a.mailbox = undefined;
            await this.process(id, a, batch);
          } finally {
            this.svc.gate.leave();
          }
          pause = 50;
          batch = undefined;
          // Quiet for now: the sent outbox is cleared (mail that arrives meanwhile keeps the loop going).
          if (!a.mailbox?.length && a.sent && a.snap && this.live) await this.clearOutbox(id, a, a.sent);
        } catch (e) {
          // Transient (NATS timeout, leader change): the write may or may not have landed, so reload and
          // apply the batch again; mail the snapshot already covers is skipped by its sequence.
          this.svc.log.warn({ err: e, actor: `${this.kind}/${id}` }, 'actor step failed; retrying');
          if (batch) this.requeue(id, a, batch);
          a.snap = undefined;
          await sleep(pause);
          pause = Math.min(pause * 2, 2_000);
        }
      }
    } finally {
      a.running = false;
      a.lastUsed = Date.now();
    }
  }

  /** Loads the actor's snapshot, or starts it fresh; false when its snapshot cannot be loaded. */
  private async activate(id: string, a: Activation): Promise<boolean> {
    const { kind, stepper } = this.hk;
    const who = `${kind.name}/${id}`;
    a.sent = undefined;
    const entry = await this.svc.stateKv.get(keys.state({ kind: kind.name, id }));
    let pending: ActorRecord | undefined;
    try {
      if (!entry || entry.operation !== 'PUT') {
        a.init = stepper.initial(kind.input?.(id));
        a.snap = a.init.snapshot;
        if (kind.collections) a.parts = new Map(Object.keys(kind.collections).map((f) => [f, new PartState()]));
        a.rev = entry?.revision ?? 0;
        a.timers = [];
        a.seq = 0;
        a.steps = 0;
      } else {
        const rec = decodeRecord(entry.value, who);
        a.snap = stepper.restore(this.migrate(rec, who));
        if (kind.collections) await this.loadParts(id, a, rec.parts ?? {});
        a.rev = entry.revision;
        a.seq = rec.seq;
        a.steps = rec.steps;
        a.timers = rec.timers;
        if (rec.outbox.length) pending = rec;
      }
    } catch (e) {
      // Not the record's fault: run() reloads after a pause, and no mail is turned away.
      if (e instanceof StoreUnavailable) throw e.cause;
      // A piece a replica does not have yet (KV reads may be answered by one a few writes behind) is read
      // again a few times before the mail is turned away.
      if (e instanceof PartMissing && this.partReads.again(id)) throw e;
      this.partReads.forget(id);
      // Loud, and never a silent reset: the mail stays in the dead-letter stream with the reason.
      const reason = `cannot activate ${who}: ${(e as Error).message}`;
      this.svc.log.error({ actor: who }, reason);
      for (const w of a.mailbox ?? []) await this.reject(w, reason, id);
      this.evict(id, a, 'drop');
      return false;
    }
    this.partReads.forget(id);
    // An outbox written by a step whose publishes were cut short goes out now (deduplicated by message id).
    if (pending) {
      await this.publishOutbox(id, pending);
      await this.clearOutbox(id, a, pending);
      // Written elsewhere meanwhile: run() pauses and loads it again, as after any failed step.
      if (!a.snap) throw new Error(`${who} was written elsewhere while its sent outbox was cleared`);
    }
    // The shard was stopped while this actor was loading: it is not live here, and never was.
    if (!this.live || this.acts.get(id) !== a) return false;
    this.deadlines.set(id, earliest(a.timers));
    if (!a.live) {
      a.live = true;
      this.svc.metrics.activations.inc(this.label);
      this.svc.onActivation('activate', kind.name, id);
      if (this.svc.watches.watched(kind.name, id)) this.svc.nc.publish(subjects.inspectActor(kind.name, id), JSON.stringify(actorInspection(kind.name, id, this.svc.nodeId)));
    }
    return true;
  }

  /** Reads the parts the record points at and puts them back into the restored context. */
  private async loadParts(id: string, a: Activation, metas: Record<string, PartMeta>): Promise<void> {
    const collections = this.hk.kind.collections!;
    const prefix = keys.parts({ kind: this.kind, id });
    const context = { ...(a.snap!.context as Record<string, unknown>) };
    const before = a.parts;
    a.parts = new Map();
    for (const [field, c] of Object.entries(collections)) {
      const meta = metas[field];
      if (!meta) {
        // Stored before this field became a part: the value is still inline and is written out on the next
        // step. A list is a plain array in the record: it becomes what the machine keeps (its order function).
        a.parts.set(field, new PartState());
        if (c.shape === 'list' && Array.isArray(context[field])) context[field] = listValue(c, context[field], context);
        continue;
      }
      const { state, value } = await loadPart(this.svc.partsKv, prefix, field, meta, c, context);
      // Reloaded (after a conflict or a failed step) while this activation writes the pending base: keep it.
      const writing = before?.get(field)?.next;
      if (!state.next && writing && meta.pending?.id === writing.id) state.next = writing;
      context[field] = value;
      a.parts.set(field, state);
    }
    (a.snap as { context: unknown }).context = context;
  }

  /** What each part writes for the snapshot about to be stored. */
  private planParts(id: string, a: Activation, snap: AnyMachineSnapshot): PartPlan[] {
    const collections = this.hk.kind.collections;
    if (!collections || !a.parts) return [];
    const prefix = keys.parts({ kind: this.kind, id });
    const context = snap.context as Record<string, unknown>;
    return Object.entries(collections).map(([field, c]) => planPart(prefix, field, a.parts!.get(field)!, context[field], c));
  }

  private migrate(rec: ActorRecord, who: string): unknown {
    const { kind } = this.hk;
    if (rec.machine !== kind.machine.id) throw new Error(`snapshot belongs to machine "${rec.machine}", not "${kind.machine.id}"`);
    let snap = rec.snapshot;
    for (let ver = rec.version; ver !== kind.version; ver++) {
      const step = kind.migrations?.[ver];
      if (ver > kind.version || !step) {
        throw new Error(`snapshot is version ${rec.version} of machine "${rec.machine}" but this node runs version ${kind.version} and has no migration from ${ver} (${who})`);
      }
      snap = step(snap);
    }
    return snap;
  }

  private async process(id: string, a: Activation, batch: Work[]): Promise<void> {
    const started = performance.now();
    const { kind, stepper } = this.hk;
    const { options, metrics } = this.svc;
    const before = { snap: a.snap!, seq: a.seq, steps: a.steps, timers: a.timers };
    let snap = before.snap;
    let seq = before.seq;
    let steps = before.steps;
    let timers = before.timers;
    let dirty = false;
    const outbox: OutboxEntry[] = [];
    const notices: { subject: string; data: unknown }[] = [];
    const replies = new Map<Work, unknown>();
    // An ask without a reply effect is answered with the state right after it, not after its whole batch.
    const after = new Map<Work, AnyMachineSnapshot>();
    // `event`: the timer event that failed (a timer wake can run several; mail and asks carry their own).
    const failures: { w: Work; reason: string; event?: EventObject }[] = [];
    // In the order they happened: each applied event, then the snapshot it changed.
    const inspections: { subject: string; data: unknown }[] = [];
    // Events and activations only for watched actors (a node with inspection off follows no watches).
    const watched = this.svc.watches.watched(kind.name, id);

    const apply = (res: StepResult, w: Work | undefined, event: EventObject) => {
      const changed = res.snapshot !== snap;
      snap = res.snapshot;
      if (changed) dirty = true;
      if (res.cancels.length) {
        timers = timers.filter((t) => !res.cancels.includes(t.id));
        dirty = true;
      }
      for (const t of res.timers) {
        timers = timers.filter((x) => x.id !== t.id).concat({ id: t.id, due: Date.now() + t.delay, event: t.event });
        dirty = true;
      }
      const effects: Effect[] = res.effects.slice();
      for (const n of res.named) {
        const handler = kind.effects?.[n.type];
        if (handler) effects.push(...handler(n.params));
      }
      for (const e of effects) {
        switch (e.type) {
          case 'effect.tell': {
            const to = parseRef(e.to);
            const subject = subjects.mail(to.kind, shardOf(to.id, options.shards));
            const sent = { ...e.event, at: (e.event as { at?: number }).at ?? (event as { at?: number }).at ?? Date.now() };
            outbox.push({ msgId: `${kind.name}/${id}:${steps++}`, subject, data: JSON.stringify(sent), actor: to.id });
            break;
          }
          case 'effect.publish':
            outbox.push({ msgId: `${kind.name}/${id}:${steps++}`, subject: e.subject, data: JSON.stringify(e.data) });
            break;
          case 'effect.notify':
            notices.push({ subject: e.subject, data: e.data });
            break;
          case 'effect.reply':
            if (w?.t === 'ask') replies.set(w, e.data);
            break;
        }
      }
      if (outbox.length) dirty = true;
      if (watched && w) inspections.push({ subject: subjects.inspectEvent(kind.name, id), data: eventInspection(kind.name, id, event, sourceOf(w, `${kind.name}/${id}`), this.svc.nodeId) });
      if (options.inspect && changed) inspections.push({ subject: subjects.inspect(kind.name, id), data: snapshotInspection(kind.name, id, event, this.stored(snap), this.svc.nodeId) });
    };

    if (a.init) {
      apply(a.init, undefined, { type: 'xstate.init' });
      dirty = true;
    }
    for (const w of batch) {
      if (w.t === 'mail' && w.seq <= seq) {
        metrics.redeliveries.inc(this.label);
        continue;
      }
      let events: EventObject[];
      if (w.t === 'timer') {
        const now = Date.now();
        const due = timers.filter((t) => t.due <= now).sort((x, y) => x.due - y.due);
        timers = timers.filter((t) => t.due > now);
        if (due.length) dirty = true;
        // A timer event carries its due time, so a replay sees the same clock.
        events = due.map((t) => ({ ...t.event, at: t.due }));
        metrics.timersFired.inc(this.label, due.length);
      } else {
        events = [w.event];
      }
      for (const event of events) {
        const res = await this.stepWithRetries(snap, event);
        if (typeof res === 'string') failures.push({ w, reason: res, event: w.t === 'timer' ? event : undefined });
        else apply(res, w, event);
        metrics.messages.inc(w.t === 'mail' ? this.viaMail : w.t === 'ask' ? this.viaAsk : this.viaTimer);
      }
      if (w.t === 'ask' && batch.length > 1) after.set(w, snap);
      if (w.t === 'mail') {
        seq = Math.max(seq, w.seq);
        dirty = true;
      }
    }

    if (dirty) {
      if (!this.live) return this.requeue(id, a, batch);
      let plans: PartPlan[] = [];
      const makeRecord = (): ActorRecord => {
        plans = this.planParts(id, a, snap);
        const parts = plans.length ? Object.fromEntries(plans.map((p) => [p.field, p.meta])) : undefined;
        return { machine: kind.machine.id, version: kind.version, seq, snapshot: stepper.persist(this.stored(snap)), timers, outbox, steps, parts };
      };
      let record = makeRecord();
      let bytes = encodeRecord(record);
      const limit = this.svc.nc.info?.max_payload ?? 1024 * 1024;
      const size = bytes.length;
      if (size > limit - 4096 && batch.length > 1) {
        // Find the message that makes it too large: run this batch again one message at a time.
        a.solo = batch.length;
        return this.requeue(id, a, batch);
      }
      if (size > limit - 4096) {
        // A state NATS cannot store is refused, not retried forever: the batch's mail goes to the
        // dead-letter stream with the reason, and the actor keeps its last stored state.
        const reason = `snapshot of ${size} bytes would exceed the server's ${limit}-byte message limit`;
        this.svc.log.error({ actor: `${kind.name}/${id}`, size, limit }, reason);
        for (const w of batch) if (!failures.some((f) => f.w === w)) failures.push({ w, reason });
        ({ snap, steps } = before);
        // Timers that fired in this batch are dropped with it (logged), or they would fire again at once.
        timers = before.timers.filter((t) => t.due > Date.now());
        outbox.length = 0;
        notices.length = 0;
        replies.clear();
        after.clear();
        inspections.length = 0;
        record = makeRecord();
        bytes = encodeRecord(record);
      }
      const oldDue = earliest(before.timers);
      const newDue = earliest(timers);
      // The deadline index may run early, never late: write it before the record when a deadline comes sooner.
      const sooner = newDue !== undefined && (oldDue === undefined || newDue < oldDue);
      if (sooner) await this.writeDeadline(id, newDue);
      // Dead letters first: if we die before the record is written, the same message id is deduplicated.
      for (const f of failures) if (f.w.t !== 'ask') await this.publishDead(f.w, f.reason, id, f.event);
      // Parts go under fresh keys first; the record that points at them is the commit.
      await Promise.all(plans.flatMap((p) => p.writes).map((w) => this.svc.partsKv.put(w.key, w.data)));
      if (!(await this.save(id, a, record, bytes))) return this.retryAfterConflict(id, a, batch);
      for (const p of plans) {
        const state = a.parts!.get(p.field)!;
        commitPart(state, p);
        for (const k of p.garbage) void this.svc.partsKv.purge(k).catch(() => undefined);
        for (const piece of p.dropPieces ?? []) void this.dropPiece(piece);
        if (p.background) {
          a.writing++;
          void writeBackground(state, p, (key, data) => this.svc.partsKv.put(key, data)).finally(() => a.writing--);
        }
      }
      a.snap = snap;
      a.seq = seq;
      a.steps = steps;
      a.timers = timers;
      a.init = undefined;
      // This record replaced any earlier one whose outbox was still stored.
      a.sent = undefined;
      if (outbox.length) {
        await this.publishOutbox(id, record);
        a.sent = record;
      }
      if (newDue !== oldDue && !sooner) await this.writeDeadline(id, newDue);
      this.deadlines.set(id, newDue);
    } else if (batch.some((w) => w.t === 'timer')) {
      // The clock fired before anything was due (an index written early): arm it again for what is due.
      // The index is corrected too, or every rescan of it would wake the actor early again.
      const due = earliest(a.timers);
      await this.writeDeadline(id, due);
      this.deadlines.set(id, due);
    }

    for (const w of batch) {
      if (w.t === 'mail') w.msg.ack();
      else if (w.t === 'ask') {
        const failed = failures.find((f) => f.w === w);
        if (failed) w.msg.respond(answer(false, failed.reason));
        else w.msg.respond(answer(true, replies.has(w) ? replies.get(w) : view(this.stored(after.get(w) ?? snap))));
      }
    }
    for (const n of notices) this.svc.nc.publish(n.subject, JSON.stringify(n.data));
    for (const i of inspections) this.svc.nc.publish(i.subject, JSON.stringify(i.data));
    metrics.deadLetters.inc(this.label, failures.filter((f) => f.w.t !== 'ask').length);
    metrics.processing.observe(this.label, (performance.now() - started) / 1000);
  }

  /** The snapshot as stored and shown: large parts left out (they are stored on their own). */
  private stored(snap: AnyMachineSnapshot): AnyMachineSnapshot {
    const collections = this.hk.kind.collections;
    if (!collections) return snap;
    return { ...snap, context: stripContext(snap.context as Record<string, unknown>, collections) } as AnyMachineSnapshot;
  }

  /** A throwing machine is retried a bounded number of times; the reason comes back when it keeps failing. */
  private async stepWithRetries(snap: AnyMachineSnapshot, event: EventObject) {
    const { retries } = this.svc.options;
    let last = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        return this.hk.stepper.step(snap, event);
      } catch (e) {
        last = `${event.type}: ${(e as Error).message}`;
        if (attempt < retries) await sleep(5 * 4 ** attempt);
      }
    }
    return last;
  }

  /** Writes the record (already encoded when the caller had to measure it) if nobody wrote since we read. */
  private async save(id: string, a: Activation, record: ActorRecord, bytes = encodeRecord(record)): Promise<boolean> {
    const key = keys.state({ kind: this.kind, id });
    try {
      a.rev = a.rev === 0 ? await this.svc.stateKv.create(key, bytes) : await this.svc.stateKv.update(key, bytes, a.rev);
      return true;
    } catch (e) {
      if (!/wrong last sequence|key exists/i.test((e as Error).message)) throw e;
      this.svc.metrics.fenced.inc(this.label);
      return false;
    }
  }

  /** Someone else wrote this actor's snapshot: reload it and apply the batch again (covered mail is skipped). */
  private async retryAfterConflict(id: string, a: Activation, batch: Work[]): Promise<void> {
    this.svc.log.warn({ actor: `${this.kind}/${id}` }, 'snapshot write conflict; reloading');
    a.snap = undefined;
    this.requeue(id, a, batch);
    await sleep(10);
  }

  private requeue(_id: string, a: Activation, batch: Work[]): void {
    a.mailbox = batch.concat(a.mailbox ?? []);
  }

  /**
   * Sends the stored outbox (deduplicated by message id). A failed send is retried with the step; an effect
   * that still fails after MAX_OUTBOX_ATTEMPTS (no stream takes its subject, say) goes to the dead-letter
   * stream with the reason, so that it does not hold up its actor for ever.
   */
  private async publishOutbox(id: string, record: ActorRecord): Promise<void> {
    const { js } = this.svc;
    const results = await Promise.allSettled(
      record.outbox.map((o) => {
        const h = natsHeaders();
        if (o.actor) {
          h.set(HDR_ACTOR, o.actor);
          h.set(HDR_FROM, `${this.kind}/${id}`);
        }
        return js.publish(o.subject, enc.encode(o.data), { msgID: o.msgId, headers: h });
      }),
    );
    let failed: unknown;
    for (const [i, r] of results.entries()) {
      const o = record.outbox[i];
      if (r.status === 'fulfilled') {
        this.outboxTries.forget(o.msgId);
        continue;
      }
      if (this.outboxTries.again(o.msgId)) {
        failed ??= r.reason;
        continue;
      }
      // If the dead-letter stream does not answer either, this throws and the step is retried as before.
      await this.deadEffect(id, o, `effect to ${o.subject} not sent after ${MAX_OUTBOX_ATTEMPTS} attempts: ${(r.reason as Error).message}`);
      this.outboxTries.forget(o.msgId);
    }
    if (failed) throw failed;
  }

  private async deadEffect(id: string, o: OutboxEntry, reason: string): Promise<void> {
    await this.sendDead(id, enc.encode(o.data), `dead:${o.msgId}`, reason, { 'Cc-Subject': o.subject });
    this.svc.metrics.deadLetters.inc(this.label);
    this.svc.log.warn({ actor: `${this.kind}/${id}`, subject: o.subject, reason }, 'effect dead-lettered');
  }

  /**
   * Sent: the outbox is cleared so that a much later activation does not send it again after the dedup
   * window. A busy actor's next record clears it anyway, so this write waits until its mailbox is empty.
   */
  private async clearOutbox(id: string, a: Activation, record: ActorRecord): Promise<void> {
    a.sent = undefined;
    if (!(await this.save(id, a, { ...record, outbox: [] }))) a.snap = undefined;
  }

  private async writeDeadline(id: string, due: number | undefined): Promise<void> {
    const k = keys.timer(this.kind, this.index, id);
    if (due === undefined) await this.svc.timerKv.delete(k);
    else await this.svc.timerKv.put(k, String(due));
  }

  private async reject(w: Work, reason: string, id: string): Promise<void> {
    if (w.t === 'ask') w.msg.respond(answer(false, reason));
    else if (w.t === 'mail') await this.deadLetter(w.msg, reason, id);
  }

  private async deadLetter(m: JsMsg, reason: string, id: string): Promise<void> {
    try {
      await this.publishDead({ t: 'mail', msg: m, seq: m.seq, event: { type: '' } }, reason, id);
    } catch (e) {
      // The dead-letter stream did not answer: the message comes back later and is judged again.
      this.svc.log.warn({ err: e, actor: `${this.kind}/${id}` }, 'dead letter not written; redelivering');
      m.nak(1_000);
      return;
    }
    this.svc.metrics.deadLetters.inc(this.label);
    m.ack();
  }

  private async publishDead(w: Work, reason: string, id: string, event?: EventObject): Promise<void> {
    if (w.t === 'timer') {
      // The timer's event is the letter; its type and due time name it, so a retried batch is deduplicated
      // and two timers failing in one wake are two letters.
      if (!event) return;
      const due = (event as { at?: number }).at ?? 0;
      await this.sendDead(id, enc.encode(JSON.stringify(event)), `dead:${this.kind}:${id}:timer:${event.type}:${due}`, reason, { 'Cc-Source': 'timer' });
      this.svc.log.warn({ actor: `${this.kind}/${id}`, event: event.type, reason }, 'timer event dead-lettered');
      return;
    }
    if (w.t !== 'mail') return;
    await this.sendDead(id, w.msg.data, `dead:${this.kind}:${w.seq}`, reason, { 'Cc-Seq': String(w.seq) });
    this.svc.log.warn({ actor: `${this.kind}/${id}`, seq: w.seq, reason }, 'message dead-lettered');
  }

  /** To the kind's dead-letter subject, with the actor, the reason (one line) and what else says where it came from. */
  private async sendDead(id: string, data: Uint8Array, msgID: string, reason: string, extra: Record<string, string>): Promise<void> {
    const h = natsHeaders();
    h.set(HDR_ACTOR, id);
    h.set(HDR_REASON, reason.slice(0, 1000).replace(/[\r\n]+/g, ' '));
    for (const [name, value] of Object.entries(extra)) h.set(name, value);
    await this.svc.js.publish(subjects.dead(this.kind), data, { msgID, headers: h });
  }

  /** Purges every key under a piece whose chunks are not known here (a base another activation left). */
  private async dropPiece(piece: string): Promise<void> {
    try {
      for await (const k of await this.svc.partsKv.keys(`${piece}.*`)) await this.svc.partsKv.purge(k);
    } catch (e) {
      // Unreferenced either way: only space is lost.
      this.svc.log.warn({ err: e, piece }, 'left-behind part not purged');
    }
  }

  /**
   * Lag is sampled from deliveries (every 64th); a shard that went quiet would show its last backlog for
   * ever, so a quiet one asks its consumer instead.
   */
  private refreshLag(): void {
    if (this.delivered !== this.deliveredAtSweep || this.state !== 'running' || this.lag === 0) {
      this.deliveredAtSweep = this.delivered;
      return;
    }
    void this.svc.jsm.consumers
      .info(MAIL_STREAM, consumerName(this.kind, this.index))
      .then((ci) => this.state === 'running' && this.setLag(ci.num_pending))
      .catch(() => undefined);
  }

  private setLag(n: number): void {
    this.lag = n;
    this.svc.metrics.mailboxLag.set(this.lagLabel, n);
  }

  private passivateIdle(): void {
    const cutoff = Date.now() - this.svc.options.idleMs;
    for (const [id, a] of this.acts) {
      if (!a.running && !a.mailbox && !a.writing && a.lastUsed < cutoff) this.evict(id, a, 'passivate');
    }
  }

  private evict(id: string, a: Activation, why: 'passivate' | 'drop'): void {
    if (this.acts.get(id) !== a) return;
    this.acts.delete(id);
    this.svc.metrics.resident.dec(this.label);
    if (a.live) {
      if (why === 'passivate') this.svc.metrics.passivations.inc(this.label);
      this.svc.onActivation(why, this.kind, id);
    }
  }
}

function earliest(timers: Timer[]): number | undefined {
  let min: number | undefined;
  for (const t of timers) if (min === undefined || t.due < min) min = t.due;
  return min;
}

const answer = (ok: boolean, x: unknown) => JSON.stringify(ok ? { ok, data: x } : { ok, error: x });

/** Who sent a piece of work: the actor whose outbox told it, the actor itself for its timers, else unknown. */
function sourceOf(w: Work, self: string): string | undefined {
  if (w.t === 'timer') return self;
  if (w.t === 'mail') return w.msg.headers?.get(HDR_FROM) || undefined;
  return undefined;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
