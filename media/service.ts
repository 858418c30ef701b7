// The media node's commands over NATS (a NATS micro service, queue group `cc-media`): routers, plain
// RTP transports, producers, consumers and prompt playback, so any node (the SIP edge, a conversation's
// commands) can ask a media node. Requests are JSON validated with valibot; bad input is answered with a
// 400 and the reason, an unknown call or transport 404, and the service keeps serving. A worker death
// is published on `cc.media.call.failed` ({ conversationId, reason }) for every call it took.
// One media node per call: `router.open` goes to any node (the queue group places the call); that node
// records itself in `cc_media_calls` and answers every other command of the call on its own subjects
// (`cc.media.v1.node.<node>.<op>`, media/placement.ts). MediaClient finds the node by itself.
import { RequestError, type NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { Consumer, PlainTransport, Producer, Router, RtpCapabilities as MsRtpCapabilities, RtpParameters as MsRtpParameters, WebRtcTransport } from 'mediasoup/types';
import * as v from 'valibot';
import { callKey, nodeToken, placementsForNode, Placements } from './placement.ts';
import { PromptError, PromptPlayer, type Playback } from './player.ts';
import { DtlsParameters, RtpCapabilities, RtpParameters } from './webrtc.ts';
import { WorkerPool, type PoolHooks, type PoolSettings } from './workers.ts';

export const MEDIA_PREFIX = 'cc.media.v1';
export const CALL_FAILED_SUBJECT = 'cc.media.call.failed';

const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(200), v.regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only'));
const Ip = v.pipe(v.string(), v.ip('must be an IPv4 or IPv6 address'));
const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
const Ssrc = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(0xffffffff));
export const G711 = v.picklist(['PCMU', 'PCMA']);
const Codec = v.picklist(['PCMU', 'PCMA', 'opus']);

export const MediaRequests = {
  'router.open': v.object({ conversationId: Id }),
  'router.close': v.object({ conversationId: Id }),
  /** A plain RTP transport (RTCP muxed) towards a SIP trunk or an RTP relay; `comedia` latches to the first sender. */
  'plain.create': v.object({ conversationId: Id, comedia: v.optional(v.boolean(), false) }),
  'plain.connect': v.object({ conversationId: Id, transportId: Id, ip: Ip, port: Port }),
  'plain.close': v.object({ conversationId: Id, transportId: Id }),
  /** Audio arriving on the transport with this SSRC becomes a producer (the caller's voice). */
  produce: v.object({ conversationId: Id, transportId: Id, codec: Codec, payloadType: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(127)), ssrc: Ssrc }),
  /** Sends a producer's audio out of a transport. */
  consume: v.object({ conversationId: Id, transportId: Id, producerId: Id }),
  /** Plays a prompt (a file under the prompts directory) out of a transport; replaces what was playing there. */
  play: v.object({
    conversationId: Id,
    transportId: Id,
    prompt: v.pipe(v.string(), v.regex(/^[\w.-]{1,100}$/, 'a prompt id is letters, digits, _ . - only')),
    /** Prompts played right after `prompt`, as one playback: a sentence composed of pieces (edges/sip/announce.ts). */
    next: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(/^[\w.-]{1,100}$/, 'a prompt id is letters, digits, _ . - only'))), v.maxLength(40, 'at most 40 pieces'))),
    codec: G711,
    loop: v.optional(v.boolean(), false),
  }),
  'play.stop': v.object({ conversationId: Id, transportId: Id }),
  /** A WebRTC transport for an agent's browser (one for sending, one for receiving, as mediasoup-client wants). */
  'webrtc.create': v.object({ conversationId: Id }),
  'webrtc.connect': v.object({ conversationId: Id, transportId: Id, dtlsParameters: DtlsParameters }),
  /**
   * The agent's microphone as a producer. `bridge` (default) also sends it out of the call's plain legs (the
   * caller hears the agent; what was playing there stops). No transcoding in mediasoup: a bridged producer
   * must use the caller's codec (G.711 for SIP trunks), so a mismatch is refused with the codec to use.
   */
  'webrtc.produce': v.object({
    conversationId: Id,
    transportId: Id,
    kind: v.literal('audio'),
    rtpParameters: RtpParameters,
    bridge: v.optional(v.boolean(), true),
    /** 'caller' when the browser is the customer (a call from the web chat widget): agents' consumers then find it. */
    source: v.optional(v.picklist(['agent', 'caller']), 'agent'),
  }),
  /**
   * Sends an agent's producer out of the call's plain legs (what was playing there stops): a consulted agent,
   * who joined with `bridge: false`, taking the caller over at the end of a warm transfer. Idempotent.
   */
  bridge: v.object({ conversationId: Id, producerId: Id }),
  /** Sends a producer (default: the caller's) to the agent's browser. */
  'webrtc.consume': v.object({ conversationId: Id, transportId: Id, rtpCapabilities: RtpCapabilities, producerId: v.optional(Id) }),
  'webrtc.close': v.object({ conversationId: Id, transportId: Id }),
  /** Pauses or resumes a producer or consumer of the call (mute, hold). */
  pause: v.object({ conversationId: Id, id: Id }),
  resume: v.object({ conversationId: Id, id: Id }),
  /** What the call holds: its producers (with their source and codec), consumers and transports. */
  'call.info': v.object({ conversationId: Id }),
  /** mediasoup's stats of a producer, consumer or transport of the call. */
  stats: v.object({ conversationId: Id, id: Id }),
} as const;
export type MediaOp = keyof typeof MediaRequests;
export type MediaRequest<O extends MediaOp> = v.InferInput<(typeof MediaRequests)[O]>;

/** Where a node answers one op of the calls it holds. */
export const nodeSubject = (node: string, op: MediaOp): string => `${MEDIA_PREFIX}.node.${node}.${op}`;

/** A request checked against its schema: both ends check, so a bad one fails before it travels. */
function parseRequest<O extends MediaOp>(op: O, input: unknown): v.InferOutput<(typeof MediaRequests)[O]> {
  const parsed = v.safeParse(MediaRequests[op], input);
  if (!parsed.success) {
    const i = parsed.issues[0];
    throw new MediaError(400, `${op}: ${v.getDotPath(i) ?? 'request'}: ${i.message}`);
  }
  return parsed.output as v.InferOutput<(typeof MediaRequests)[O]>;
}

export class MediaError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

interface CallMedia {
  router: Router;
  transports: Map<string, PlainTransport>;
  producers: Map<string, Producer>;
  consumers: Map<string, Consumer>;
  /** Agents' browser legs. */
  webrtc: Map<string, WebRtcTransport>;
  /** What is playing out of each transport. */
  playing: Map<string, Playback>;
  /** How many times an agent was bridged to each plain leg: a prompt started before a bridge loses to it. */
  bridges: Map<string, number>;
}

export interface MediaServiceOptions {
  pool?: PoolSettings;
  /** Address plain transports listen on (127.0.0.1 in tests) and the one announced in SDP if different. */
  listenIp?: string;
  announcedIp?: string;
  /** Where prompt audio is (scripts/setup-voice.sh output). */
  promptsDir: string;
  hooks?: PoolHooks;
  /** Prompt looped to a caller whose agent left the call (a transfer): `music.hold` by default. */
  music?: string;
  /** This node's id in subjects and in `cc_media_calls` (letters, digits, _ -); a random one by default. */
  nodeId?: string;
  /** JetStream replicas of `cc_media_calls`. */
  replicas?: number;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

export interface MediaService {
  /** This node's id (its subjects: cc.media.v1.node.<id>.*). */
  node: string;
  pool: WorkerPool;
  service: Service;
  /** Live calls on this node (for tests and stats). */
  calls(): string[];
  stop(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function startMediaService(nc: NatsConnection, opts: MediaServiceOptions): Promise<MediaService> {
  const calls = new Map<string, CallMedia>();
  const listenIp = opts.listenIp ?? '127.0.0.1';
  const player = new PromptPlayer(opts.promptsDir);
  const node = nodeToken(opts.nodeId ?? `media-${crypto.randomUUID().slice(0, 8)}`);
  const music = opts.music ?? 'music.hold';
  const placements = await placementsForNode(nc, opts.replicas);

  const forget = (conversationId: string) => {
    const call = calls.get(conversationId);
    if (!call) return;
    for (const p of call.playing.values()) p.stop();
    calls.delete(conversationId);
    void release(conversationId);
  };
  /** Drops this node's claim on a call it no longer holds (left alone if another node took it since). */
  const release = async (conversationId: string) => {
    const key = callKey(conversationId);
    const e = await placements.get(key).catch(() => null);
    if (e?.operation === 'PUT' && e.string() === node) await placements.delete(key, { previousSeq: e.revision }).catch(() => undefined);
  };
  /** True when `owner` answers that it holds the call; a silent node or one without the router has lost it. */
  const holds = async (owner: string, conversationId: string) => {
    const m = await nc.request(nodeSubject(owner, 'call.info'), enc.encode(JSON.stringify({ conversationId })), { timeout: 1000 }).catch(() => undefined);
    return m !== undefined && !m.headers?.get('Nats-Service-Error-Code');
  };
  /** Which node holds the call: this one when nobody (alive) does, settled by the bucket's compare-and-set. */
  const claim = async (conversationId: string): Promise<string> => {
    const key = callKey(conversationId);
    for (let attempt = 0; attempt < 5; attempt++) {
      const e = await placements.get(key);
      const owner = e?.operation === 'PUT' && e.length > 0 ? e.string() : undefined;
      try {
        if (!e || !owner) await placements.create(key, node);
        else if (owner === node) return node;
        else if (await holds(owner, conversationId)) return owner;
        else await placements.update(key, node, e.revision); // its node is gone or closed it: take the call over
        return node;
      } catch {
        // another node claimed it between our read and write: read again
      }
    }
    throw new MediaError(503, `router.open: could not settle which media node holds ${conversationId}`);
  };

  const pool = await WorkerPool.start(opts.pool, {
    ...opts.hooks,
    onCallFailed(conversationId, reason) {
      forget(conversationId);
      // Core NATS: whoever holds the call (the SIP edge, the conversation's commands) listens for it.
      nc.publish(CALL_FAILED_SUBJECT, enc.encode(JSON.stringify({ conversationId, reason })));
      opts.log?.warn({ conversationId, reason }, 'call lost its media');
      opts.hooks?.onCallFailed?.(conversationId, reason);
    },
  });

  const callOf = (conversationId: string): CallMedia => {
    const call = calls.get(conversationId);
    if (!call || call.router.closed) throw new MediaError(404, `conversation ${conversationId} has no open router on this media node`);
    return call;
  };
  const transportOf = (call: CallMedia, id: string): PlainTransport => {
    const t = call.transports.get(id);
    if (!t || t.closed) throw new MediaError(404, `transport ${id} is not open in this call`);
    return t;
  };

  const handlers: { [O in MediaOp]: (r: v.InferOutput<(typeof MediaRequests)[O]>) => Promise<unknown> } = {
    async 'router.open'({ conversationId }) {
      const known = calls.get(conversationId);
      if (known && !known.router.closed) return { conversationId, workerPid: pool.workerOf(conversationId), node };
      const owner = await claim(conversationId);
      if (owner !== node) {
        // Already open on another node: that node answers (the caller learns where the call is).
        const m = await nc.request(nodeSubject(owner, 'router.open'), enc.encode(JSON.stringify({ conversationId })), { timeout: 5000 });
        if (m.headers?.get('Nats-Service-Error-Code')) throw new MediaError(Number(m.headers.get('Nats-Service-Error-Code')), m.headers.get('Nats-Service-Error') ?? 'router.open failed');
        return m.json();
      }
      const router = await pool.router(conversationId);
      calls.set(conversationId, { router, transports: new Map(), producers: new Map(), consumers: new Map(), webrtc: new Map(), playing: new Map(), bridges: new Map() });
      router.observer.once('close', () => forget(conversationId));
      return { conversationId, workerPid: pool.workerOf(conversationId), node };
    },
    async 'router.close'({ conversationId }) {
      forget(conversationId);
      return { closed: await pool.close(conversationId) };
    },
    async 'plain.create'({ conversationId, comedia }) {
      const call = callOf(conversationId);
      const t = await call.router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: listenIp, announcedAddress: opts.announcedIp },
        rtcpMux: true,
        comedia,
      });
      call.transports.set(t.id, t);
      t.observer.once('close', () => {
        call.transports.delete(t.id);
        call.playing.get(t.id)?.stop();
        call.playing.delete(t.id);
      });
      // localAddress is the announced address when one is set.
      return { transportId: t.id, ip: t.tuple.localAddress, port: t.tuple.localPort };
    },
    async 'plain.connect'({ conversationId, transportId, ip, port }) {
      await transportOf(callOf(conversationId), transportId).connect({ ip, port });
      return { connected: true };
    },
    async 'plain.close'({ conversationId, transportId }) {
      const call = callOf(conversationId);
      transportOf(call, transportId).close();
      return { closed: true };
    },
    async produce({ conversationId, transportId, codec, payloadType, ssrc }) {
      const call = callOf(conversationId);
      const t = transportOf(call, transportId);
      const p = await t.produce({
        kind: 'audio',
        rtpParameters: { codecs: [codecParameters(codec, payloadType)], encodings: [{ ssrc }] },
        appData: { source: 'caller' },
      });
      call.producers.set(p.id, p);
      p.observer.once('close', () => call.producers.delete(p.id));
      return { producerId: p.id };
    },
    async consume({ conversationId, transportId, producerId }) {
      const call = callOf(conversationId);
      const t = transportOf(call, transportId);
      if (!call.producers.has(producerId)) throw new MediaError(404, `producer ${producerId} is not in this call`);
      const c = await t.consume({ producerId, rtpCapabilities: call.router.rtpCapabilities });
      call.consumers.set(c.id, c);
      c.observer.once('close', () => call.consumers.delete(c.id));
      return { consumerId: c.id, payloadType: c.rtpParameters.codecs[0].payloadType, ssrc: c.rtpParameters.encodings?.[0]?.ssrc };
    },
    async play({ conversationId, transportId, prompt, next, codec, loop }) {
      const call = callOf(conversationId);
      const out = transportOf(call, transportId);
      call.playing.get(transportId)?.stop();
      call.playing.delete(transportId);
      const bridges = call.bridges.get(transportId) ?? 0;
      // The prompt enters the router as a producer on its own transport, fed by a Node RTP sender, and
      // leaves through a consumer on the caller's transport: the same path an agent's voice takes.
      const feed = await call.router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: listenIp }, rtcpMux: true, comedia: true });
      const ssrc = 0x10000000 + Math.floor(Math.random() * 0x0fffffff);
      const payloadType = codec === 'PCMU' ? 0 : 8;
      const producer = await feed.produce({ kind: 'audio', rtpParameters: { codecs: [codecParameters(codec, payloadType)], encodings: [{ ssrc }] } });
      const consumer = await out.consume({ producerId: producer.id, rtpCapabilities: call.router.rtpCapabilities });
      let playback: Playback;
      try {
        playback = await player.play({ prompt, next, codec, ssrc, payloadType, to: { ip: feed.tuple.localAddress, port: feed.tuple.localPort }, loop });
      } catch (e) {
        feed.close();
        throw e;
      }
      playback.done.finally(() => {
        consumer.close();
        feed.close();
        if (call.playing.get(transportId) === playback) call.playing.delete(transportId);
      });
      // An agent was bridged while this was being set up (e.g. hold music resuming as the agent answers): the agent wins.
      if ((call.bridges.get(transportId) ?? 0) !== bridges) {
        playback.stop();
        throw new MediaError(409, `play: an agent was bridged to transport ${transportId} meanwhile: ${prompt} not played`);
      }
      // Two plays set up at once (hold music and a position notice): the later replaces the earlier, which
      // would otherwise loop on unseen beside it.
      call.playing.get(transportId)?.stop();
      call.playing.set(transportId, playback);
      return { playing: prompt, durationMs: playback.durationMs, packets: playback.packets };
    },
    async 'play.stop'({ conversationId, transportId }) {
      const call = callOf(conversationId);
      const p = call.playing.get(transportId);
      p?.stop();
      return { stopped: Boolean(p) };
    },
    async 'webrtc.create'({ conversationId }) {
      const call = callOf(conversationId);
      const t = await call.router.createWebRtcTransport({
        listenInfos: [{ protocol: 'udp', ip: listenIp, announcedAddress: opts.announcedIp }],
        initialAvailableOutgoingBitrate: 100_000,
      });
      call.webrtc.set(t.id, t);
      t.observer.once('close', () => call.webrtc.delete(t.id));
      // A browser that never completes DTLS (tab closed, network gone) must not leave the transport behind.
      t.on('dtlsstatechange', (s) => {
        if (s === 'failed' || s === 'closed') t.close();
      });
      return { transportId: t.id, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters, routerRtpCapabilities: call.router.rtpCapabilities };
    },
    async 'webrtc.connect'({ conversationId, transportId, dtlsParameters }) {
      await webrtcOf(callOf(conversationId), transportId).connect({ dtlsParameters });
      return { connected: true };
    },
    async 'webrtc.produce'({ conversationId, transportId, kind, rtpParameters, bridge, source }) {
      const call = callOf(conversationId);
      const t = webrtcOf(call, transportId);
      const caller = callerOf(call);
      if (source === 'caller' && caller) throw new MediaError(409, 'webrtc.produce: the call already has a caller');
      const mime = rtpParameters.codecs[0].mimeType.toLowerCase();
      const legMime = caller?.rtpParameters.codecs[0].mimeType.toLowerCase();
      if (bridge && legMime && mime !== legMime) throw new MediaError(400, `webrtc.produce: the caller's leg is ${legMime}: produce that codec (mediasoup does not transcode), not ${mime}`);
      const p = await t.produce({ kind, rtpParameters: rtpParameters as MsRtpParameters, appData: { source } });
      call.producers.set(p.id, p);
      p.observer.once('close', () => call.producers.delete(p.id));
      const bridged = bridge ? await bridgeOut(conversationId, call, p) : 0;
      return { producerId: p.id, bridged };
    },
    async bridge({ conversationId, producerId }) {
      const call = callOf(conversationId);
      const p = call.producers.get(producerId);
      if (!p || p.closed) throw new MediaError(404, `producer ${producerId} is not in this call`);
      if (p.appData.source !== 'agent') throw new MediaError(400, `bridge: producer ${producerId} is not an agent's`);
      const mime = p.rtpParameters.codecs[0].mimeType.toLowerCase();
      const legMime = callerOf(call)?.rtpParameters.codecs[0].mimeType.toLowerCase();
      if (legMime && mime !== legMime) throw new MediaError(400, `bridge: the caller's leg is ${legMime}, the producer ${mime} (mediasoup does not transcode)`);
      return { producerId, bridged: await bridgeOut(conversationId, call, p) };
    },
    async 'webrtc.consume'({ conversationId, transportId, rtpCapabilities, producerId }) {
      const call = callOf(conversationId);
      const t = webrtcOf(call, transportId);
      const producer = producerId ? call.producers.get(producerId) : callerOf(call);
      if (!producer) throw new MediaError(404, producerId ? `producer ${producerId} is not in this call` : 'the call has no caller audio yet');
      const caps = rtpCapabilities as MsRtpCapabilities;
      if (!call.router.canConsume({ producerId: producer.id, rtpCapabilities: caps })) throw new MediaError(400, `webrtc.consume: the browser cannot receive ${producer.rtpParameters.codecs[0].mimeType}`);
      const c = await t.consume({ producerId: producer.id, rtpCapabilities: caps });
      call.consumers.set(c.id, c);
      c.observer.once('close', () => call.consumers.delete(c.id));
      return { consumerId: c.id, producerId: producer.id, kind: c.kind, rtpParameters: c.rtpParameters };
    },
    async 'webrtc.close'({ conversationId, transportId }) {
      webrtcOf(callOf(conversationId), transportId).close();
      return { closed: true };
    },
    async pause({ conversationId, id }) {
      const x = endpointOf(callOf(conversationId), id);
      await x.pause();
      return { paused: true };
    },
    async resume({ conversationId, id }) {
      const x = endpointOf(callOf(conversationId), id);
      await x.resume();
      return { paused: false };
    },
    async 'call.info'({ conversationId }) {
      const call = callOf(conversationId);
      return {
        conversationId,
        producers: [...call.producers.values()].map((p) => ({ id: p.id, source: String(p.appData.source ?? ''), mimeType: p.rtpParameters.codecs[0].mimeType, paused: p.paused })),
        consumers: [...call.consumers.values()].map((c) => ({ id: c.id, producerId: c.producerId, paused: c.paused, bridged: Boolean(c.appData.bridged) })),
        plain: [...call.transports.keys()],
        webrtc: [...call.webrtc.keys()],
      };
    },
    async stats({ conversationId, id }) {
      const call = callOf(conversationId);
      const x = call.producers.get(id) ?? call.consumers.get(id) ?? call.webrtc.get(id) ?? call.transports.get(id);
      if (!x || x.closed) throw new MediaError(404, `${id} is not a producer, consumer or transport of this call`);
      return { id, stats: await x.getStats() };
    },
  };

  /** Sends an agent's producer out of every plain leg not yet carrying it; what played there stops. */
  const bridgeOut = async (conversationId: string, call: CallMedia, p: Producer): Promise<number> => {
    let bridged = 0;
    for (const [legId, leg] of call.transports) {
      if ([...call.consumers.values()].some((x) => x.producerId === p.id && x.appData.leg === legId && !x.closed)) continue;
      call.bridges.set(legId, (call.bridges.get(legId) ?? 0) + 1);
      call.playing.get(legId)?.stop();
      call.playing.delete(legId);
      const c = await leg.consume({ producerId: p.id, rtpCapabilities: call.router.rtpCapabilities, appData: { leg: legId, bridged: true } });
      call.consumers.set(c.id, c);
      c.observer.once('close', () => call.consumers.delete(c.id));
      // The agent left (transfer, page closed) while the caller stays: music until the next one joins.
      c.once('producerclose', () => void musicWhenAlone(conversationId, legId));
      bridged++;
    }
    return bridged;
  };

  /** Loops the music out of a caller's leg that no agent is bridged to any more (nothing if the call ended). */
  const musicWhenAlone = async (conversationId: string, legId: string) => {
    const call = calls.get(conversationId);
    const leg = call?.transports.get(legId);
    if (!call || call.router.closed || !leg || leg.closed || call.playing.has(legId)) return;
    if ([...call.consumers.values()].some((x) => !x.closed && x.appData.leg === legId && x.appData.bridged)) return;
    const mime = callerOf(call)?.rtpParameters.codecs[0].mimeType.toUpperCase();
    const codec = mime === 'AUDIO/PCMU' ? 'PCMU' : mime === 'AUDIO/PCMA' ? 'PCMA' : undefined;
    if (!codec) return;
    await handlers.play({ conversationId, transportId: legId, prompt: music, codec, loop: true }).catch((e: Error) => opts.log?.warn({ conversationId, err: e.message }, 'no music for a caller left alone'));
  };

  const webrtcOf = (call: CallMedia, id: string): WebRtcTransport => {
    const t = call.webrtc.get(id);
    if (!t || t.closed) throw new MediaError(404, `WebRTC transport ${id} is not open in this call`);
    return t;
  };
  /** The caller's voice: the producer the SIP leg made. */
  const callerOf = (call: CallMedia): Producer | undefined => [...call.producers.values()].find((p) => p.appData.source === 'caller' && !p.closed);
  const endpointOf = (call: CallMedia, id: string): Producer | Consumer => {
    const x = call.producers.get(id) ?? call.consumers.get(id);
    if (!x || x.closed) throw new MediaError(404, `${id} is not a producer or consumer of this call`);
    return x;
  };

  const service = await new Svcm(nc).add({ name: 'cc-media', version: '1.0.0', description: 'cc media node: mediasoup routers, plain RTP, prompts', queue: 'cc-media' });
  // Placement: any node may open a call. Everything else: the node holding it, on its own subjects.
  service.addGroup(MEDIA_PREFIX).addEndpoint('router_open', {
    subject: 'router.open',
    handler: (err, msg) => {
      if (!err) void answer('router.open', msg);
    },
  });
  const own = service.addGroup(`${MEDIA_PREFIX}.node.${node}`);
  for (const op of Object.keys(MediaRequests) as MediaOp[]) {
    own.addEndpoint(`node_${op.replace(/\./g, '_')}`, {
      subject: op,
      handler: (err, msg) => {
        if (!err) void answer(op, msg);
      },
    });
  }

  async function answer(op: MediaOp, msg: ServiceMsg): Promise<void> {
    try {
      let input: unknown;
      try {
        input = msg.data.length ? JSON.parse(dec.decode(msg.data)) : undefined;
      } catch {
        throw new MediaError(400, `${op}: request is not JSON`);
      }
      const reply = await (handlers[op] as (r: unknown) => Promise<unknown>)(parseRequest(op, input));
      msg.respond(enc.encode(JSON.stringify(reply)));
    } catch (e) {
      const known = e instanceof MediaError || e instanceof PromptError;
      const code = known ? e.code : 500;
      const reason = known ? e.reason : `${op}: ${e instanceof Error ? e.message : String(e)}`;
      if (code >= 500) opts.log?.error({ op, reason }, 'media request failed');
      msg.respondError(code, reason.replace(/[\r\n]+/g, ' ').slice(0, 500), enc.encode(JSON.stringify({ error: { code, reason } })));
    }
  }

  return {
    node,
    pool,
    service,
    calls: () => [...calls.keys()],
    async stop() {
      for (const id of [...calls.keys()]) forget(id);
      await service.stop().catch(() => undefined);
      await pool.stop();
    },
  };
}

function codecParameters(codec: 'PCMU' | 'PCMA' | 'opus', payloadType: number) {
  if (codec === 'opus') return { mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType };
  return { mimeType: `audio/${codec}`, clockRate: 8000, payloadType };
}

/**
 * A typed client of the media service: one request per call, sent to the node holding the call; errors as
 * MediaError with the service's code and reason (400 bad request, 404 no such call, 503 its node is gone).
 */
export class MediaClient {
  private readonly placements: Placements;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5000,
  ) {
    this.placements = new Placements(nc);
  }

  async call<R = Record<string, unknown>, O extends MediaOp = MediaOp>(op: O, req: MediaRequest<O>): Promise<R> {
    const { conversationId } = parseRequest(op, req);
    if (op === 'router.open') {
      const r = await this.request<R & { node?: unknown }>(`${MEDIA_PREFIX}.router.open`, req, 'no media node is running');
      if (typeof r.node === 'string') this.placements.remember(conversationId, r.node);
      return r;
    }
    const node = this.placements.cached(conversationId) ?? (await this.placements.lookup(conversationId));
    if (!node) throw new MediaError(404, `${op}: conversation ${conversationId} has no open router on any media node`);
    try {
      return await this.request<R>(nodeSubject(node, op), req, `media node ${node} holding conversation ${conversationId} is not answering`);
    } catch (e) {
      // What this client remembered may be stale (the call reopened on another node): ask the bucket once.
      if (!(e instanceof MediaError) || (e.code !== 404 && e.code !== 503)) throw e;
      const now = await this.placements.lookup(conversationId);
      if (!now || now === node) throw e;
      return this.request<R>(nodeSubject(now, op), req, `media node ${now} holding conversation ${conversationId} is not answering`);
    }
  }

  private async request<R>(subject: string, req: unknown, silent: string): Promise<R> {
    const m = await this.nc.request(subject, enc.encode(JSON.stringify(req)), { timeout: this.timeoutMs }).catch((e: unknown) => {
      if (e instanceof RequestError && e.isNoResponders()) throw new MediaError(503, silent);
      throw e;
    });
    const code = m.headers?.get('Nats-Service-Error-Code');
    if (code) throw new MediaError(Number(code), m.headers?.get('Nats-Service-Error') ?? 'media error');
    return JSON.parse(dec.decode(m.data)) as R;
  }
}
