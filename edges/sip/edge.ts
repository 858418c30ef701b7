// The SIP trunk edge on UDP: answers a trunk's calls (INVITE/SDP → 100, 180, 200 with our RTP relay in
// the answer; ACK; BYE; CANCEL → 487; OPTIONS keep-alives; re-INVITE with a=sendonly = hold), runs the
// IVR menu for each call (prompts played by the media node, DTMF read by the relay), opens the voice
// conversation in the queue the IVR chose and tells it when the caller hangs up. Malformed requests get
// a 400 with the reason and the edge keeps serving.
// The IVR session lives with the call on this edge (the pure machine run in process): a call's media and
// its menu end together, so there is nothing to resume elsewhere if this node dies.
// A small server transaction layer: requests retransmitted by the trunk get the last response again,
// and a 200 to INVITE is retransmitted (T1 doubling to T2) until its ACK, as RFC 3261 §13.3.1.4 asks.
import { createSocket, type Socket } from 'node:dgram';
import type { NatsConnection } from '@nats-io/nats-core';
import * as v from 'valibot';
import { createActor, type Actor } from 'xstate';
import { ivrMachine, type IvrMenu, type QueueExit } from '../../machines/ivr.ts';
import type { TellEffect } from '../../machines/effects.ts';
import { CALL_FAILED_SUBJECT, MediaClient } from '../../media/service.ts';
import { badRequestFromRaw, isRequest, makeResponse, parseSip, stringifySip, type SipRequest, type SipResponse } from './grammar.ts';
import { outboundCalls, serveDial, type OutboundCalls, type Trunk } from './outbound.ts';
import { noticePrompt, type ActiveRecording, type CallRecordings } from './recording.ts';
import { RtpRelay } from './relay.ts';
import { buildAnswer, negotiate, parseOffer, SdpError, type Negotiated } from './sdp.ts';
import type { Caller, VoiceEngine } from './voice.ts';
import { isPhoneNumber, type FailoverEngine } from './failover.ts';
import { startWaitingRoom } from './waiting.ts';

/** Core NATS: the agent hung up in the workspace ({ conversationId }); the edge holding the call sends the BYE. */
export const AGENT_HANGUP_SUBJECT = 'cc.voice.hangup';
/**
 * Core NATS request: the agent pressed keys ({ conversationId, digits }). Only the edge holding the call
 * answers ({ sent } once the keys have sounded, or { error }); no answer means no edge holds it.
 */
export const AGENT_DTMF_SUBJECT = 'cc.voice.dtmf';
export const DtmfRequest = v.object({
  conversationId: v.pipe(v.string(), v.minLength(1, 'conversationId is required')),
  digits: v.pipe(v.string(), v.regex(/^[0-9*#A-D]{1,32}$/, 'digits must be 1 to 32 of 0-9 * # A-D')),
});

const T1 = 500;
const T2 = 4000;
const TRANSACTION_MS = 32_000;

export interface SipLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  debug(o: object, m: string): void;
}

export interface SipEdgeOptions {
  port: number;
  /** Listen address; 127.0.0.1 unless the trunk is elsewhere. */
  host?: string;
  /** Address put in Contact and SDP (SIP_PUBLIC_IP); defaults to `host`. */
  publicIp?: string;
  nc: NatsConnection;
  voice: VoiceEngine;
  menu: IvrMenu;
  /** VIP callers (customer tier 'vip') skip the menu to this queue. */
  vipExit?: QueueExit;
  /** The account calls arrive on (the trunk's number or name), kept as the reply-to account. */
  account?: string;
  /** Prompt looped while the caller waits in queue (missing file: silence), between position announcements. */
  holdPrompt?: string;
  /** Channel failover (SMS + web chat link) when nobody can take the call; without it callers always queue. */
  failover?: FailoverEngine;
  /** Call recording (RECORD_CALLS=on|announce); without it no call is recorded. */
  recordings?: CallRecordings;
  /** The trunk outbound calls go to (SIP_TRUNK…); without it this edge places no calls. */
  trunk?: Trunk;
  log?: SipLog;
}

interface Call {
  callId: string;
  invite: SipRequest;
  source: { ip: string; port: number };
  toTag: string;
  state: 'setup' | 'ringing' | 'answered' | 'confirmed' | 'ended';
  negotiated?: Negotiated;
  relay?: RtpRelay;
  transportId?: string;
  caller?: Caller;
  ivr?: Actor<typeof ivrMachine>;
  conversationId?: string;
  sdpVersion: number;
  sessionId: number;
  stopRetransmit?: () => void;
  /** Resolves when setup finished (or failed); CANCEL waits on it. */
  digits: string[];
  /** When the INVITE came (the call's entry in the history). */
  startedAt: number;
  /** The conversation went on by SMS / web chat (failover): the hang-up does not end it. */
  continuedOn?: 'sms' | 'webchat';
  recording?: ActiveRecording;
  /** The language the IVR ended in (the transcript's). */
  language?: string | null;
}

export interface SipEdge {
  port: number;
  /** Live calls by Call-ID (tests and stats). */
  calls: Map<string, Readonly<Call>>;
  stats: { requests: number; malformed: number; callsAnswered: number; callsEnded: number };
  /** Outbound calls through the trunk, when one is configured. */
  outbound?: OutboundCalls;
  stop(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const nowMs = () => Date.now();

export async function startSipEdge(o: SipEdgeOptions): Promise<SipEdge> {
  const host = o.host ?? '127.0.0.1';
  const publicIp = o.publicIp ?? host;
  const media = new MediaClient(o.nc);
  const log = o.log;
  // Queued callers hear music, and their place whenever the queue tells their conversation.
  const waiting = startWaitingRoom({ nc: o.nc, media, music: o.holdPrompt, log });
  const calls = new Map<string, Call>();
  const stats = { requests: 0, malformed: 0, callsAnswered: 0, callsEnded: 0 };
  /** Last response per server transaction (branch + method), for retransmitted requests. */
  const answered = new Map<string, { text: string; to: { ip: string; port: number }; at: number }>();

  const socket: Socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((ok, fail) => {
    socket.once('error', fail);
    socket.bind(o.port, host, () => {
      socket.off('error', fail);
      ok();
    });
  });
  socket.on('error', (e) => log?.warn({ err: e.message }, 'sip socket error'));
  const port = socket.address().port;

  const sweep = setInterval(() => {
    const old = nowMs() - TRANSACTION_MS;
    for (const [k, a] of answered) if (a.at < old) answered.delete(k);
  }, 5000);

  // The media node lost a call: end it toward the trunk.
  const failures = o.nc.subscribe(CALL_FAILED_SUBJECT, {
    callback: (_err, msg) => {
      try {
        const { conversationId, reason } = JSON.parse(dec.decode(msg.data)) as { conversationId?: string; reason?: string };
        const call = [...calls.values()].find((c) => mediaId(c) === conversationId);
        if (call) {
          log?.warn({ callId: call.callId, reason }, 'call media failed');
          void end(call, 'media failed');
        } else if (conversationId) outbound?.mediaFailed(conversationId, reason ?? 'media failed');
      } catch {
        /* not ours to judge */
      }
    },
  });

  // The agent hung up: BYE towards the trunk (retransmitted until its 200, as a non-INVITE client
  // transaction), then the call ends as if the caller had hung up.
  const byes = new Map<string, ReturnType<typeof setTimeout>>();
  const hangups = o.nc.subscribe(AGENT_HANGUP_SUBJECT, {
    callback: (_err, msg) => {
      let conversationId: unknown;
      try {
        conversationId = (JSON.parse(dec.decode(msg.data)) as { conversationId?: unknown }).conversationId;
      } catch {
        return;
      }
      if (typeof conversationId === 'string' && outbound?.hangup(conversationId, 'the agent hung up')) return;
      const call = [...calls.values()].find((c) => c.conversationId !== undefined && c.conversationId === conversationId);
      if (!call || call.state !== 'confirmed') return;
      sendBye(call);
      void end(call, 'agent hung up');
    },
  });

  /** BYE towards the trunk, retransmitted until its 200 (a non-INVITE client transaction). */
  function sendBye(call: Call): void {
    const bye: SipRequest = {
      method: 'BYE',
      uri: call.invite.headers.contact?.[0]?.uri ?? call.invite.headers.from.uri,
      version: '2.0',
      headers: {
        via: [{ version: '2.0', protocol: 'UDP', host: publicIp, port, params: { branch: `z9hG4bK${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`, rport: null } }],
        from: { uri: call.invite.headers.to.uri, params: { tag: call.toTag } },
        to: call.invite.headers.from,
        'call-id': call.callId,
        cseq: { seq: 1, method: 'BYE' },
        'max-forwards': 70,
        'content-length': 0,
      },
      content: '',
    };
    const text = stringifySip(bye);
    let delay = T1;
    const again = (left: number) => {
      send(text, call.source);
      if (left > 0) byes.set(call.callId, setTimeout(() => again(left - 1), (delay = Math.min(delay * 2, T2))));
      else byes.delete(call.callId);
    };
    again(6);
  }

  // The agent's keys toward the trunk, as RFC 4733 events in the stream the relay forwards.
  const keys = o.nc.subscribe(AGENT_DTMF_SUBJECT, {
    callback: (_err, msg) => {
      let raw: unknown;
      try {
        raw = JSON.parse(dec.decode(msg.data));
      } catch {
        return;
      }
      const rq = v.safeParse(DtmfRequest, raw);
      if (!rq.success) return void msg.respond(enc.encode(JSON.stringify({ error: rq.issues[0].message })));
      const reply = (o: object) => msg.respond(enc.encode(JSON.stringify(o)));
      // A call the trunk placed with us, or one we placed through it (outbound.ts).
      const inbound = [...calls.values()].find((c) => c.conversationId === rq.output.conversationId);
      const placed = inbound ? undefined : [...(outbound?.calls.values() ?? [])].find((c) => c.conversationId === rq.output.conversationId && c.phase !== 'ended');
      const call = inbound ? { callId: inbound.callId, state: inbound.state === 'confirmed' ? 'answered' : inbound.state, relay: inbound.relay } : placed ? { callId: placed.callId, state: placed.phase, relay: placed.relay } : undefined;
      if (!call) return; // another edge's call, or none: the asker times out
      if (call.state !== 'answered' || !call.relay) return void reply({ error: `the call is ${call.state}` });
      call.relay.sendDigits(rq.output.digits).then(
        () => {
          log?.info({ callId: call.callId, digits: rq.output.digits.length }, 'agent dtmf sent');
          reply({ sent: rq.output.digits.length });
        },
        (e: Error) => reply({ error: e.message }),
      );
    },
  });

  const send = (text: string, to: { ip: string; port: number }) => socket.send(enc.encode(text), to.port, to.ip);
  // Calls we place through the trunk (outbound.ts); their messages are told apart by Call-ID.
  const outbound = o.trunk ? outboundCalls({ trunk: o.trunk, host, publicIp, port, send, media, holdPrompt: o.holdPrompt, log, progress: (id, p) => o.voice.progress(id, p, nowMs()) }) : undefined;
  const dialService = outbound ? await serveDial(o.nc, outbound) : undefined;
  const txKey = (rq: SipRequest) => `${String(rq.headers.via[0].params.branch ?? '')}:${rq.headers.cseq.method}:${rq.headers['call-id']}`;

  function respond(rq: SipRequest, to: { ip: string; port: number }, status: number, reason: string, extra: { headers?: Record<string, unknown>; content?: string; toTag?: string } = {}): string {
    const headers: Record<string, unknown> = { ...extra.headers };
    const rs: SipResponse = makeResponse(rq, status, reason, { headers });
    if (status > 100 && !rs.headers.to.params.tag) rs.headers.to.params.tag = extra.toTag ?? crypto.randomUUID().slice(0, 8);
    if (extra.content) {
      rs.content = extra.content;
      rs.headers['content-type'] = 'application/sdp';
    }
    rs.headers['content-length'] = enc.encode(rs.content ?? '').length;
    const text = stringifySip(rs);
    send(text, to);
    if (status >= 200) answered.set(txKey(rq), { text, to, at: nowMs() });
    return text;
  }

  socket.on('message', (b, rinfo) => {
    stats.requests++;
    const data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    const from = { ip: rinfo.address, port: rinfo.port };
    const parsed = parseSip(data);
    if (!parsed.ok) {
      stats.malformed++;
      const reply = badRequestFromRaw(data, parsed.reason);
      log?.debug({ from, reason: parsed.reason, answered: Boolean(reply) }, 'malformed SIP message');
      if (reply) send(reply, from);
      return;
    }
    const m = parsed.message;
    if (outbound?.take(m, from)) return;
    if (!isRequest(m)) {
      // The only requests we send are BYEs: their answer ends the retransmissions; other responses are dropped.
      if (m.headers.cseq.method === 'BYE') {
        clearTimeout(byes.get(m.headers['call-id']));
        byes.delete(m.headers['call-id']);
      }
      return;
    }
    const again = answered.get(txKey(m));
    if (again && m.method !== 'ACK') {
      send(again.text, again.to);
      return;
    }
    handle(m, from).catch((e) => log?.warn({ method: m.method, err: e instanceof Error ? e.message : String(e) }, 'sip request failed'));
  });

  async function handle(rq: SipRequest, from: { ip: string; port: number }): Promise<void> {
    const callId = rq.headers['call-id'];
    const call = calls.get(callId);
    switch (rq.method) {
      case 'OPTIONS':
        respond(rq, from, 200, 'OK', { headers: { allow: 'INVITE, ACK, BYE, CANCEL, OPTIONS', accept: 'application/sdp' } });
        return;
      case 'INVITE':
        if (call) return reinvite(call, rq, from);
        return invite(rq, from);
      case 'ACK':
        if (call && call.state === 'answered') {
          call.state = 'confirmed';
          call.stopRetransmit?.();
          void recordingNotice(call).then(() => call.state === 'confirmed' && startIvr(call));
        }
        return;
      case 'BYE':
        if (!call) {
          respond(rq, from, 481, 'Call/Transaction Does Not Exist');
          return;
        }
        respond(rq, from, 200, 'OK');
        await end(call, 'caller hung up');
        return;
      case 'CANCEL': {
        if (!call || call.invite.headers.via[0].params.branch !== rq.headers.via[0].params.branch) {
          respond(rq, from, 481, 'Call/Transaction Does Not Exist');
          return;
        }
        respond(rq, from, 200, 'OK');
        if (call.state === 'setup' || call.state === 'ringing') {
          call.state = 'ended';
          respond(call.invite, call.source, 487, 'Request Terminated', { toTag: call.toTag });
          await end(call, 'cancelled');
        }
        return;
      }
      default:
        respond(rq, from, 501, 'Not Implemented', { headers: { allow: 'INVITE, ACK, BYE, CANCEL, OPTIONS' } });
    }
  }

  async function invite(rq: SipRequest, from: { ip: string; port: number }): Promise<void> {
    respond100(rq, from);
    const callId = rq.headers['call-id'];
    const call: Call = { callId, invite: rq, source: from, toTag: crypto.randomUUID().slice(0, 8), state: 'setup', sdpVersion: 1, sessionId: Math.floor(Math.random() * 1e9), digits: [], startedAt: nowMs() };
    calls.set(callId, call);
    const number = callerNumber(rq);
    let offer;
    try {
      if (!rq.content.trim()) throw new SdpError('INVITE without an SDP offer (late offer is not supported)');
      offer = parseOffer(rq.content);
      call.negotiated = negotiate(offer);
    } catch (e) {
      calls.delete(callId);
      respond(rq, from, 488, 'Not Acceptable Here', { toTag: call.toTag, headers: { warning: `399 cc "${(e as Error).message.replace(/"/g, "'")}"` } });
      return;
    }
    const [caller, opened] = await Promise.allSettled([o.voice.caller(number, nowMs()), openMedia(call, offer)]);
    if (caller.status === 'rejected' || opened.status === 'rejected') {
      const err = (caller.status === 'rejected' ? caller.reason : (opened as PromiseRejectedResult).reason) as Error;
      log?.warn({ callId, err: err.message }, 'call setup failed');
      const refused = call.state !== 'ended'; // not cancelled meanwhile
      if (refused) respond(rq, from, 503, 'Service Unavailable', { toTag: call.toTag });
      await end(call, 'setup failed');
      // No media (the media node is down): no IVR can speak, so a caller with a number gets the chat link by SMS.
      if (refused && opened.status === 'rejected' && caller.status === 'fulfilled') void mediaDown(call, caller.value, number);
      return;
    }
    call.caller = caller.value;
    if (call.state === 'ended') return; // cancelled meanwhile
    call.state = 'ringing';
    respond(rq, from, 180, 'Ringing', { toTag: call.toTag });
    answer(call);
  }

  function respond100(rq: SipRequest, from: { ip: string; port: number }) {
    const rs = makeResponse(rq, 100, 'Trying');
    rs.headers['content-length'] = 0;
    send(stringifySip(rs), from);
  }

  async function openMedia(call: Call, offer: ReturnType<typeof parseOffer>): Promise<void> {
    const n = call.negotiated!;
    const conversationId = mediaId(call);
    await media.call('router.open', { conversationId });
    const leg = await media.call<{ transportId: string; ip: string; port: number }>('plain.create', { conversationId });
    call.transportId = leg.transportId;
    const callerSsrc = 0x20000000 + Math.floor(Math.random() * 0x0fffffff);
    const relay = await RtpRelay.open(host, { ip: offer.ip, port: offer.port }, {
      payloadType: n.payloadType,
      dtmfPayloadType: n.dtmfPayloadType,
      clockRate: n.clockRate,
      callerSsrc,
      tap: (leg, p) => call.recording?.tap(leg, p),
      onDigit: (digit) => {
        call.digits.push(digit);
        log?.info({ callId: call.callId, digit }, 'dtmf');
        call.ivr?.send({ type: 'dtmf', digit });
      },
    });
    call.relay = relay;
    if (call.state === 'ended') return relay.close();
    // Both directions pass the relay, in the trunk's codec: the recorder taps them there.
    if (n.codec !== 'opus') call.recording = o.recordings?.start(call.callId, n.codec);
    relay.connectMedia({ ip: leg.ip, port: leg.port });
    await media.call('plain.connect', { conversationId, transportId: leg.transportId, ip: relay.local.ip, port: relay.local.port });
    // The caller's voice as a producer, for the agent's side to consume.
    await media.call('produce', { conversationId, transportId: leg.transportId, codec: n.codec, payloadType: n.payloadType, ssrc: callerSsrc });
    relay.held = offer.direction === 'sendonly' || offer.direction === 'inactive';
  }

  function answer(call: Call): void {
    const sdp = buildAnswer({ ip: publicIp, port: call.relay!.local.port, negotiated: call.negotiated!, offerDirection: 'sendrecv', sessionId: call.sessionId, version: call.sdpVersion });
    const text = respond(call.invite, call.source, 200, 'OK', { toTag: call.toTag, content: sdp, headers: { contact: [{ uri: `sip:cc@${publicIp}:${port}`, params: {} }] } });
    call.state = 'answered';
    stats.callsAnswered++;
    // Retransmit the 200 until the ACK comes (the trunk may have lost it), then give up on the call.
    let delay = T1;
    let timer: ReturnType<typeof setTimeout>;
    const started = nowMs();
    const again = () => {
      if (call.state !== 'answered') return;
      if (nowMs() - started > TRANSACTION_MS) {
        void end(call, 'no ACK');
        return;
      }
      send(text, call.source);
      delay = Math.min(delay * 2, T2);
      timer = setTimeout(again, delay);
    };
    timer = setTimeout(again, delay);
    call.stopRetransmit = () => clearTimeout(timer);
  }

  async function reinvite(call: Call, rq: SipRequest, from: { ip: string; port: number }): Promise<void> {
    if (call.state !== 'confirmed') {
      respond(rq, from, 491, 'Request Pending', { toTag: call.toTag });
      return;
    }
    let direction: ReturnType<typeof parseOffer>['direction'] = 'sendrecv';
    if (rq.content.trim()) {
      try {
        const offer = parseOffer(rq.content);
        direction = offer.direction;
        call.relay?.retarget({ ip: offer.ip, port: offer.port });
      } catch (e) {
        respond(rq, from, 488, 'Not Acceptable Here', { toTag: call.toTag, headers: { warning: `399 cc "${(e as Error).message.replace(/"/g, "'")}"` } });
        return;
      }
    }
    // Hold: the trunk only sends (or nothing flows); we stop sending to it until it resumes.
    if (call.relay) call.relay.held = direction === 'sendonly' || direction === 'inactive';
    call.sdpVersion++;
    const sdp = buildAnswer({ ip: publicIp, port: call.relay!.local.port, negotiated: call.negotiated!, offerDirection: direction, sessionId: call.sessionId, version: call.sdpVersion });
    respond(rq, from, 200, 'OK', { toTag: call.toTag, content: sdp, headers: { contact: [{ uri: `sip:cc@${publicIp}:${port}`, params: {} }] } });
    log?.info({ callId: call.callId, held: call.relay?.held }, 'call re-INVITE');
  }

  /** RECORD_CALLS=announce: "this call may be recorded" before the menu, which waits for it to end. */
  async function recordingNotice(call: Call): Promise<void> {
    if (o.recordings?.mode !== 'announce' || !call.transportId || !call.negotiated || call.negotiated.codec === 'opus') return;
    const prompt = noticePrompt(o.menu.language);
    const r = await media
      .call<{ durationMs: number }>('play', { conversationId: mediaId(call), transportId: call.transportId, prompt, codec: call.negotiated.codec, loop: false })
      .catch((e: Error) => (log?.warn({ callId: call.callId, prompt, err: e.message }, 'recording notice not played'), { durationMs: 0 }));
    await new Promise((ok) => setTimeout(ok, r.durationMs));
  }

  function startIvr(call: Call): void {
    const ivr = createActor(ivrMachine, { input: { callId: call.callId } });
    call.ivr = ivr;
    ivr.on('effect.tell', (emitted) => {
      const e = (emitted as unknown as TellEffect).event as { type: string; prompt?: string | null; exit?: unknown; language?: string | null; queue?: string | null };
      if (e.type === 'ivr.play' && e.prompt) void play(call, e.prompt, false);
      if (e.type === 'ivr.staffing') void staffing(call, e.queue ?? null);
      if (e.type === 'ivr.done') void routed(call, e.exit as QueueExit | { failover: string } | null, e.language ?? null);
    });
    ivr.start();
    const vip = call.caller?.tier === 'vip';
    ivr.send({ type: 'start', menu: o.menu, vip, vipExit: vip ? o.vipExit : undefined });
  }

  async function play(call: Call, prompt: string, loop: boolean): Promise<void> {
    if (call.state === 'ended' || !call.transportId || !call.negotiated) return;
    if (call.negotiated.codec === 'opus') {
      log?.warn({ callId: call.callId, prompt }, 'prompts are G.711 only: not played on an opus call');
      return;
    }
    try {
      await media.call('play', { conversationId: mediaId(call), transportId: call.transportId, prompt, codec: call.negotiated.codec, loop });
    } catch (e) {
      log?.warn({ callId: call.callId, prompt, err: (e as Error).message }, 'prompt not played');
    }
  }

  /** The IVR asks before queueing: can anyone take this call? Only callers with a number can be offered SMS. */
  async function staffing(call: Call, queue: string | null): Promise<void> {
    if (!o.failover || !queue || !isPhoneNumber(callerNumber(call.invite))) return void call.ivr?.send({ type: 'staffed' });
    const r = await o.failover.staffing(queue, nowMs()).catch((e: Error) => {
      log?.warn({ callId: call.callId, queue, err: e.message }, 'staffing unknown: queueing the call');
      return { staffed: true, reason: undefined };
    });
    if (!r.staffed) log?.info({ callId: call.callId, queue, reason: r.reason }, 'nobody can take the call: offering failover');
    call.ivr?.send(r.staffed ? { type: 'staffed' } : { type: 'unstaffed', reason: r.reason });
  }

  /** The caller chose SMS / web chat: the conversation moves there with the link, then a goodbye and our BYE. */
  async function continueOn(call: Call, channel: 'sms' | 'webchat', language: string | null): Promise<void> {
    if (!o.failover || !call.caller) return;
    const number = callerNumber(call.invite);
    try {
      const moved = await o.failover.continueOn({ callId: call.callId, caller: call.caller, number, language, attrs: { menu: 'failover' }, callAt: call.startedAt, at: nowMs() });
      call.conversationId = moved.conversationId;
      call.continuedOn = channel;
      log?.info({ callId: call.callId, conversation: moved.conversationId, channel }, 'call continued by SMS and web chat');
    } catch (e) {
      log?.warn({ callId: call.callId, err: (e as Error).message }, 'failover failed: queueing the call instead');
      return routed(call, { queue: 'default', attributes: { reason: 'failover failed' } }, language);
    }
    const lang = language && /^(zh|cmn)/i.test(language) ? 'zh' : 'en';
    const bye = await media
      .call<{ durationMs: number }>('play', { conversationId: mediaId(call), transportId: call.transportId ?? '', prompt: `failover.sent.${lang}`, codec: call.negotiated?.codec === 'PCMA' ? 'PCMA' : 'PCMU' })
      .then((r) => r.durationMs, () => 0);
    setTimeout(() => {
      if (call.state !== 'confirmed') return;
      sendBye(call);
      void end(call, `continued by ${channel}`);
    }, bye + 300);
  }

  /** The call was refused for want of media: with failover configured, the conversation goes on by SMS and web chat. */
  async function mediaDown(call: Call, caller: Caller, number: string): Promise<void> {
    if (!o.failover || !isPhoneNumber(number)) return;
    try {
      const moved = await o.failover.continueOn({ callId: call.callId, caller, number, language: o.menu.language, attrs: { reason: 'media unavailable' }, callAt: call.startedAt, at: nowMs() });
      call.conversationId = moved.conversationId;
      call.continuedOn = 'sms';
      log?.info({ callId: call.callId, conversation: moved.conversationId }, 'no media for the call: chat link sent by SMS');
    } catch (e) {
      log?.warn({ callId: call.callId, err: (e as Error).message }, 'no media for the call and the chat link was not sent');
    }
  }

  async function routed(call: Call, exit: QueueExit | { failover: string } | null, language: string | null): Promise<void> {
    if (call.state === 'ended' || !call.caller) return;
    call.language = language;
    if (exit && 'failover' in exit && o.failover && (exit.failover === 'sms' || exit.failover === 'webchat')) return continueOn(call, exit.failover, language);
    const queueExit: QueueExit = exit && 'queue' in exit ? exit : { queue: 'default', attributes: { reason: exit ? `failover ${exit.failover} not offered on voice` : 'ivr-no-exit' } };
    try {
      call.conversationId = await o.voice.open({ callId: call.callId, caller: call.caller, exit: queueExit, language, at: nowMs(), account: o.account ?? 'sip', number: callerNumber(call.invite) });
      log?.info({ callId: call.callId, conversation: call.conversationId, queue: queueExit.queue }, 'call queued');
      if (call.transportId && call.negotiated && call.negotiated.codec !== 'opus') {
        await waiting.hold({ conversationId: call.conversationId, mediaId: mediaId(call), transportId: call.transportId, codec: call.negotiated.codec, language });
      }
    } catch (e) {
      log?.warn({ callId: call.callId, err: (e as Error).message }, 'could not open the voice conversation');
    }
  }

  async function end(call: Call, why: string): Promise<void> {
    if (calls.get(call.callId) !== call) return;
    calls.delete(call.callId);
    call.state = 'ended';
    call.stopRetransmit?.();
    stats.callsEnded++;
    call.relay?.close();
    if (call.recording) void o.recordings?.finish(call.recording, { conversationId: call.conversationId, customerId: call.caller?.customerRecord, identityId: call.caller?.identityId, language: call.language ?? o.menu.language });
    if (call.ivr) {
      call.ivr.send({ type: 'hangup' });
      call.ivr.stop();
    }
    if (call.conversationId) waiting.release(call.conversationId);
    await media.call('router.close', { conversationId: mediaId(call) }).catch(() => undefined);
    if (call.conversationId && !call.continuedOn) await o.voice.hangup(call.conversationId, nowMs()).catch((e) => log?.warn({ err: (e as Error).message }, 'hangup not told'));
    log?.info({ callId: call.callId, why, relay: call.relay?.stats }, 'call ended');
  }

  return {
    port,
    calls,
    stats,
    outbound,
    async stop() {
      clearInterval(sweep);
      failures.unsubscribe();
      hangups.unsubscribe();
      keys.unsubscribe();
      waiting.stop();
      for (const t of byes.values()) clearTimeout(t);
      await Promise.all([...calls.values()].map((c) => end(c, 'edge stopping')));
      await o.recordings?.settled();
      await dialService?.stop().catch(() => undefined);
      await outbound?.stop();
      await new Promise<void>((ok) => socket.close(() => ok()));
    },
  };
}

/** The media node's key for a call: Call-IDs may hold characters router ids do not allow. */
export function mediaId(call: Pick<Call, 'callId'>): string {
  return `sip-${call.callId.replace(/[^\w.:-]/g, '_').slice(0, 180)}`;
}

/** The caller's number: the From URI's user part (tel: or sip:), else the whole URI. */
function callerNumber(rq: SipRequest): string {
  const uri = rq.headers.from.uri;
  const m = /^(?:sips?|tel):([^@;>]+)/.exec(uri);
  return (m ? m[1] : uri).slice(0, 64);
}
