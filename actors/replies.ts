// Request/reply for asks over one reply subscription per connection, as nats.js muxes its own requests,
// but without what nats.js 3.4 spends on each one: an Error built (stack and all) for every completed
// request (`RequestOne.cancel`) and a timer set and cleared per request. Deadlines are swept together.
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/nats-core';

export class NoResponders extends Error {}
export class ReplyTimeout extends Error {}
export class ReplyClosed extends Error {}

interface Waiting {
  ok: (m: Msg) => void;
  fail: (e: Error) => void;
  until: number;
  subject: string;
}

/** How often deadlines are checked: an ask times out at most this much after its deadline. */
const SWEEP_MS = 25;

export class Replies {
  private readonly prefix = `${createInbox()}.`;
  private readonly waiting = new Map<string, Waiting>();
  private sub: Subscription | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private next = 0;

  constructor(private readonly nc: NatsConnection) {}

  request(subject: string, body: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Msg> {
    if (this.nc.isClosed()) return Promise.reject(new ReplyClosed('connection closed'));
    this.sub ??= this.listen();
    const token = (this.next++).toString(36);
    return new Promise<Msg>((ok, fail) => {
      this.waiting.set(token, { ok, fail, until: Date.now() + timeoutMs, subject });
      this.sweeper ??= this.sweep();
      try {
        this.nc.publish(subject, body, { reply: this.prefix + token, headers });
      } catch (e) {
        this.waiting.delete(token);
        fail(e as Error);
      }
    });
  }

  private listen(): Subscription {
    const sub = this.nc.subscribe(`${this.prefix}*`, {
      callback: (err, m) => {
        if (err) return this.failAll(err);
        const token = m.subject.slice(this.prefix.length);
        const w = this.waiting.get(token);
        if (!w) return; // answered after its deadline
        this.waiting.delete(token);
        // The server's answer for a subject nobody listens on: an empty message with status 503.
        if (m.data.length === 0 && m.headers?.code === 503) w.fail(new NoResponders(`no responders on ${w.subject}`));
        else w.ok(m);
      },
    });
    void sub.closed.then(() => this.failAll(new ReplyClosed('connection closed')));
    return sub;
  }

  private sweep(): ReturnType<typeof setInterval> {
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [token, w] of this.waiting) {
        if (w.until > now) continue;
        this.waiting.delete(token);
        w.fail(new ReplyTimeout(`timed out waiting for a reply on ${w.subject}`));
      }
      if (!this.waiting.size) {
        clearInterval(timer);
        this.sweeper = undefined;
      }
    }, SWEEP_MS);
    // Waiting asks keep their callers' promises, not the process, alive.
    (timer as { unref?: () => void }).unref?.();
    return timer;
  }

  private failAll(e: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    this.sub = undefined;
    for (const w of all) w.fail(e);
  }
}
