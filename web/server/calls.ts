// The agent's voice leg in the browser (mediasoup-client over WebRTC), mounted at /api/calls/:id/*:
//   POST join      two WebRTC transports (send, recv) on the call's router + the router's capabilities
//   POST connect   { direction, dtlsParameters }            DTLS for one of them
//   POST produce   { kind, rtpParameters }                  the agent's microphone, bridged to the caller's leg
//   POST consume   { rtpCapabilities }                      the caller's voice towards the browser
//   POST mute      { muted }                                pauses / resumes the agent's producer
//   POST hold      { held }                                 conversation hold/resume + both directions paused, music to the caller
//   POST hangup                                             closes the agent's leg and asks the SIP edge to end the call
//   POST dtmf      { digits }                               keys toward the trunk (RFC 4733, written by the SIP edge)
//   GET  stats                                              mediasoup's figures for the leg (packets each way)
// Warm transfer (a consult leg):
//   POST consult          { agent, note? }  the call's agent invites a colleague: the caller hears music (the agent's
//                                           voice toward the caller and the caller toward the agent paused)
//   POST consult/join                       the invited agent's leg on the same router, NOT bridged to the caller;
//                                           then connect / produce / consume { peer: true } as above: the two agents hear each other
//   POST consult/decline                    the invited agent says no (or leaves): the caller is back with the agent
//   POST consult/cancel                     the call's agent ends the consult: the colleague's leg closes, caller back
//   POST consult/complete { note? }         the conversation is transferred to the colleague (accepted at once: they
//                                           agreed by joining), their voice is bridged to the caller, the first leg closes
//   GET  /consults                          the consults this user is invited to (a reloaded page)
// Each step is told to both agents on `cc.agent.<id>.consult` (live `consult` frames in their workspaces).
// Only the agent the conversation is assigned to, while it is an active (or held) voice conversation: the
// conversation actor is asked each time, not the index, so a transferred call stops being reachable at once;
// the invited agent reaches only their own consult leg. Transport ids never come from the browser: this node
// keeps each agent's leg, so a client cannot touch another call's transports. A leg and a consult live in this
// node's memory (both agents' browsers talk to the node where the consult started).
import { Hono, type Context } from 'hono';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import * as v from 'valibot';
import type { ActorClient } from '../../actors/client.ts';
import { DialError, dialCall, DialRequest } from '../../edges/sip/outbound.ts';
import type { StoreClient } from '../../storage/client.ts';
import { AGENT_DTMF_SUBJECT, AGENT_HANGUP_SUBJECT, DtmfRequest, mediaId } from '../../edges/sip/edge.ts';
import { MediaClient, MediaError } from '../../media/service.ts';
import { DtlsParameters, RtpCapabilities, RtpParameters } from '../../media/webrtc.ts';
import { UserId, type Session } from './accounts.ts';
import type { ConversationIndex } from './conversations.ts';
import { isResponse, jsonBody, reasonOf } from './schemas.ts';


export const ConnectBody = v.object({ direction: v.picklist(['send', 'recv'], 'must be send or recv'), dtlsParameters: DtlsParameters });
export const ProduceBody = v.object({ kind: v.literal('audio', 'only audio'), rtpParameters: RtpParameters });
/** `peer`: the other agent of a consult instead of the caller. */
export const ConsumeBody = v.object({ rtpCapabilities: RtpCapabilities, peer: v.optional(v.boolean('must be true or false'), false) });
const Note = v.optional(v.pipe(v.string(), v.maxLength(1000, 'must be at most 1000 characters')), '');
export const ConsultBody = v.object({ agent: UserId, note: Note });
export const CompleteBody = v.object({ note: v.optional(Note) });
export const MuteBody = v.object({ muted: v.boolean('must be true or false') });
export const HoldBody = v.object({ held: v.boolean('must be true or false') });
export const DtmfBody = v.object({ digits: DtmfRequest.entries.digits });
const DtmfReply = v.union([v.object({ sent: v.number() }), v.object({ error: v.string() })]);

interface Leg {
  user: string;
  /** The router's key on the media node. */
  media: string;
  send: string;
  recv: string;
  producerId?: string;
  consumerId?: string;
  /** The other agent's voice during a consult. */
  peerConsumerId?: string;
  held: boolean;
}

/** A warm transfer in the making: `to` was invited to the call `from` holds. */
interface Consult {
  conversation: string;
  media: string;
  from: string;
  to: string;
  note: string;
  at: number;
  /** The invited agent's leg once they joined (never bridged to the caller until completed). */
  leg?: Leg;
  completing: boolean;
}
export type ConsultEvent = 'invited' | 'joined' | 'declined' | 'cancelled' | 'completed' | 'ended';
/** Core NATS: what happened to a consult, for one agent's workspace (web/server/live.ts `consult` frames). */
export const consultSubject = (agent: string) => `cc.agent.${agent}.consult`;
type CallInfo = { plain: string[]; producers: { id: string; source: string; mimeType: string; paused: boolean }[]; consumers: { id: string; producerId: string; paused: boolean; bridged: boolean }[] };

type Env = { Variables: { session: Session } };
type Ctx = Context<Env>;
const IdParam = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/, 'not a conversation id'));
const CONV = v.looseObject({
  value: v.unknown(),
  context: v.looseObject({ agent: v.optional(v.string()), channel: v.optional(v.string()), transfers: v.optional(v.array(v.unknown()), []), task: v.optional(v.looseObject({ attrs: v.optional(v.record(v.string(), v.unknown())) })) }),
});
const AGENT = v.looseObject({ presence: v.optional(v.string()), load: v.optional(v.record(v.string(), v.number()), {}), capacity: v.optional(v.record(v.string(), v.number()), {}), offers: v.optional(v.record(v.string(), v.unknown()), {}) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = new TextEncoder();

export interface CallRoutes {
  app: Hono<Env>;
  /** Legs on this node (tests). */
  legs: Map<string, Readonly<Leg>>;
  /** Consults on this node, by conversation (tests). */
  consults: Map<string, Readonly<Consult>>;
  stop(): Promise<void>;
}

export function callRoutes(deps: { nc: NatsConnection; actors: ActorClient; index: ConversationIndex; log: Logger; holdPrompt?: string }): CallRoutes {
  const media = new MediaClient(deps.nc);
  const legs = new Map<string, Leg>();
  const consults = new Map<string, Consult>();
  const log = deps.log;
  const holdPrompt = deps.holdPrompt ?? 'music.hold';
  const app = new Hono<Env>();
  const fail = (c: Ctx, status: 400 | 403 | 404 | 409 | 502, error: string) => c.json({ error }, status);

  const body = jsonBody;

  type Call = { id: string; media: string; state: string; agent: string; transfers: number };
  /** The live voice call of the route's conversation, whoever asks; its media key on the media node. */
  async function liveCall(c: Ctx): Promise<Call | Response> {
    const id = v.safeParse(IdParam, c.req.param('id'));
    if (!id.success) return fail(c, 400, reasonOf(id.issues));
    const got = await deps.actors.ask<unknown>(`conversation/${id.output}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined);
    const r = v.safeParse(CONV, got);
    const agent = r.success ? r.output.context.agent : undefined;
    if (!r.success || !agent) return fail(c, 404, `no conversation ${id.output} with an agent`);
    const ctx = r.output.context;
    const user = c.get('session').user;
    if (agent !== user && consults.get(id.output)?.to !== user) return fail(c, 403, 'this call is not assigned to you');
    const state = String(typeof r.output.value === 'object' && r.output.value ? Object.keys(r.output.value)[0] : r.output.value);
    if (ctx.channel !== 'voice') return fail(c, 409, `the conversation is on ${ctx.channel ?? 'no channel'}, not voice`);
    if (state !== 'active' && state !== 'onHold') return fail(c, 409, `the call is ${state}`);
    const callId = ctx.task?.attrs?.callId;
    // A SIP call's router is keyed by its Call-ID; a call started from a chat by the conversation id.
    return { id: id.output, media: typeof callId === 'string' ? mediaId({ callId }) : id.output, state, agent, transfers: ctx.transfers.length };
  }
  /** The call when it is this user's live voice conversation. */
  async function callOf(c: Ctx): Promise<Call | Response> {
    const call = await liveCall(c);
    if (!isResponse(call) && call.agent !== c.get('session').user) return fail(c, 403, 'this call is not assigned to you');
    return call;
  }
  /** This user's leg in the call: the agent's own, or the invited agent's consult leg. */
  const legOf = (c: Ctx, call: Call): Leg | Response => {
    const user = c.get('session').user;
    const leg = call.agent === user ? legs.get(call.id) : consults.get(call.id)?.leg;
    if (!leg || leg.user !== user) return fail(c, 409, call.agent === user ? 'join the call first' : 'join the consult first');
    return leg;
  };
  /** Media errors keep their code (400 bad parameters, 404 gone); anything else is the media node's failure. */
  const mediaFailed = (c: Ctx, e: unknown) => {
    if (e instanceof MediaError) return fail(c, e.code === 400 ? 400 : e.code === 404 ? 404 : 502, e.reason);
    return fail(c, 502, `media node: ${e instanceof Error ? e.message : String(e)}`);
  };
  const closeTransports = (leg: Leg) => Promise.all([leg.send, leg.recv].map((t) => media.call('webrtc.close', { conversationId: leg.media, transportId: t }).catch(() => undefined)));
  /** Closes the agent's leg of a call (only `which` when given: a leg that replaced it stays). */
  const closeLeg = async (id: string, which?: Leg) => {
    const leg = legs.get(id);
    if (!leg || (which && leg !== which)) return;
    legs.delete(id);
    await closeTransports(leg);
  };

  // A call that ends (caller hung up, transferred, wrapped up) takes the agent's leg on this node with it. The
  // index can lag behind a warm transfer that already gave the leg to the next agent: the actor decides.
  const off = deps.index.on((change) => {
    const e = change.entry;
    const leg = legs.get(e.id);
    const over = !['active', 'onHold'].includes(e.state);
    if (leg && (over || e.agent !== leg.user)) void stillHolds(e.id, leg.user).then((holds) => (holds ? undefined : closeLeg(e.id, leg)));
    const consult = consults.get(e.id);
    if (consult && !consult.completing && (over || e.agent !== consult.from)) void stillHolds(e.id, consult.from).then((holds) => (holds ? undefined : endConsult(consult, 'ended')));
  });
  async function stillHolds(id: string, user: string): Promise<boolean> {
    const r = v.safeParse(CONV, await deps.actors.ask<unknown>(`conversation/${id}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined));
    if (!r.success) return false;
    const state = String(typeof r.output.value === 'object' && r.output.value ? Object.keys(r.output.value)[0] : r.output.value);
    return r.output.context.agent === user && ['active', 'onHold'].includes(state);
  }

  // ---- consults (warm transfer) ------------------------------------------------------------------
  const tellAgent = (agent: string, event: ConsultEvent, k: Consult) =>
    deps.nc.publish(consultSubject(agent), enc.encode(JSON.stringify({ event, conversationId: k.conversation, from: k.from, to: k.to, note: k.note, at: Date.now() })));
  const consultView = (k: Consult) => ({ conversationId: k.conversation, from: k.from, to: k.to, note: k.note, at: k.at, joined: Boolean(k.leg?.producerId) });

  /**
   * The caller while the agent consults: music, the agent's voice toward the caller paused (not the producer:
   * the colleague hears it) and the caller toward the agent paused; `false` puts them back together.
   */
  async function holdForConsult(leg: Leg, held: boolean): Promise<void> {
    const info = await media.call<CallInfo>('call.info', { conversationId: leg.media });
    const op = held ? 'pause' : 'resume';
    for (const x of info.consumers) if (x.bridged && x.producerId === leg.producerId) await media.call(op, { conversationId: leg.media, id: x.id });
    if (leg.consumerId) await media.call(op, { conversationId: leg.media, id: leg.consumerId });
    await callerMusic(leg.media, info, held);
  }

  /** Music to the caller's plain legs in their codec, or stops it; a missing prompt only costs the music. */
  async function callerMusic(mediaKey: string, info: CallInfo, on: boolean): Promise<void> {
    const mime = info.producers.find((p) => p.source === 'caller')?.mimeType.toUpperCase();
    const codec = mime === 'AUDIO/PCMA' ? 'PCMA' : mime === 'AUDIO/PCMU' ? 'PCMU' : undefined;
    for (const t of codec ? info.plain : []) {
      if (on) await media.call('play', { conversationId: mediaKey, transportId: t, prompt: holdPrompt, codec: codec!, loop: true }).catch((e: Error) => log.warn({ err: e.message }, 'no music on hold'));
      else await media.call('play.stop', { conversationId: mediaKey, transportId: t }).catch(() => undefined);
    }
  }

  /** Ends a consult that did not complete: the colleague's leg closes, the caller is back with the agent. */
  async function endConsult(k: Consult, why: Exclude<ConsultEvent, 'invited' | 'joined' | 'completed'>): Promise<void> {
    if (consults.get(k.conversation) !== k) return;
    consults.delete(k.conversation);
    if (k.leg) await closeTransports(k.leg);
    const leg = legs.get(k.conversation);
    if (leg?.user === k.from) {
      leg.peerConsumerId = undefined;
      if (why !== 'ended') await holdForConsult(leg, false).catch((e: Error) => log.warn({ conversation: k.conversation, err: e.message }, 'caller not taken off consult hold'));
    }
    // Both hear of it (the one who acted too: another tab of theirs may show the consult).
    tellAgent(k.from, why, k);
    tellAgent(k.to, why, k);
  }

  /** The agent's view (presence, voice slot, offers); an agent who never signed in is offline. */
  const agentOf = async (id: string) => {
    const r = v.safeParse(AGENT, await deps.actors.ask<unknown>(`agent/${id}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined));
    return r.success ? r.output : undefined;
  };
  /** Why this agent cannot take the call now, or undefined when they can. */
  const unableToTake = async (id: string): Promise<string | undefined> => {
    const a = await agentOf(id);
    if (!a) return `agent ${id} is not answering`;
    if (a.presence !== 'available' && a.presence !== 'busy') return `${id} is ${a.presence ?? 'offline'}`;
    if ((a.load.voice ?? 0) >= (a.capacity.voice ?? 0)) return `${id} has no free voice slot`;
    return undefined;
  };

  app.post('/:id/join', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    // A reload joins again: its old leg (and a consult it had open, which heard that leg) goes.
    const open = consults.get(call.id);
    if (open) await endConsult(open, 'cancelled');
    await closeLeg(call.id);
    try {
      type Created = { transportId: string; iceParameters: unknown; iceCandidates: unknown; dtlsParameters: unknown; routerRtpCapabilities: unknown };
      const [send, recv] = await Promise.all([media.call<Created>('webrtc.create', { conversationId: call.media }), media.call<Created>('webrtc.create', { conversationId: call.media })]);
      legs.set(call.id, { user: c.get('session').user, media: call.media, send: send.transportId, recv: recv.transportId, held: call.state === 'onHold' });
      const info = await media.call<{ producers: { source: string; mimeType: string }[] }>('call.info', { conversationId: call.media });
      const caller = info.producers.find((p) => p.source === 'caller');
      const transport = (t: Created) => ({ id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters });
      // The codec to produce: the caller's (mediasoup does not transcode), opus when there is no SIP leg.
      return c.json({ routerRtpCapabilities: send.routerRtpCapabilities, send: transport(send), recv: transport(recv), codec: caller?.mimeType ?? 'audio/opus' });
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  // connect, produce, consume, mute: the call's agent on their leg, or the invited agent on the consult leg.
  app.post('/:id/connect', async (c) => {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const b = await body(c, ConnectBody);
    if (isResponse(b)) return b;
    return media.call('webrtc.connect', { conversationId: leg.media, transportId: b.direction === 'send' ? leg.send : leg.recv, dtlsParameters: b.dtlsParameters }).then((r) => c.json(r), (e) => mediaFailed(c, e));
  });

  app.post('/:id/produce', async (c) => {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const b = await body(c, ProduceBody);
    if (isResponse(b)) return b;
    if (leg.producerId) return fail(c, 409, 'the microphone is already on the call');
    // A consulted agent talks to the agent only: not bridged to the caller until the transfer completes.
    const consult = call.agent === leg.user ? undefined : consults.get(call.id);
    try {
      const r = await media.call<{ producerId: string; bridged: number }>('webrtc.produce', { conversationId: leg.media, transportId: leg.send, kind: b.kind, rtpParameters: b.rtpParameters, bridge: !consult });
      leg.producerId = r.producerId;
      if (leg.held) await media.call('pause', { conversationId: leg.media, id: r.producerId });
      if (consult) tellAgent(consult.from, 'joined', consult); // the agent's page now consumes this voice
      return c.json(r);
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/consume', async (c) => {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const b = await body(c, ConsumeBody);
    if (isResponse(b)) return b;
    const consult = consults.get(call.id);
    let producerId: string | undefined;
    if (b.peer) {
      if (!consult) return fail(c, 409, 'peer: no consult is open on this call');
      producerId = leg === consult.leg ? legs.get(call.id)?.producerId : consult.leg?.producerId;
      if (!producerId) return fail(c, 409, `peer: ${leg === consult.leg ? consult.from : consult.to} has no microphone on the call yet`);
    } else if (consult && leg === consult.leg) return fail(c, 409, 'the caller is on hold during a consult: consume the peer');
    try {
      const r = await media.call<{ consumerId: string }>('webrtc.consume', { conversationId: leg.media, transportId: leg.recv, rtpCapabilities: b.rtpCapabilities, producerId });
      if (b.peer) leg.peerConsumerId = r.consumerId;
      else {
        leg.consumerId = r.consumerId;
        // Held, or consulting (the caller hears music, not the agent's room): paused from the start.
        if (leg.held || consult) await media.call('pause', { conversationId: leg.media, id: r.consumerId });
      }
      return c.json(r);
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/mute', async (c) => {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const b = await body(c, MuteBody);
    if (isResponse(b)) return b;
    if (!leg.producerId) return fail(c, 409, 'the microphone is not on the call yet');
    return media.call(b.muted ? 'pause' : 'resume', { conversationId: leg.media, id: leg.producerId }).then(() => c.json({ muted: b.muted }), (e) => mediaFailed(c, e));
  });

  app.post('/:id/hold', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const b = await body(c, HoldBody);
    if (isResponse(b)) return b;
    if (consults.has(call.id)) return fail(c, 409, 'a consult is open (the caller already hears music): complete or cancel it first');
    await deps.actors.tell(`conversation/${call.id}`, { type: b.held ? 'hold' : 'resume' });
    leg.held = b.held;
    try {
      for (const id of [leg.producerId, leg.consumerId]) if (id) await media.call(b.held ? 'pause' : 'resume', { conversationId: leg.media, id });
      // Music for the caller while held.
      await callerMusic(leg.media, await media.call<CallInfo>('call.info', { conversationId: leg.media }), b.held);
      return c.json({ held: b.held });
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/hangup', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const open = consults.get(call.id);
    if (open) await endConsult(open, 'ended');
    await closeLeg(call.id);
    // The SIP edge holding the call sends the BYE and tells the conversation (wrap-up), as when the caller hangs up.
    deps.nc.publish(AGENT_HANGUP_SUBJECT, enc.encode(JSON.stringify({ conversationId: call.id })));
    return c.json({ ok: true });
  });

  app.post('/:id/dtmf', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const b = await body(c, DtmfBody);
    if (isResponse(b)) return b;
    // Keys sound 160 ms each before the edge answers.
    const m = await deps.nc.request(AGENT_DTMF_SUBJECT, enc.encode(JSON.stringify({ conversationId: call.id, digits: b.digits })), { timeout: 2000 + b.digits.length * 200 }).catch(() => undefined);
    if (!m) return fail(c, 409, 'no SIP edge holds this call (a call without a phone leg takes no keys)');
    let answer: unknown;
    try {
      answer = m.json();
    } catch {
      answer = undefined;
    }
    const r = v.safeParse(DtmfReply, answer);
    if (!r.success) return fail(c, 502, 'the SIP edge answered something unexpected');
    return 'error' in r.output ? fail(c, 409, r.output.error) : c.json(r.output);
  });

  app.get('/:id/stats', async (c) => {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call);
    if (isResponse(leg)) return leg;
    const count = async (id: string | undefined, type: string) => {
      if (!id) return 0;
      const r = await media.call<{ stats: { type: string; packetCount?: number }[] }>('stats', { conversationId: leg.media, id }).catch(() => ({ stats: [] }));
      return r.stats.filter((s) => s.type === type).reduce((n, s) => n + (s.packetCount ?? 0), 0);
    };
    // From the agent's browser into the router / from the router towards the browser (the caller; the other agent of a consult).
    const [fromAgent, toAgent, fromPeer] = await Promise.all([count(leg.producerId, 'inbound-rtp'), count(leg.consumerId, 'outbound-rtp'), count(leg.peerConsumerId, 'outbound-rtp')]);
    return c.json({ fromAgent, toAgent, fromPeer, held: leg.held });
  });

  // ---- warm transfer ----------------------------------------------------------------------------
  app.get('/consults', (c) => {
    const user = c.get('session').user;
    return c.json({ consults: [...consults.values()].filter((k) => k.to === user).map(consultView) });
  });

  app.post('/:id/consult', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const b = await body(c, ConsultBody);
    if (isResponse(b)) return b;
    const user = c.get('session').user;
    if (b.agent === user) return fail(c, 400, 'agent: you hold this call already');
    const leg = legs.get(call.id);
    if (!leg || leg.user !== user || !leg.producerId) return fail(c, 409, 'answer the call first');
    if (call.state !== 'active' || leg.held) return fail(c, 409, 'the call is on hold: resume it first (a consult holds the caller itself)');
    const unable = await unableToTake(b.agent);
    if (unable) return fail(c, 409, `agent: ${unable}`);
    const open = consults.get(call.id);
    if (open) return fail(c, 409, `a consult with ${open.to} is already open on this call`);
    const k: Consult = { conversation: call.id, media: call.media, from: user, to: b.agent, note: b.note, at: Date.now(), completing: false };
    consults.set(call.id, k);
    try {
      await holdForConsult(leg, true);
    } catch (e) {
      consults.delete(call.id);
      await holdForConsult(leg, false).catch(() => undefined);
      return mediaFailed(c, e);
    }
    tellAgent(k.to, 'invited', k);
    log.info({ conversation: call.id, from: user, to: b.agent }, 'consult started');
    return c.json({ consult: consultView(k) });
  });

  /** The consult of the route's call when this user is the agent it invited. */
  async function invitation(c: Ctx): Promise<{ call: Call; consult: Consult } | Response> {
    const call = await liveCall(c);
    if (isResponse(call)) return call;
    const consult = consults.get(call.id);
    if (!consult || consult.to !== c.get('session').user) return fail(c, 403, 'you are not invited to consult on this call');
    return { call, consult };
  }

  app.post('/:id/consult/join', async (c) => {
    const r = await invitation(c);
    if (isResponse(r)) return r;
    const { call, consult } = r;
    if (consult.completing) return fail(c, 409, 'the call is being transferred to you already');
    if (consult.leg) await closeTransports(consult.leg); // a reload joins again
    consult.leg = undefined;
    try {
      type Created = { transportId: string; iceParameters: unknown; iceCandidates: unknown; dtlsParameters: unknown; routerRtpCapabilities: unknown };
      const [send, recv] = await Promise.all([media.call<Created>('webrtc.create', { conversationId: call.media }), media.call<Created>('webrtc.create', { conversationId: call.media })]);
      consult.leg = { user: consult.to, media: call.media, send: send.transportId, recv: recv.transportId, held: false };
      const info = await media.call<CallInfo>('call.info', { conversationId: call.media });
      const transport = (t: Created) => ({ id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters });
      // The caller's codec: the voice of the one who joins is bridged to the caller when the transfer completes.
      return c.json({ routerRtpCapabilities: send.routerRtpCapabilities, send: transport(send), recv: transport(recv), codec: info.producers.find((p) => p.source === 'caller')?.mimeType ?? 'audio/opus', from: consult.from, note: consult.note });
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/consult/decline', async (c) => {
    const r = await invitation(c);
    if (isResponse(r)) return r;
    if (r.consult.completing) return fail(c, 409, 'the call is being transferred to you already');
    await endConsult(r.consult, 'declined');
    return c.json({ ok: true });
  });

  app.post('/:id/consult/cancel', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const consult = consults.get(call.id);
    if (!consult) return fail(c, 409, 'no consult is open on this call');
    if (consult.completing) return fail(c, 409, 'the transfer is completing');
    await endConsult(consult, 'cancelled');
    return c.json({ ok: true });
  });

  /**
   * The consult becomes the transfer: the colleague's voice is bridged to the caller (the music stops), the
   * conversation is transferred to them with the note, and the reservation that makes is accepted at once in
   * their name (they agreed by joining; no second click). The first agent's leg then closes and the
   * colleague's consult leg becomes the call's leg: their page consumes the caller.
   */
  app.post('/:id/consult/complete', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const b = await body(c, CompleteBody);
    if (isResponse(b)) return b;
    const k = consults.get(call.id);
    if (!k) return fail(c, 409, 'no consult is open on this call');
    if (k.completing) return fail(c, 409, 'the transfer is completing');
    const theirs = k.leg;
    if (!theirs?.producerId) return fail(c, 409, `${k.to} has not joined the consult yet`);
    const unable = await unableToTake(k.to);
    if (unable) return fail(c, 409, `${unable}: cancel the consult or transfer to the queue`);
    k.completing = true;
    const note = b.note ?? k.note;
    const reservationId = `${call.id}-t${call.transfers + 1}`; // the one machines/conversation.ts makes for this transfer
    let transferred = false;
    try {
      await media.call('bridge', { conversationId: call.media, producerId: theirs.producerId });
      await deps.actors.tell(`conversation/${call.id}`, { type: 'transfer', to: `agent/${k.to}`, note });
      transferred = true;
      await waitUntil(async () => Boolean((await agentOf(k.to))?.offers[reservationId]), `${k.to} was not offered the call`);
      await deps.actors.tell(`agent/${k.to}`, { type: 'offer.accept', reservationId });
      await waitUntil(() => stillHolds(call.id, k.to), `the call did not reach ${k.to}`);
    } catch (e) {
      // Not transferred: the caller is back with the agent. Transferred but not taken: the conversation went
      // to its queue (the transfer's own fallback) and the consult leg goes.
      k.completing = false;
      await endConsult(k, transferred ? 'ended' : 'cancelled');
      log.warn({ conversation: call.id, to: k.to, err: (e as Error).message }, 'warm transfer did not complete');
      return e instanceof MediaError ? mediaFailed(c, e) : fail(c, 502, `the transfer did not complete: ${(e as Error).message}`);
    }
    consults.delete(call.id);
    await closeLeg(call.id);
    theirs.peerConsumerId = undefined;
    legs.set(call.id, theirs);
    tellAgent(k.to, 'completed', k);
    tellAgent(k.from, 'completed', k);
    log.info({ conversation: call.id, from: k.from, to: k.to }, 'warm transfer completed');
    return c.json({ ok: true, agent: k.to });
  });

  /** Polls `ok` (every 100 ms, 8 s at most); throws `why` when it never holds. */
  async function waitUntil(ok: () => Promise<boolean>, why: string): Promise<void> {
    for (const end = Date.now() + 8000; Date.now() < end; await sleep(100)) if (await ok()) return;
    throw new Error(why);
  }

  return {
    app,
    legs,
    consults,
    async stop() {
      off();
      await Promise.all([...legs.keys()].map((id) => closeLeg(id)));
      await Promise.all([...consults.values()].map((k) => endConsult(k, 'ended')));
    },
  };
}

/** POST /api/conversations/:id/call: the number to call; without it, the customer's known phone. */
export const CallBody = v.object({ number: v.optional(DialRequest.entries.number) });

/**
 * Places an outbound call for a conversation through an edge with a SIP trunk (edges/sip/outbound.ts),
 * to `number` or else the customer's phone (read as the system viewer: it never reaches the browser),
 * unless the customer opted out of voice. The conversation learns the call's progress from the edge
 * (dialing switches a chat to voice; it stays one conversation).
 */
export async function placeCall(
  deps: { nc: NatsConnection; actors: Pick<ActorClient, 'ask'>; store: Pick<StoreClient, 'view'> },
  o: { conversationId: string; customer: string; number?: string },
): Promise<{ callId: string } | { status: 400 | 403 | 409 | 502 | 503; error: string }> {
  const check = await deps.actors.ask<{ allowed: boolean; reason: string }>(`customer/${o.customer}`, { type: 'contact.check', channel: 'voice' }, { timeoutMs: 3000 });
  if (!check.allowed) return { status: 403, error: `call refused: ${check.reason}` };
  let number = o.number;
  if (!number) {
    const view = await deps.store.view({ customerId: `customer:${o.customer}`, viewer: 'system', limit: 1 });
    number = view.customer.phone ?? view.identities.find((i) => i.channel === 'phone')?.handle;
    if (!number) return { status: 409, error: 'number: the customer has no known phone number; give one' };
  }
  try {
    return await dialCall(deps.nc, { conversationId: o.conversationId, number });
  } catch (e) {
    if (!(e instanceof DialError)) throw e;
    const status = e.code === 400 || e.code === 409 || e.code === 503 ? e.code : 502;
    return { status, error: e.reason };
  }
}
