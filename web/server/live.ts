// Live updates for the workspace, one WebSocket per tab. The hub holds one set of NATS subscriptions
// per node and fans events out to tabs by who may see them. Each tab numbers its events (seq) and keeps
// the last RING_SIZE in a ring; a tab that reconnects within TAB_GRACE_MS with ?tab=<id>&since=<seq>
// gets what it missed, otherwise a `reset` telling it to reload its lists (nothing is silently lost).
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Role } from './accounts.ts';
import type { Change, ConversationIndex } from './conversations.ts';

export const RING_SIZE = 1000;
export const TAB_GRACE_MS = 60_000;

export type LiveEvent = { type: string } & Record<string, unknown>;
type Send = (frame: string) => void;

export class Tab {
  seq = 0;
  readonly ring: { seq: number; event: LiveEvent }[] = [];
  send?: Send;
  leftAt = 0;

  constructor(
    readonly id: string,
    readonly user: string,
    readonly role: Role,
  ) {}

  push(event: LiveEvent): void {
    const item = { seq: ++this.seq, event };
    this.ring.push(item);
    if (this.ring.length > RING_SIZE) this.ring.shift();
    this.send?.(JSON.stringify({ seq: item.seq, ...event }));
  }

  /** Attaches a socket and replays what it missed; a gap older than the ring asks the client to reload. */
  attach(send: Send, since: number | undefined): void {
    this.send = send;
    this.leftAt = 0;
    send(JSON.stringify({ type: 'hello', tab: this.id, seq: this.seq }));
    if (since === undefined) return;
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    if (since + 1 < oldest && since < this.seq) send(JSON.stringify({ type: 'reset', seq: this.seq, reason: 'missed events are older than the buffer' }));
    else for (const i of this.ring) if (i.seq > since) send(JSON.stringify({ seq: i.seq, ...i.event }));
  }

  detach(send: Send): void {
    if (this.send === send) {
      this.send = undefined;
      this.leftAt = Date.now();
    }
  }

  get supervises(): boolean {
    return this.role === 'supervisor' || this.role === 'admin';
  }
}

const dec = new TextDecoder();

export class LiveHub {
  private readonly tabs = new Map<string, Tab>();
  private readonly subs: Subscription[] = [];
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly offIndex: () => void;

  constructor(nc: NatsConnection, index: ConversationIndex) {
    const on = (subject: string, fn: (data: Record<string, unknown>, subject: string) => void) =>
      this.subs.push(
        nc.subscribe(subject, {
          callback: (err, m) => {
            if (err) return;
            try {
              const body = JSON.parse(dec.decode(m.data));
              if (body && typeof body === 'object') fn(body as Record<string, unknown>, m.subject);
            } catch {
              /* not JSON: not ours to show */
            }
          },
        }),
      );
    on('cc.agent.*.offers', (offer, subject) => this.toUser(subject.split('.')[2], { type: 'offer', offer }));
    // A warm transfer's consult (web/server/calls.ts): invited, joined, declined, cancelled, completed, ended.
    on('cc.agent.*.consult', (consult, subject) => this.toUser(subject.split('.')[2], { type: 'consult', consult }));
    on('cc.live.agent.*', (agent, subject) => {
      const id = subject.split('.')[3];
      this.each((t) => (t.user === id || t.supervises ? t.push({ type: 'agent', agent }) : undefined));
    });
    on('cc.live.queue.*', (queue) => this.each((t) => (t.supervises ? t.push({ type: 'queue', queue }) : undefined)));
    on('cc.conversation.*.delivery', (d, subject) => {
      const conversationId = subject.split('.')[2];
      this.each((t) => (t.user === d.agent || t.supervises ? t.push({ type: 'delivery', conversationId, ...d }) : undefined));
    });
    on('cc.conversation.*.typing', (d, subject) => {
      const entry = index.entries.get(subject.split('.')[2]);
      if (entry?.agent) this.toUser(entry.agent, { type: 'typing', conversationId: entry.id, ...d });
    });
    this.offIndex = index.on((c: Change) =>
      this.each((t) => {
        if (t.user !== c.entry.agent && t.user !== c.previousAgent && !t.supervises) return;
        t.push({ type: 'conversation', event: c.event, conversation: slim(c), unread: t.user === c.entry.agent ? index.unread(t.user, c.entry.id) : 0 });
      }),
    );
    this.sweeper = setInterval(() => {
      const cut = Date.now() - TAB_GRACE_MS;
      for (const [id, t] of this.tabs) if (!t.send && t.leftAt && t.leftAt < cut) this.tabs.delete(id);
    }, 10_000);
    (this.sweeper as { unref?: () => void }).unref?.();
  }

  /** The caller's tab: the one it names when it is theirs, else a new one. */
  tab(id: string | undefined, user: string, role: Role): Tab {
    const known = id ? this.tabs.get(id) : undefined;
    if (known && known.user === user) return known;
    const t = new Tab(crypto.randomUUID(), user, role);
    this.tabs.set(t.id, t);
    return t;
  }

  private each(fn: (t: Tab) => void): void {
    for (const t of this.tabs.values()) fn(t);
  }

  private toUser(user: string, e: LiveEvent): void {
    this.each((t) => (t.user === user ? t.push(e) : undefined));
  }

  stop(): void {
    clearInterval(this.sweeper);
    this.offIndex();
    for (const s of this.subs) s.unsubscribe();
  }
}

/** What a screen needs of a change: no delivery map or transfer notes of others beyond the entry. */
const slim = (c: Change) => ({ id: c.entry.id, state: c.entry.state, channel: c.entry.channel, queue: c.entry.queue, agent: c.entry.agent, customer: c.entry.customer, lastAt: c.entry.lastAt, awaitingReply: c.entry.awaitingReply, previousAgent: c.previousAgent });
