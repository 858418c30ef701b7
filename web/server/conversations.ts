// The workspace's index of conversations, fed by the conversation actors' inspection events
// (cc.inspect.conversation.*, one per state change, carrying the whole context): who owns what, state,
// channel, SLA clocks and deliveries, for inboxes and the wallboard without asking 200 actors per page.
// Unread counts: the conversation's customer messages (its actor counts them) less those the agent had
// when they last opened it, kept in KV `cc_seen` so that every node (and one restarted) agrees. Closed conversations leave a summary in KV
// `cc_reports` (idempotent by id, so every node may write it) for the reports page; a customer's rating
// (csat) that comes after the close writes it again.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import * as v from 'valibot';
import type { ActorClient } from '../../actors/client.ts';

const Ctx = v.looseObject({
  id: v.string(),
  customer: v.optional(v.string(), ''),
  channel: v.optional(v.string(), 'webchat'),
  queue: v.optional(v.string(), ''),
  agent: v.optional(v.string()),
  openedAt: v.optional(v.number(), 0),
  assignedAt: v.optional(v.number()),
  firstResponseAt: v.optional(v.number()),
  lastCustomerAt: v.optional(v.number()),
  inbound: v.optional(v.number()),
  awaitingReply: v.optional(v.boolean(), false),
  slaFirstSec: v.optional(v.number(), 60),
  slaNextSec: v.optional(v.number(), 120),
  breaches: v.optional(v.array(v.object({ kind: v.string(), at: v.number() })), []),
  transfers: v.optional(v.array(v.looseObject({ to: v.string(), note: v.optional(v.string(), ''), at: v.number(), from: v.optional(v.string()) })), []),
  closedAt: v.optional(v.number()),
  disposition: v.optional(v.string(), ''),
  outcome: v.optional(v.string()),
  deliveries: v.optional(v.record(v.string(), v.looseObject({ state: v.string(), at: v.number(), reason: v.optional(v.string()) })), {}),
  csat: v.optional(v.looseObject({ score: v.number(), comment: v.optional(v.string()), at: v.number() })),
});
const Snapshot = v.looseObject({ value: v.unknown(), context: Ctx });
const Inspection = v.looseObject({ actorRef: v.string(), event: v.looseObject({ type: v.string() }), snapshot: Snapshot, at: v.optional(v.number()) });

export type ConversationContextView = v.InferOutput<typeof Ctx>;
export interface Entry extends ConversationContextView {
  state: string;
  /** Customer messages this node has seen. */
  inbound: number;
  lastAt: number;
}
export interface Change {
  entry: Entry;
  /** The event that changed it (customer.message, assigned, transfer, delivery…). */
  event: string;
  /** The agent who held it before, when the event took it away from them. */
  previousAgent?: string;
}

const Summary = v.object({
  id: v.string(),
  channel: v.string(),
  openedAt: v.number(),
  assignedAt: v.optional(v.number()),
  firstResponseAt: v.optional(v.number()),
  closedAt: v.number(),
  outcome: v.optional(v.string()),
  agent: v.optional(v.string()),
  csat: v.optional(v.number()),
});
export type Summary = v.InferOutput<typeof Summary>;

/** The top state's name of a snapshot's value (`{ active: 'talking' }` → `active`). */
export const stateOf = (value: unknown) => String(typeof value === 'object' && value ? Object.keys(value)[0] : value);
const dec = new TextDecoder();
const enc = new TextEncoder();

export class ConversationIndex {
  readonly entries = new Map<string, Entry>();
  private readonly seen = new Map<string, number>();
  private stopSeen: () => void = () => undefined;
  private readonly listeners = new Set<(c: Change) => void>();
  private sub?: Subscription;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly actors: ActorClient,
    readonly reports: KV,
    private readonly seenKv: KV,
    private readonly log: { warn(o: object, m: string): void },
  ) {}

  static async start(nc: NatsConnection, actors: ActorClient, log: { warn(o: object, m: string): void }, replicas = 1): Promise<ConversationIndex> {
    const kvm = new Kvm(nc);
    const reports = await kvm.create('cc_reports', { history: 1, replicas }).catch(() => kvm.open('cc_reports'));
    // Read marks fall away after 30 days: by then the conversation is long closed.
    const seen = await kvm.create('cc_seen', { history: 1, replicas, ttl: 30 * 24 * 3600_000 }).catch(() => kvm.open('cc_seen'));
    const index = new ConversationIndex(nc, actors, reports, seen, log);
    void index.followSeen().catch((err: Error) => log.warn({ err }, 'read marks of other nodes are not followed'));
    index.sub = nc.subscribe('cc.inspect.conversation.*', { callback: (err, m) => {
        if (!err) index.onInspection(m.data);
      } });
    return index;
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.stopSeen();
  }

  on(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private onInspection(data: Uint8Array): void {
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(data));
    } catch {
      return;
    }
    const r = v.safeParse(Inspection, raw);
    if (!r.success) return;
    const before = this.entries.get(r.output.snapshot.context.id);
    const entry = this.put(r.output.snapshot.value, r.output.snapshot.context, r.output.event.type === 'customer.message' ? 1 : 0, r.output.at ?? Date.now());
    const change: Change = { entry, event: r.output.event.type, previousAgent: before?.agent && before.agent !== entry.agent ? before.agent : undefined };
    // On the close, and again when a rating arrives later.
    if (entry.state === 'closed' && (before?.state !== 'closed' || entry.csat?.score !== before.csat?.score)) void this.summarise(entry);
    for (const l of this.listeners) l(change);
  }

  private put(value: unknown, ctx: ConversationContextView, newInbound: number, at: number): Entry {
    const before = this.entries.get(ctx.id);
    const entry: Entry = { ...ctx, state: stateOf(value), inbound: ctx.inbound ?? (before?.inbound ?? 0) + newInbound, lastAt: Math.max(before?.lastAt ?? 0, ctx.lastCustomerAt ?? 0, newInbound ? at : 0, ctx.openedAt) };
    this.entries.set(ctx.id, entry);
    return entry;
  }

  /** The entry, asking the actor when this node has not seen it yet. */
  async load(id: string): Promise<Entry | undefined> {
    const known = this.entries.get(id);
    if (known) return known;
    const got = await this.actors.ask<unknown>(`conversation/${id}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined);
    const r = v.safeParse(Snapshot, got);
    if (!r.success || !r.output.context.customer) return undefined;
    return this.entries.get(id) ?? this.put(r.output.value, r.output.context, 0, Date.now());
  }

  unread(agent: string, id: string): number {
    const e = this.entries.get(id);
    return e ? Math.max(0, e.inbound - (this.seen.get(`${agent}|${id}`) ?? 0)) : 0;
  }

  markRead(agent: string, id: string): void {
    const e = this.entries.get(id);
    if (!e || this.seen.get(`${agent}|${id}`) === e.inbound) return;
    this.seen.set(`${agent}|${id}`, e.inbound);
    void this.seenKv.put(`${agent}.${id}`, enc.encode(String(e.inbound))).catch((err: Error) => this.log.warn({ err, conversation: id }, 'read mark not stored'));
  }

  /** Read marks from every node (this one's too): the bucket's current values, then its changes. */
  private async followSeen(): Promise<void> {
    const w = await this.seenKv.watch();
    this.stopSeen = () => w.stop();
    for await (const e of w) {
      const [agent, id] = e.key.split('.');
      const n = e.operation === 'PUT' ? Number(dec.decode(e.value)) : NaN;
      if (agent && id && Number.isFinite(n)) this.seen.set(`${agent}|${id}`, n);
    }
  }

  private async summarise(e: Entry): Promise<void> {
    const s: Summary = { id: e.id, channel: e.channel, openedAt: e.openedAt, assignedAt: e.assignedAt, firstResponseAt: e.firstResponseAt, closedAt: e.closedAt ?? e.lastAt, outcome: e.outcome, agent: e.agent, csat: e.csat?.score };
    await this.reports.put(`conv.${e.id}`, enc.encode(JSON.stringify(s))).catch((err: Error) => this.log.warn({ err, conversation: e.id }, 'report summary not written'));
  }

  /** Summaries of conversations closed in [from, to). A scan of the bucket: fine for thousands, not millions. */
  async closedBetween(from: number, to: number): Promise<Summary[]> {
    const out: Summary[] = [];
    for await (const k of await this.reports.keys('conv.*')) {
      const got = await this.reports.get(k);
      if (!got || got.operation !== 'PUT') continue;
      const r = v.safeParse(Summary, JSON.parse(dec.decode(got.value)));
      if (r.success && r.output.closedAt >= from && r.output.closedAt < to) out.push(r.output);
    }
    return out;
  }
}

export interface ChannelReport {
  channel: string;
  conversations: number;
  answered: number;
  answerRate: number;
  /** Seconds from opening to the first agent reply, mean over answered conversations that had one. */
  firstResponseSec: number | null;
  /** Seconds from assignment to close, mean over answered conversations. */
  handleSec: number | null;
  /** Mean satisfaction score (1-5) when collected; null when no score was collected. */
  csat: number | null;
  /** How many conversations were rated. */
  ratings: number;
}

/** Per-channel figures from closed conversations' summaries. */
export function reportOf(summaries: Summary[]): ChannelReport[] {
  const by = new Map<string, Summary[]>();
  for (const s of summaries) by.set(s.channel, [...(by.get(s.channel) ?? []), s]);
  const mean = (xs: number[]) => (xs.length ? Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10 : null);
  return [...by.entries()]
    .map(([channel, list]) => {
      const answered = list.filter((s) => s.assignedAt !== undefined);
      const scores = list.filter((s) => s.csat !== undefined).map((s) => s.csat!);
      return {
        channel,
        conversations: list.length,
        answered: answered.length,
        answerRate: Math.round((answered.length / list.length) * 1000) / 10,
        firstResponseSec: mean(answered.filter((s) => s.firstResponseAt !== undefined).map((s) => (s.firstResponseAt! - s.openedAt) / 1000)),
        handleSec: mean(answered.map((s) => (s.closedAt - s.assignedAt!) / 1000)),
        csat: mean(scores),
        ratings: scores.length,
      };
    })
    .sort((a, b) => a.channel.localeCompare(b.channel));
}
