// Calls from the web chat widget (protocol v2 `call.*` frames): the visitor's browser becomes the caller
// leg of their conversation, over WebRTC to the media node, signalled on the chat socket.
//
// - call.start: only from a conversation an agent holds on a chat channel. The call's router is keyed by
//   the conversation id (as web/server/calls.ts expects for a call without a SIP leg); two WebRTC
//   transports are made for the widget.
// - call.produce: the microphone becomes the router's 'caller' producer, then the conversation is told
//   `call.request`: it switches to voice (same conversation, its chat history stays) and is offered to the
//   chat's agent first, else queued as a voice task (machines/conversation.ts). The widget hears ringing.
// - Answered: once the conversation is active on voice and the agent's microphone is on the router, the
//   widget is told `call.answered` and consumes it (call.consume).
// - Ended: the visitor hangs up (or leaves: the socket closed), the agent hangs up in the workspace
//   (AGENT_HANGUP_SUBJECT), wraps up, or the media node loses the call. An answered call goes to wrap-up; one
//   still waiting is abandoned (`customer.left`). The router closes and the widget is told `call.ended`.
//   The chat goes on in the same conversation: the visitor's next message lands there.
// - The agent calls the visitor (ring.ts): the sockets of the conversation on this node get call.incoming;
//   Accept is call.start with the invite (then as above, and the agent's voice reservation is accepted for
//   them, as they placed the call), Decline is call.decline; either, or 30 s, is published to the agent.
// A call lives on the edge node holding the visitor's socket (its media is tied to that page anyway).
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import * as v from 'valibot';
import type { ActorClient } from '../../actors/client.ts';
import { CALL_FAILED_SUBJECT, MediaClient, MediaError } from '../../media/service.ts';
import { AGENT_HANGUP_SUBJECT } from '../sip/edge.ts';
import type { CallServerFrame, CallTransport, ClientFrame, ErrorCode } from './protocol.ts';
import { RING_MS, RingRequest, WIDGET_RING_SUBJECT, ringOutcomeSubject, type RingOutcome } from './ring.ts';
import type { Logger } from './session.ts';

export type CallFrame = Extract<ClientFrame, { type: `call.${string}` }>;

/** A call request refused, with the error code and reason the widget gets. */
export class CallRefusal extends Error {
  constructor(
    readonly code: Extract<ErrorCode, 'call_unavailable' | 'call_failed'>,
    reason: string,
  ) {
    super(reason);
  }
}

const Conversation = v.looseObject({
  value: v.unknown(),
  context: v.looseObject({ channel: v.optional(v.string()), agent: v.optional(v.string()) }),
});
const stateOf = (value: unknown) => String(typeof value === 'object' && value ? Object.keys(value)[0] : value);
const dec = new TextDecoder();

export interface WidgetVoiceDeps {
  nc: NatsConnection;
  actors: Pick<ActorClient, 'tell' | 'ask'>;
  logger: Logger;
  /** How often a ringing call looks for the agent's microphone, and an answered one for its end. */
  pollMs?: { ringing: number; answered: number };
  /** How long the widget rings when the agent calls (ring.ts). */
  ringMs?: number;
}

/** The agent's call ringing in the widget(s) of a conversation (ring.ts). */
interface Invite {
  invite: string;
  conversationId: string;
  agent: string;
  timer: ReturnType<typeof setTimeout>;
}

/** The widget calls on this node, and what ends them from outside (agent hang-up, lost media). */
export class WidgetVoice {
  readonly media: MediaClient;
  readonly calls = new Map<string, WidgetCall>();
  /** Sockets (v2+) following each conversation on this node: where a ring is shown. */
  private readonly sockets = new Map<string, Set<(f: CallServerFrame) => void>>();
  private readonly invites = new Map<string, Invite>();
  private readonly subs: Subscription[];

  constructor(readonly deps: WidgetVoiceDeps) {
    this.media = new MediaClient(deps.nc);
    const byConversation = (data: Uint8Array, then: (call: WidgetCall, body: { reason?: unknown }) => void) => {
      try {
        const body = JSON.parse(dec.decode(data)) as { conversationId?: unknown; reason?: unknown };
        const call = typeof body.conversationId === 'string' ? this.calls.get(body.conversationId) : undefined;
        if (call) then(call, body);
      } catch {
        /* not JSON: not ours */
      }
    };
    this.subs = [
      deps.nc.subscribe(AGENT_HANGUP_SUBJECT, { callback: (err, m) => void (err || byConversation(m.data, (call) => void call.end('the agent hung up', 'agent'))) }),
      deps.nc.subscribe(CALL_FAILED_SUBJECT, { callback: (err, m) => void (err || byConversation(m.data, (call, b) => void call.end(`the call lost its media: ${String(b.reason ?? 'worker died')}`, 'media'))) }),
      deps.nc.subscribe(WIDGET_RING_SUBJECT, { callback: (err, m) => void (err || this.ring(m.data, (sockets) => m.respond(JSON.stringify({ sockets }))) ) }),
    ];
  }

  /** A socket of `conversationId` on this node hears rings; the returned function stops it. */
  listen(conversationId: string, push: (f: CallServerFrame) => void): () => void {
    const set = this.sockets.get(conversationId) ?? new Set();
    this.sockets.set(conversationId, set.add(push));
    return () => {
      set.delete(push);
      if (!set.size && this.sockets.get(conversationId) === set) this.sockets.delete(conversationId);
    };
  }

  /** The agent rings the widget: only a node holding a socket of the conversation answers (ring.ts). */
  private ring(data: Uint8Array, reply: (sockets: number) => void): void {
    let r;
    try {
      r = v.safeParse(RingRequest, JSON.parse(dec.decode(data)));
    } catch {
      return;
    }
    if (!r.success) return;
    const { conversationId, invite, agent, agentName } = r.output;
    const sockets = this.sockets.get(conversationId);
    if (!sockets?.size || this.calls.has(conversationId)) return;
    const timer = setTimeout(() => this.settle(invite, { outcome: 'no-answer', reason: 'the visitor did not answer' }), this.deps.ringMs ?? RING_MS);
    this.invites.set(invite, { invite, conversationId, agent, timer });
    const expiresInMs = this.deps.ringMs ?? RING_MS;
    for (const push of sockets) push({ type: 'call.incoming', invite, ...(agentName ? { agentName } : {}), expiresInMs });
    reply(sockets.size);
  }

  /** The ring's end, once: the agent's workspace is told, every socket that rang stops ringing. */
  private settle(invite: string, o: RingOutcome): Invite | undefined {
    const inv = this.invites.get(invite);
    if (!inv) return undefined;
    this.invites.delete(invite);
    clearTimeout(inv.timer);
    this.deps.nc.publish(ringOutcomeSubject(invite), JSON.stringify(o));
    for (const push of this.sockets.get(inv.conversationId) ?? []) push({ type: 'call.incoming.ended', invite, outcome: o.outcome });
    return inv;
  }

  /** The visitor declines the agent's call: the chat goes on. */
  decline(conversationId: string | undefined, invite: string): void {
    if (this.invites.get(invite)?.conversationId !== conversationId) throw new CallRefusal('call_unavailable', 'that call is no longer ringing');
    this.settle(invite, { outcome: 'declined', reason: 'the visitor declined the call' });
  }

  /** Starts a call in the conversation for a socket; frames for the widget go to `push`. */
  async start(conversationId: string | undefined, push: (f: CallServerFrame) => void, ref: string, invite?: string): Promise<WidgetCall> {
    if (!conversationId) throw new CallRefusal('call_unavailable', 'write to us first: a call starts from a chat');
    // Answering the agent's call: the same call, but the agent who placed it takes it at once.
    let invitedBy: string | undefined;
    if (invite) {
      if (this.invites.get(invite)?.conversationId !== conversationId) throw new CallRefusal('call_unavailable', 'that call is no longer ringing');
      invitedBy = this.settle(invite, { outcome: 'accepted', reason: 'the visitor accepted the call' })?.agent;
    }
    if (this.calls.has(conversationId)) throw new CallRefusal('call_unavailable', 'a call is already in progress in this conversation');
    const c = await this.conversation(conversationId);
    if (!c) throw new CallRefusal('call_unavailable', 'the conversation is not reachable now, try again');
    const state = stateOf(c.value);
    if (state === 'wrapup' || state === 'closed') throw new CallRefusal('call_unavailable', 'the conversation has ended: write to us again first');
    if (c.context.channel === 'voice') throw new CallRefusal('call_unavailable', 'the conversation is already on a call');
    if (state !== 'active' || !c.context.agent) throw new CallRefusal('call_unavailable', 'an agent must join the chat before you can call');
    const call = new WidgetCall(this, conversationId, push, invitedBy === c.context.agent ? invitedBy : undefined);
    this.calls.set(conversationId, call);
    try {
      await call.open(ref);
    } catch (e) {
      await call.end('the call could not start', 'setup');
      throw e;
    }
    return call;
  }

  async conversation(id: string): Promise<v.InferOutput<typeof Conversation> | undefined> {
    const got = await this.deps.actors.ask<unknown>(`conversation/${id}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined);
    const r = v.safeParse(Conversation, got);
    return r.success ? r.output : undefined;
  }

  async stop(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    for (const i of [...this.invites.keys()]) this.settle(i, { outcome: 'no-answer', reason: 'the server is stopping' });
    await Promise.all([...this.calls.values()].map((c) => c.end('the server is stopping', 'customer')));
  }
}

type Ender = 'customer' | 'agent' | 'media' | 'conversation' | 'setup';

export class WidgetCall {
  readonly callId = crypto.randomUUID().replace(/-/g, '').slice(0, 20);
  private send?: string;
  private recv?: string;
  private producerId?: string;
  private agentProducer?: string;
  private phase: 'setup' | 'ringing' | 'answered' | 'ended' = 'setup';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private live: Subscription | undefined;

  constructor(
    private readonly voice: WidgetVoice,
    readonly conversationId: string,
    private readonly push: (f: CallServerFrame) => void,
    /** The agent who called the visitor: their reservation for the voice leg is accepted for them. */
    private readonly invitedBy?: string,
  ) {}
  private reservationAccepted = false;

  get ended(): boolean {
    return this.phase === 'ended';
  }

  private get media(): MediaClient {
    return this.voice.media;
  }

  /** The router and the widget's two transports. */
  async open(ref: string): Promise<void> {
    type Created = { transportId: string; iceParameters: unknown; iceCandidates: unknown; dtlsParameters: unknown; routerRtpCapabilities: unknown };
    const conversationId = this.conversationId;
    const [send, recv] = await media(async () => {
      await this.media.call('router.open', { conversationId });
      return Promise.all([this.media.call<Created>('webrtc.create', { conversationId }), this.media.call<Created>('webrtc.create', { conversationId })]);
    });
    this.send = send.transportId;
    this.recv = recv.transportId;
    const transport = (t: Created): CallTransport => ({ id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters });
    this.push({ type: 'call.transport', ref, callId: this.callId, routerRtpCapabilities: send.routerRtpCapabilities, send: transport(send), recv: transport(recv) });
  }

  /** A call frame after call.start, in the socket's order. */
  async handle(f: CallFrame): Promise<void> {
    if (f.type === 'call.hangup') return this.end('the visitor hung up', 'customer');
    if (this.ended) throw new CallRefusal('call_unavailable', 'the call has ended');
    const conversationId = this.conversationId;
    switch (f.type) {
      case 'call.start':
        throw new CallRefusal('call_unavailable', 'a call is already in progress on this socket');
      case 'call.connect': {
        const transportId = f.direction === 'send' ? this.send! : this.recv!;
        await media(() => this.media.call('webrtc.connect', { conversationId, transportId, dtlsParameters: f.dtlsParameters }));
        return this.push({ type: 'call.connected', ref: f.ref, direction: f.direction });
      }
      case 'call.produce': {
        if (this.producerId) throw new CallRefusal('call_unavailable', 'the microphone is already on the call');
        const r = await media(() => this.media.call<{ producerId: string }>('webrtc.produce', { conversationId, transportId: this.send!, kind: f.kind, rtpParameters: f.rtpParameters, bridge: false, source: 'caller' }));
        this.producerId = r.producerId;
        this.push({ type: 'call.produced', ref: f.ref, producerId: r.producerId });
        // The caller's voice is on the router before any agent is offered the call, so the agent's join finds it.
        await this.voice.deps.actors.tell(`conversation/${conversationId}`, { type: 'call.request', callId: this.callId }, { msgId: `call:${this.callId}` });
        this.phase = 'ringing';
        this.push({ type: 'call.ringing', callId: this.callId });
        this.watch();
        return;
      }
      case 'call.consume': {
        if (!this.agentProducer) throw new CallRefusal('call_unavailable', 'no agent is on the call yet: wait for call.answered');
        const r = await media(() =>
          this.media.call<{ consumerId: string; producerId: string; rtpParameters: unknown }>('webrtc.consume', { conversationId, transportId: this.recv!, rtpCapabilities: f.rtpCapabilities, producerId: this.agentProducer }),
        );
        return this.push({ type: 'call.consumer', ref: f.ref, consumerId: r.consumerId, producerId: r.producerId, kind: 'audio', rtpParameters: r.rtpParameters });
      }
    }
  }

  /**
   * Follows the conversation and the router: live notices make it quick, a poll makes it sure (notices are
   * best effort, and the agent's microphone arriving on the router has no notice).
   */
  private watch(): void {
    const poll = this.voice.deps.pollMs ?? { ringing: 400, answered: 2000 };
    this.live = this.voice.deps.nc.subscribe(`cc.live.conversation.${this.conversationId}`, { callback: () => void this.check() });
    const tick = () => {
      if (this.ended) return;
      void this.check().finally(() => {
        if (!this.ended) this.timer = setTimeout(tick, this.phase === 'answered' ? poll.answered : poll.ringing);
      });
    };
    this.timer = setTimeout(tick, poll.ringing);
  }

  private checking = false;
  private async check(): Promise<void> {
    if (this.ended || this.checking) return;
    this.checking = true;
    try {
      const c = await this.voice.conversation(this.conversationId);
      if (!c || this.ended) return;
      const state = stateOf(c.value);
      if (state === 'wrapup' || state === 'closed') return void (await this.end(state === 'closed' ? 'the conversation was closed' : 'the agent ended the call', 'conversation'));
      if (c.context.channel !== 'voice') return void (await this.end('the conversation went back to chat', 'conversation'));
      if (this.invitedBy && !this.reservationAccepted && (state === 'transferring' || state === 'offered')) await this.acceptForAgent(this.invitedBy);
      if (this.phase !== 'ringing' || (state !== 'active' && state !== 'onHold')) return;
      const info = await this.media.call<{ producers: { id: string; source: string }[] }>('call.info', { conversationId: this.conversationId });
      const agent = info.producers.find((p) => p.source === 'agent');
      if (!agent || this.ended) return;
      this.agentProducer = agent.id;
      this.phase = 'answered';
      // The agent's login stays inside: the widget learns their name from the chat's agent.joined notice.
      this.push({ type: 'call.answered', callId: this.callId });
    } catch (e) {
      this.voice.deps.logger.warn({ conversationId: this.conversationId, err: (e as Error).message }, 'widget call check failed');
    } finally {
      this.checking = false;
    }
  }

  /**
   * The agent placed this call: once the conversation's reservation for the voice leg reached them (the
   * agent actor must know the offer first), it is accepted in their name, as their Accept key would.
   */
  private async acceptForAgent(agent: string): Promise<void> {
    const reservationId = `${this.conversationId}-${this.callId}`;
    const a = await this.voice.deps.actors.ask<{ offers?: Record<string, unknown> }>(`agent/${agent}`, { type: 'get' }, { timeoutMs: 3000 });
    if (!a?.offers || !(reservationId in a.offers) || this.reservationAccepted) return;
    this.reservationAccepted = true;
    await this.voice.deps.actors.tell(`agent/${agent}`, { type: 'offer.accept', reservationId }, { msgId: `accept:${reservationId}` });
  }

  /** Ends the call once, whoever ends it: the conversation is told, the router closed, the widget told. */
  async end(reason: string, by: Ender): Promise<void> {
    if (this.ended) return;
    const was = this.phase;
    this.phase = 'ended';
    clearTimeout(this.timer);
    this.live?.unsubscribe();
    this.voice.calls.delete(this.conversationId);
    const conversationId = this.conversationId;
    try {
      if (was !== 'setup' && by !== 'conversation') {
        const c = await this.voice.conversation(conversationId);
        const state = c ? stateOf(c.value) : '';
        // Answered: wrap-up, as a phone call hung up. Still waiting for an agent: abandoned, as a caller
        // who hangs up in the queue (the next chat message reopens the same conversation).
        const event = state === 'active' || state === 'onHold' ? 'wrapup' : ['queued', 'waiting', 'offered'].includes(state) ? 'customer.left' : undefined;
        if (event) await this.voice.deps.actors.tell(`conversation/${conversationId}`, { type: event }, { msgId: `hangup:${this.callId}` });
      }
    } catch (e) {
      this.voice.deps.logger.warn({ conversationId, err: (e as Error).message }, 'widget call: the conversation was not told of the hang-up');
    }
    await this.media.call('router.close', { conversationId }).catch(() => undefined);
    this.push({ type: 'call.ended', callId: this.callId, reason });
  }
}

/** Media errors keep their reason for the widget; a media node that does not answer says so. */
async function media<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof MediaError) throw new CallRefusal('call_failed', e.reason);
    throw new CallRefusal('call_failed', `no media node answered: ${(e as Error).message}`);
  }
}
