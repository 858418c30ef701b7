// The media node's commands over NATS (a NATS micro service, queue group `cc-media`): routers, plain
// RTP transports, producers, consumers and prompt playback, so any node (the SIP edge, a conversation's
// commands) can ask a media node. Requests are JSON validated with valibot; bad input is answered with a
// 400 and the reason, an unknown call or transport 404, and the service keeps serving. A worker death
// is published on `cc.media.call.failed` ({ conversationId, reason }) for every call it took.
// One media node per call: the node that opened the router owns it. The subjects carry no node id yet,
// so with several media nodes the caller must pin one (MEDIA_NODE_ID subject prefix) — see README.
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { Consumer, PlainTransport, Producer, Router, RtpCapabilities as MsRtpCapabilities, RtpParameters as MsRtpParameters, WebRtcTransport } from 'mediasoup/types';
import * as v from 'valibot';
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
  'webrtc.produce': v.object({ conversationId: Id, transportId: Id, kind: v.literal('audio'), rtpParameters: RtpParameters, bridge: v.optional(v.boolean(), true) }),
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
}

export interface MediaServiceOptions {
  pool?: PoolSettings;
  /** Address plain transports listen on (127.0.0.1 in tests) and the one announced in SDP if different. */
  listenIp?: string;
  announcedIp?: string;
  /** Where prompt audio is (scripts/setup-voice.sh output). */
  promptsDir: string;
  hooks?: PoolHooks;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

export interface MediaService {
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

  const forget = (conversationId: string) => {
    const call = calls.get(conversationId);
    if (!call) return;
    for (const p of call.playing.values()) p.stop();
    calls.delete(conversationId);
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
      if (known && !known.router.closed) return { conversationId, workerPid: pool.workerOf(conversationId) };
      const router = await pool.router(conversationId);
      calls.set(conversationId, { router, transports: new Map(), producers: new Map(), consumers: new Map(), webrtc: new Map(), playing: new Map() });
      router.observer.once('close', () => forget(conversationId));
      return { conversationId, workerPid: pool.workerOf(conversationId) };
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
    async play({ conversationId, transportId, prompt, codec, loop }) {
      const call = callOf(conversationId);
      const out = transportOf(call, transportId);
      call.playing.get(transportId)?.stop();
      call.playing.delete(transportId);
      // The prompt enters the router as a producer on its own transport, fed by a Node RTP sender, and
      // leaves through a consumer on the caller's transport: the same path an agent's voice takes.
      const feed = await call.router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: listenIp }, rtcpMux: true, comedia: true });
      const ssrc = 0x10000000 + Math.floor(Math.random() * 0x0fffffff);
      const payloadType = codec === 'PCMU' ? 0 : 8;
      const producer = await feed.produce({ kind: 'audio', rtpParameters: { codecs: [codecParameters(codec, payloadType)], encodings: [{ ssrc }] } });
      const consumer = await out.consume({ producerId: producer.id, rtpCapabilities: call.router.rtpCapabilities });
      let playback: Playback;
      try {
        playback = await player.play({ prompt, codec, ssrc, payloadType, to: { ip: feed.tuple.localAddress, port: feed.tuple.localPort }, loop });
      } catch (e) {
        feed.close();
        throw e;
      }
      playback.done.finally(() => {
        consumer.close();
        feed.close();
        if (call.playing.get(transportId) === playback) call.playing.delete(transportId);
      });
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
    async 'webrtc.produce'({ conversationId, transportId, kind, rtpParameters, bridge }) {
      const call = callOf(conversationId);
      const t = webrtcOf(call, transportId);
      const caller = callerOf(call);
      const mime = rtpParameters.codecs[0].mimeType.toLowerCase();
      const legMime = caller?.rtpParameters.codecs[0].mimeType.toLowerCase();
      if (bridge && legMime && mime !== legMime) throw new MediaError(400, `webrtc.produce: the caller's leg is ${legMime}: produce that codec (mediasoup does not transcode), not ${mime}`);
      const p = await t.produce({ kind, rtpParameters: rtpParameters as MsRtpParameters, appData: { source: 'agent' } });
      call.producers.set(p.id, p);
      p.observer.once('close', () => call.producers.delete(p.id));
      let bridged = 0;
      if (bridge) {
        for (const [legId, leg] of call.transports) {
          call.playing.get(legId)?.stop();
          call.playing.delete(legId);
          const c = await leg.consume({ producerId: p.id, rtpCapabilities: call.router.rtpCapabilities });
          call.consumers.set(c.id, c);
          c.observer.once('close', () => call.consumers.delete(c.id));
          bridged++;
        }
      }
      return { producerId: p.id, bridged };
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
        consumers: [...call.consumers.values()].map((c) => ({ id: c.id, producerId: c.producerId, paused: c.paused })),
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
  const group = service.addGroup(MEDIA_PREFIX);
  for (const op of Object.keys(MediaRequests) as MediaOp[]) {
    group.addEndpoint(op.replace(/\./g, '_'), {
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
      const parsed = v.safeParse(MediaRequests[op], input);
      if (!parsed.success) {
        const i = parsed.issues[0];
        throw new MediaError(400, `${op}: ${v.getDotPath(i) ?? 'request'}: ${i.message}`);
      }
      const reply = await (handlers[op] as (r: unknown) => Promise<unknown>)(parsed.output);
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

/** A typed client of the media service: one request per call, errors as MediaError with the service's code and reason. */
export class MediaClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5000,
  ) {}

  async call<R = Record<string, unknown>, O extends MediaOp = MediaOp>(op: O, req: MediaRequest<O>): Promise<R> {
    const m = await this.nc.request(`${MEDIA_PREFIX}.${op}`, enc.encode(JSON.stringify(req)), { timeout: this.timeoutMs });
    const code = m.headers?.get('Nats-Service-Error-Code');
    if (code) throw new MediaError(Number(code), m.headers?.get('Nats-Service-Error') ?? 'media error');
    return JSON.parse(dec.decode(m.data)) as R;
  }
}
