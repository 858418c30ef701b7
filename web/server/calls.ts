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
// Only the agent the conversation is assigned to, while it is an active (or held) voice conversation: the
// conversation actor is asked each time, not the index, so a transferred call stops being reachable at once.
// Transport ids never come from the browser: this node keeps each agent's leg, so a client cannot touch
// another call's transports. A leg lives in this node's memory (the browser talks to the node that made it).
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
import type { Session } from './accounts.ts';
import type { ConversationIndex } from './conversations.ts';
import { isResponse, jsonBody, reasonOf } from './schemas.ts';


export const ConnectBody = v.object({ direction: v.picklist(['send', 'recv'], 'must be send or recv'), dtlsParameters: DtlsParameters });
export const ProduceBody = v.object({ kind: v.literal('audio', 'only audio'), rtpParameters: RtpParameters });
export const ConsumeBody = v.object({ rtpCapabilities: RtpCapabilities });
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
  held: boolean;
}

type Env = { Variables: { session: Session } };
type Ctx = Context<Env>;
const IdParam = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/, 'not a conversation id'));
const CONV = v.looseObject({ value: v.unknown(), context: v.looseObject({ agent: v.optional(v.string()), channel: v.optional(v.string()), task: v.optional(v.looseObject({ attrs: v.optional(v.record(v.string(), v.unknown())) })) }) });
const enc = new TextEncoder();

export interface CallRoutes {
  app: Hono<Env>;
  /** Legs on this node (tests). */
  legs: Map<string, Readonly<Leg>>;
  stop(): Promise<void>;
}

export function callRoutes(deps: { nc: NatsConnection; actors: ActorClient; index: ConversationIndex; log: Logger; holdPrompt?: string }): CallRoutes {
  const media = new MediaClient(deps.nc);
  const legs = new Map<string, Leg>();
  const log = deps.log;
  const holdPrompt = deps.holdPrompt ?? 'music.hold';
  const app = new Hono<Env>();
  const fail = (c: Ctx, status: 400 | 403 | 404 | 409 | 502, error: string) => c.json({ error }, status);

  const body = jsonBody;

  /** The call when it is this user's live voice conversation; its media key on the media node. */
  async function callOf(c: Ctx): Promise<{ id: string; media: string; state: string } | Response> {
    const id = v.safeParse(IdParam, c.req.param('id'));
    if (!id.success) return fail(c, 400, reasonOf(id.issues));
    const got = await deps.actors.ask<unknown>(`conversation/${id.output}`, { type: 'get' }, { timeoutMs: 3000 }).catch(() => undefined);
    const r = v.safeParse(CONV, got);
    if (!r.success || !r.output.context.agent) return fail(c, 404, `no conversation ${id.output} with an agent`);
    const ctx = r.output.context;
    if (ctx.agent !== c.get('session').user) return fail(c, 403, 'this call is not assigned to you');
    const state = String(typeof r.output.value === 'object' && r.output.value ? Object.keys(r.output.value)[0] : r.output.value);
    if (ctx.channel !== 'voice') return fail(c, 409, `the conversation is on ${ctx.channel ?? 'no channel'}, not voice`);
    if (state !== 'active' && state !== 'onHold') return fail(c, 409, `the call is ${state}`);
    const callId = ctx.task?.attrs?.callId;
    // A SIP call's router is keyed by its Call-ID; a call started from a chat by the conversation id.
    return { id: id.output, media: typeof callId === 'string' ? mediaId({ callId }) : id.output, state };
  }
  const legOf = (c: Ctx, id: string): Leg | Response => {
    const leg = legs.get(id);
    if (!leg || leg.user !== c.get('session').user) return fail(c, 409, 'join the call first');
    return leg;
  };
  /** Media errors keep their code (400 bad parameters, 404 gone); anything else is the media node's failure. */
  const mediaFailed = (c: Ctx, e: unknown) => {
    if (e instanceof MediaError) return fail(c, e.code === 400 ? 400 : e.code === 404 ? 404 : 502, e.reason);
    return fail(c, 502, `media node: ${e instanceof Error ? e.message : String(e)}`);
  };
  const closeLeg = async (id: string) => {
    const leg = legs.get(id);
    if (!leg) return;
    legs.delete(id);
    await Promise.all([leg.send, leg.recv].map((t) => media.call('webrtc.close', { conversationId: leg.media, transportId: t }).catch(() => undefined)));
  };

  // A call that ends (caller hung up, transferred, wrapped up) takes the agent's leg on this node with it.
  const off = deps.index.on((change) => {
    const e = change.entry;
    const leg = legs.get(e.id);
    if (leg && (!['active', 'onHold'].includes(e.state) || e.agent !== leg.user)) void closeLeg(e.id);
  });

  app.post('/:id/join', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    await closeLeg(call.id); // a reload joins again
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

  app.post('/:id/connect', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const b = await body(c, ConnectBody);
    if (isResponse(b)) return b;
    return media.call('webrtc.connect', { conversationId: leg.media, transportId: b.direction === 'send' ? leg.send : leg.recv, dtlsParameters: b.dtlsParameters }).then((r) => c.json(r), (e) => mediaFailed(c, e));
  });

  app.post('/:id/produce', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const b = await body(c, ProduceBody);
    if (isResponse(b)) return b;
    if (leg.producerId) return fail(c, 409, 'the microphone is already on the call');
    try {
      const r = await media.call<{ producerId: string; bridged: number }>('webrtc.produce', { conversationId: leg.media, transportId: leg.send, kind: b.kind, rtpParameters: b.rtpParameters });
      leg.producerId = r.producerId;
      if (leg.held) await media.call('pause', { conversationId: leg.media, id: r.producerId });
      return c.json(r);
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/consume', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const b = await body(c, ConsumeBody);
    if (isResponse(b)) return b;
    try {
      const r = await media.call<{ consumerId: string }>('webrtc.consume', { conversationId: leg.media, transportId: leg.recv, rtpCapabilities: b.rtpCapabilities });
      leg.consumerId = r.consumerId;
      if (leg.held) await media.call('pause', { conversationId: leg.media, id: r.consumerId });
      return c.json(r);
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/mute', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const b = await body(c, MuteBody);
    if (isResponse(b)) return b;
    if (!leg.producerId) return fail(c, 409, 'the microphone is not on the call yet');
    return media.call(b.muted ? 'pause' : 'resume', { conversationId: leg.media, id: leg.producerId }).then(() => c.json({ muted: b.muted }), (e) => mediaFailed(c, e));
  });

  app.post('/:id/hold', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const b = await body(c, HoldBody);
    if (isResponse(b)) return b;
    await deps.actors.tell(`conversation/${call.id}`, { type: b.held ? 'hold' : 'resume' });
    leg.held = b.held;
    try {
      for (const id of [leg.producerId, leg.consumerId]) if (id) await media.call(b.held ? 'pause' : 'resume', { conversationId: leg.media, id });
      // Music for the caller while held; a missing prompt only costs the music.
      const info = await media.call<{ plain: string[]; producers: { source: string; mimeType: string }[] }>('call.info', { conversationId: leg.media });
      const mime = info.producers.find((p) => p.source === 'caller')?.mimeType.toUpperCase();
      const codec = mime === 'AUDIO/PCMA' ? 'PCMA' : mime === 'AUDIO/PCMU' ? 'PCMU' : undefined;
      for (const t of codec ? info.plain : []) {
        if (b.held) await media.call('play', { conversationId: leg.media, transportId: t, prompt: holdPrompt, codec: codec!, loop: true }).catch((e: Error) => log.warn({ err: e.message }, 'no music on hold'));
        else await media.call('play.stop', { conversationId: leg.media, transportId: t }).catch(() => undefined);
      }
      return c.json({ held: b.held });
    } catch (e) {
      return mediaFailed(c, e);
    }
  });

  app.post('/:id/hangup', async (c) => {
    const call = await callOf(c);
    if (isResponse(call)) return call;
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
    const call = await callOf(c);
    if (isResponse(call)) return call;
    const leg = legOf(c, call.id);
    if (isResponse(leg)) return leg;
    const count = async (id: string | undefined, type: string) => {
      if (!id) return 0;
      const r = await media.call<{ stats: { type: string; packetCount?: number }[] }>('stats', { conversationId: leg.media, id }).catch(() => ({ stats: [] }));
      return r.stats.filter((s) => s.type === type).reduce((n, s) => n + (s.packetCount ?? 0), 0);
    };
    // From the agent's browser into the router / from the router towards the browser.
    const [fromAgent, toAgent] = await Promise.all([count(leg.producerId, 'inbound-rtp'), count(leg.consumerId, 'outbound-rtp')]);
    return c.json({ fromAgent, toAgent, held: leg.held });
  });

  return {
    app,
    legs,
    async stop() {
      off();
      await Promise.all([...legs.keys()].map(closeLeg));
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
