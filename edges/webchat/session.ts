// One client socket speaking protocol v1: hello (who it is, where it left off), customer messages into
// the sink, the conversation's log out to the socket, typing both ways, receipts back to the sink.
// Frames are handled one at a time in arrival order, so acks come back in the order messages went out.
import * as v from 'valibot';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { InboundMessageSchema, type Attachment, type InboundSink, type Sender } from '../message.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { ClientFrameSchema, CLOSE, LIMITS, PROTOCOL_VERSION, SUPPORTED_VERSIONS, firstIssue, type ClientFrame, type ErrorCode, type Hello, type ServerFrame } from './protocol.ts';
import { CallRefusal, type CallFrame, type WidgetCall, type WidgetVoice } from './call.ts';
import { typingSubject, type ConversationLog, type LoggedEntry } from './log.ts';
import { verifyChatLink } from './link.ts';
import { verifyUserToken } from './token.ts';
import { uploadPrefix } from './upload.ts';
import type { WebchatMetrics } from './metrics.ts';
import type { RatingTaker } from './csat.ts';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The socket as the session sees it: text out, and a close with a code and a reason. */
export interface Peer {
  send(text: string): void;
  close(code: number, reason: string): void;
}

export type Account = { kind: 'site'; key: string } | { kind: 'app'; key: string; secret: string };

export interface SessionDeps {
  nc: NatsConnection;
  log: ConversationLog;
  sink: InboundSink;
  blobs: BlobStore;
  metrics: WebchatMetrics;
  logger: Logger;
  now?: () => number;
  /** Calls from the widget (protocol v2); absent: this edge offers no voice. */
  voice?: WidgetVoice;
  /** Secret of chat links (CHAT_LINK_SECRET); absent: links are refused. */
  chatLinkSecret?: string;
  /** Ratings of closed conversations (protocol v3 `csat`); absent: refused as not collected here. */
  csat?: RatingTaker;
}

const VISITOR_ID = /^[A-Za-z0-9_-]{22}$/;
const TypingSchema = v.object({ from: v.picklist(['agent', 'customer']), typing: v.boolean() });

export function newVisitorId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class Session {
  private readonly now: () => number;
  private chain: Promise<void> = Promise.resolve();
  private tokens: number = LIMITS.rateBurst;
  private refilledAt: number;
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  private who: { handle: string; from: Sender; channel: 'webchat' | 'app' } | undefined;
  private conversationId: string | undefined;
  private tail: { stop(): void } | undefined;
  private typingSub: Subscription | undefined;
  /** Stops this socket hearing the agent's calls (v2+: edges/webchat/ring.ts). */
  private offRing: (() => void) | undefined;
  private ringable = false;
  /** Highest seq sent on this socket: a tail restarted after a conversation switch never repeats one. */
  private sentSeq = 0;
  private queued = 0;
  private closed = false;
  /** The protocol version the client said hello with. */
  private version = PROTOCOL_VERSION;
  private call: WidgetCall | undefined;

  constructor(
    private readonly deps: SessionDeps,
    private readonly account: Account,
    private readonly peer: Peer,
  ) {
    this.now = deps.now ?? Date.now;
    this.refilledAt = this.now();
    this.helloTimer = setTimeout(() => this.shut(CLOSE.helloTimeout, `no hello within ${LIMITS.helloMs / 1000} s`), LIMITS.helloMs);
    deps.metrics.sockets.inc({ channel: this.channel });
  }

  private get channel(): 'webchat' | 'app' {
    return this.account.kind === 'site' ? 'webchat' : 'app';
  }

  /** A frame from the client, as the socket gave it. Answers (errors too) go out in the order frames came. */
  receive(data: unknown): void {
    if (this.closed) return;
    // A client that keeps sending while its frames wait (a stalled sink) is cut off, not buffered for ever.
    if (++this.queued > LIMITS.queuedFrames) return this.shut(CLOSE.policy, `more than ${LIMITS.queuedFrames} frames waiting`);
    const limited = !this.takeToken();
    const frame = limited ? undefined : data;
    this.chain = this.chain
      .then(() => (limited ? this.rateLimited() : this.parse(frame)))
      .catch((e) => this.deps.logger.error({ err: (e as Error).message, channel: this.channel }, 'webchat frame failed'))
      .finally(() => void this.queued--);
  }

  private async parse(data: unknown): Promise<void> {
    if (this.closed) return;
    if (typeof data !== 'string') return this.reject('bad_frame', 'binary frames are not part of the protocol: send JSON text');
    if (data.length > LIMITS.frameBytes / 3 && new TextEncoder().encode(data).length > LIMITS.frameBytes) {
      return this.reject('too_large', `frame is larger than ${LIMITS.frameBytes} bytes`);
    }
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch (e) {
      return this.reject('bad_json', `frame is not JSON: ${(e as Error).message}`);
    }
    const r = v.safeParse(ClientFrameSchema, json);
    if (!r.success) {
      // The refused frame's own name for itself, so the client knows which one: a message id, a call ref, a rated conversation.
      const f = json as { type?: unknown; clientMessageId?: unknown; ref?: unknown; conversationId?: unknown } | null;
      const named = f?.clientMessageId ?? f?.ref ?? (f?.type === 'csat' ? f.conversationId : undefined);
      const ref = typeof named === 'string' ? named.slice(0, 64) : undefined;
      return this.reject('bad_frame', firstIssue(r.issues), ref);
    }
    this.deps.metrics.framesIn.inc({ type: r.output.type });
    return this.handle(r.output);
  }

  /** The socket is gone: stop reading the log for it. */
  closedByPeer(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }

  private release(): void {
    clearTimeout(this.helloTimer);
    this.tail?.stop();
    this.tail = undefined;
    this.typingSub?.unsubscribe();
    this.typingSub = undefined;
    this.offRing?.();
    // The call's media is this page's: a visitor who leaves hangs up.
    void this.call?.end('the visitor left', 'customer');
    this.deps.metrics.sockets.dec({ channel: this.channel });
  }

  private shut(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    // Close reasons are limited to 123 bytes.
    this.peer.close(code, reason.slice(0, 120));
  }

  private send(frame: ServerFrame): void {
    if (this.closed) return;
    this.deps.metrics.framesOut.inc({ type: frame.type });
    this.peer.send(JSON.stringify(frame));
  }

  private reject(code: ErrorCode, reason: string, ref?: string, retryAfterMs?: number): void {
    this.deps.metrics.rejected.inc({ code });
    this.send({ type: 'error', code, reason, ...(ref ? { ref } : {}), ...(retryAfterMs ? { retryAfterMs } : {}) });
  }

  private takeToken(): boolean {
    const t = this.now();
    this.tokens = Math.min(LIMITS.rateBurst, this.tokens + ((t - this.refilledAt) / 1000) * LIMITS.ratePerSec);
    this.refilledAt = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private rateLimited(): void {
    const retryAfterMs = Math.max(1, Math.ceil(((1 - this.tokens) / LIMITS.ratePerSec) * 1000));
    this.reject('rate_limited', `more than ${LIMITS.ratePerSec} frames a second: frame dropped, send it again later`, undefined, retryAfterMs);
  }

  private async handle(frame: ClientFrame): Promise<void> {
    if (this.closed) return;
    if (frame.type === 'hello') return this.hello(frame);
    if (!this.who) return this.reject('hello_required', 'send hello first');
    switch (frame.type) {
      case 'message':
        return this.message(frame);
      case 'typing':
        if (this.conversationId) this.deps.nc.publish(typingSubject(this.conversationId), JSON.stringify({ from: 'customer', typing: frame.typing, at: this.now() }));
        return;
      case 'read':
      case 'delivered':
        return this.receipt(frame.type, frame.seq);
      case 'ping':
        return this.send({ type: 'pong', at: this.now() });
      case 'csat':
        return this.rate(frame);
      default:
        return this.callFrame(frame);
    }
  }

  private async hello(h: Hello): Promise<void> {
    if (this.who) return this.reject('bad_frame', 'hello was already said on this socket');
    if (!SUPPORTED_VERSIONS.includes(h.v)) {
      this.reject('bad_version', `protocol version ${h.v} is not supported (this server speaks ${SUPPORTED_VERSIONS.join(' and ')})`);
      return this.shut(CLOSE.badHello, 'unsupported protocol version');
    }
    let visitorId: string | undefined;
    if (this.account.kind === 'site') {
      visitorId = h.visitorId && VISITOR_ID.test(h.visitorId) ? h.visitorId : newVisitorId();
      const handle = `visitor:${visitorId}`;
      this.who = { handle, channel: 'webchat', from: { handle, ...(h.name ? { displayName: h.name } : {}) } };
      if (h.link) {
        // A chat link joins the conversation it names, and the phone it was texted to is this visitor's
        // (the SMS reached that phone): their messages link to the caller's customer and land there.
        const checked = this.deps.chatLinkSecret ? await verifyChatLink(this.deps.chatLinkSecret, h.link, this.now()) : { ok: false as const, reason: 'this server takes no chat links' };
        if (checked.ok) {
          this.who.from = { ...this.who.from, phone: checked.link.phone, verified: { phone: true } };
          await this.deps.log.bind(this.account.key, handle, checked.link.conversationId);
        } else this.reject('bad_link', checked.reason);
      }
    } else {
      if (!h.user || !h.token) {
        this.reject('bad_token', 'an app hello needs user and token');
        return this.shut(CLOSE.unauthorized, 'an app hello needs user and token');
      }
      const check = await verifyUserToken(this.account.secret, h.user, h.token, this.now());
      if (!check.ok) {
        this.reject(check.code, check.reason);
        return this.shut(CLOSE.unauthorized, check.reason);
      }
      const u = h.user;
      const handle = `${this.account.key}:${u.id}`;
      this.who = {
        handle,
        channel: 'app',
        from: {
          handle,
          ...(u.name ? { displayName: u.name } : {}),
          ...(u.phone ? { phone: u.phone } : {}),
          ...(u.email ? { email: u.email } : {}),
          // The app signed these: they are verified contact points for linking across channels.
          ...(u.phone || u.email ? { verified: { ...(u.phone ? { phone: true } : {}), ...(u.email ? { email: true } : {}) } } : {}),
        },
      };
    }
    clearTimeout(this.helloTimer);
    this.version = h.v;
    this.ringable = this.version >= 2 && h.ring === true;
    const current = await this.deps.log.current(this.account.key, this.who.handle);
    const resumes = current !== undefined && h.resume?.conversationId === current;
    this.send({
      type: 'welcome',
      v: this.version,
      ...(visitorId ? { visitorId } : {}),
      ...(h.user ? { userId: h.user.id } : {}),
      conversationId: current ?? null,
      lastSeq: resumes ? h.resume!.lastSeq : 0,
      ...(this.version >= 2 ? { voice: Boolean(this.deps.voice) } : {}),
    });
    // A client that comes back to the same conversation gets what it missed; otherwise the whole log.
    if (current) await this.follow(current, resumes ? h.resume!.lastSeq + 1 : 1);
  }

  private async follow(conversationId: string, from: number): Promise<void> {
    this.tail?.stop();
    this.typingSub?.unsubscribe();
    this.conversationId = conversationId;
    this.offRing?.();
    if (this.ringable && !this.closed) this.offRing = this.deps.voice?.listen(conversationId, (f) => this.send(f));
    const forward = (e: LoggedEntry) => {
      if (this.closed || e.conversationId !== this.conversationId || e.seq <= this.sentSeq) return;
      this.sentSeq = e.seq;
      // A rating's notice is v3 news: older clients have nothing to show for it.
      if (e.frame.type === 'notice' && e.frame.kind === 'csat.rated' && this.version < 3) return;
      this.send({ ...e.frame, seq: e.seq, conversationId: e.conversationId });
    };
    this.tail = await this.deps.log.tail(conversationId, from, forward, (err) => this.deps.logger.warn({ err: err.message, conversationId }, 'webchat log tail failed'));
    if (this.closed) this.tail.stop();
    this.typingSub = this.deps.nc.subscribe(typingSubject(conversationId), {
      callback: (err, m) => {
        if (err || this.closed) return;
        try {
          const t = v.parse(TypingSchema, m.json());
          if (t.from === 'agent') this.send({ type: 'typing', from: 'agent', typing: t.typing });
        } catch {
          // Someone else's malformed typing event is not this customer's problem.
        }
      },
    });
  }

  private async message(f: Extract<ClientFrame, { type: 'message' }>): Promise<void> {
    const who = this.who!;
    if (!f.text?.trim() && !f.attachments?.length) return this.reject('bad_frame', 'a message needs text or attachments', f.clientMessageId);
    let attachments: Attachment[];
    try {
      attachments = await this.checkAttachments(f.attachments ?? []);
    } catch (e) {
      return this.reject('bad_attachment', (e as Error).message, f.clientMessageId);
    }
    const channelMessageId = `${who.handle}:${f.clientMessageId}`;
    const at = this.now();
    const parsed = v.safeParse(InboundMessageSchema, {
      channel: who.channel,
      account: this.account.key,
      channelMessageId,
      from: who.from,
      ...(f.text ? { text: f.text } : {}),
      attachments,
      sentAt: at,
      ...(this.conversationId ? { thread: { conversationId: this.conversationId } } : {}),
      meta: { protocol: `webchat/v${this.version}` },
    });
    if (!parsed.success) return this.reject('bad_frame', firstIssue(parsed.issues), f.clientMessageId);
    let delivered: { conversationId: string; duplicate: boolean };
    let logged: { seq: number; duplicate: boolean };
    try {
      delivered = await this.deps.sink.deliver(parsed.output);
      // Bind before the echo is logged, so a socket resumed on another node finds the conversation.
      await this.deps.log.bind(this.account.key, who.handle, delivered.conversationId);
      logged = await this.deps.log.append(
        delivered.conversationId,
        { type: 'message', id: channelMessageId, from: 'customer', clientMessageId: f.clientMessageId, ...(f.text ? { text: f.text } : {}), attachments, at },
        // The same frame sent again (after a reconnect) gets its first seq back.
        `in:${channelMessageId}`,
      );
    } catch (e) {
      this.deps.logger.warn({ err: (e as Error).message, channelMessageId }, 'webchat message not taken');
      return this.reject('unavailable', `message not taken, send it again: ${(e as Error).message}`, f.clientMessageId);
    }
    if (delivered.conversationId !== this.conversationId) {
      this.send({ type: 'conversation', conversationId: delivered.conversationId });
      await this.follow(delivered.conversationId, 1);
    }
    this.send({ type: 'ack', clientMessageId: f.clientMessageId, seq: logged.seq, conversationId: delivered.conversationId, duplicate: delivered.duplicate || logged.duplicate });
  }

  /**
   * The customer rates the conversation this socket follows (protocol v3): the conversation actor takes it
   * once, from its own customer, after an agent served it. A taken rating is answered with `csat.ack` and
   * logged as a `csat.rated` notice, so the customer's other tabs (and this one after a reload) show it.
   */
  private async rate(f: Extract<ClientFrame, { type: 'csat' }>): Promise<void> {
    const ref = f.conversationId;
    if (this.version < 3) return this.reject('bad_frame', 'csat is protocol v3: say hello with v 3', ref);
    if (!this.deps.csat) return this.reject('csat_refused', 'ratings are not collected on this server', ref);
    // Only the conversation this customer's socket follows: its own (bound to its handle by the engine).
    if (f.conversationId !== this.conversationId) return this.reject('csat_refused', 'you can only rate your own conversation', ref);
    const comment = f.comment?.trim() || undefined;
    const at = this.now();
    let taken: { duplicate: boolean; score: number };
    try {
      const r = await this.deps.csat.rate({ conversationId: f.conversationId, score: f.score, comment, by: { channel: this.channel, handle: this.who!.handle }, at });
      if (!r.ok) return this.reject('csat_refused', r.reason, ref);
      taken = r;
      await this.deps.log.append(f.conversationId, { type: 'notice', kind: 'csat.rated', score: r.score, at }, `csat:${f.conversationId}`);
    } catch (e) {
      this.deps.logger.warn({ err: (e as Error).message, conversationId: f.conversationId }, 'webchat rating not taken');
      return this.reject('unavailable', `rating not taken, send it again: ${(e as Error).message}`, ref);
    }
    this.send({ type: 'csat.ack', conversationId: f.conversationId, score: taken.score, duplicate: taken.duplicate });
  }

  /** A call frame (v2): call.start makes this socket's call, the others go to it; refusals keep the ref. */
  private async callFrame(f: CallFrame): Promise<void> {
    const ref = 'ref' in f ? f.ref : undefined;
    if (this.version < 2) return this.reject('bad_frame', `${f.type} is protocol v2: say hello with v 2`, ref);
    const voice = this.deps.voice;
    if (!voice) return this.reject('call_unavailable', 'calls are not enabled on this server', ref);
    try {
      if (f.type === 'call.decline') return voice.decline(this.conversationId, f.invite);
      if (f.type === 'call.start' && (!this.call || this.call.ended)) {
        this.call = await voice.start(this.conversationId, (frame) => this.send(frame), f.ref, f.invite);
        return;
      }
      if (!this.call) return this.reject('call_unavailable', 'no call on this socket: send call.start first', ref);
      await this.call.handle(f);
    } catch (e) {
      if (e instanceof CallRefusal) return this.reject(e.code, e.message, ref);
      this.deps.logger.warn({ err: (e as Error).message, type: f.type }, 'webchat call frame failed');
      return this.reject('call_failed', `${f.type} failed: ${(e as Error).message}`, ref);
    }
  }

  /** Attachments must be this customer's own uploads; size and type come from the store, not the client. */
  private async checkAttachments(list: Attachment[]): Promise<Attachment[]> {
    if (!list.length) return [];
    const prefix = await uploadPrefix(this.account.key, this.who!.handle);
    const out: Attachment[] = [];
    for (const a of list) {
      if (!a.key.startsWith(prefix)) throw new Error(`attachment ${a.name || a.key} was not uploaded by this customer: upload it first (POST /webchat/v1/upload)`);
      const info = await this.deps.blobs.head(a.key).catch(() => undefined);
      if (!info) throw new Error(`attachment ${a.name || a.key} is not in the store: upload it again`);
      out.push({ key: a.key, name: a.name, contentType: info.contentType.split(';')[0].trim(), size: info.size, sha256: info.sha256 });
    }
    return out;
  }

  /** Delivered/read from the customer's screen: every agent message up to seq gets its state, once per state. */
  private async receipt(state: 'delivered' | 'read', seq: number): Promise<void> {
    const conversationId = this.conversationId;
    if (!conversationId) return;
    for (let attempt = 0; attempt < 3; attempt++) {
      const p = await this.deps.log.pointer(conversationId, state);
      if (seq <= p.seq) return;
      const entries = await this.deps.log.range(conversationId, p.seq + 1, seq);
      // Only up to what exists: a client claiming a future seq cannot swallow receipts for later replies.
      const upTo = entries.at(-1)?.seq;
      if (upTo === undefined) return;
      const at = this.now();
      for (const e of entries) {
        if (e.frame.type !== 'message' || e.frame.from !== 'agent') continue;
        await this.deps.sink.delivery({ messageId: e.frame.id, conversationId, channel: this.channel, state, at, channelMessageId: String(e.seq) });
      }
      // Reported before the pointer moves: a crash in between repeats a state, never loses one.
      if (await this.deps.log.movePointer(conversationId, state, upTo, p.revision)) return;
    }
  }
}
