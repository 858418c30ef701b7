// Outbound calls from the SIP edge toward the configured trunk (callback, proactive outreach, a chat
// escalated to a call): the UAC side of RFC 3261 on the edge's own UDP socket.
//   INVITE with our SDP offer (PCMU, PCMA, opus, telephone-event) pointing at a per-call RTP relay that
//   forwards to the media node, retransmitted per Timer A until a response (Timer B gives up);
//   1xx: 180/183 = ringing; 2xx: ACK (again for each retransmitted 2xx), the answer fixes the codec, the
//   trunk's audio becomes the call's 'caller' producer and music on hold plays until an agent's microphone
//   is bridged; 401/407: ACK, then the INVITE again with Authorization / Proxy-Authorization (digest.ts),
//   same Call-ID and From tag, next CSeq; other 3xx-6xx: ACK, failed with the status and reason.
//   The agent giving up before the answer sends CANCEL (after a provisional, as §9.1 asks); BYE either way.
// Every request goes to the trunk's address (it acts as our outbound proxy; Record-Route is not kept).
// The call's router is keyed by the conversation id (web/server/calls.ts joins it that way), and each
// step is told to the conversation actor as `call.progress` (dialing, ringing, answered, failed, ended).
// `serveDial` answers the engine's requests on `cc.voice.v1.dial`; `dialCall` is its client.
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import * as v from 'valibot';
import type { CallState } from '../../machines/conversation.ts';
import type { MediaClient } from '../../media/service.ts';
import { authorization, DigestError, parseChallenge } from './digest.ts';
import { isRequest, makeResponse, stringifySip, type SipMessage, type SipRequest, type SipResponse } from './grammar.ts';
import { RtpRelay } from './relay.ts';
import { buildAnswer, buildOffer, negotiate, parseOffer, type Negotiated } from './sdp.ts';

export const DIAL_SUBJECT = 'cc.voice.v1.dial';

const T1 = 500;
const T2 = 4000;
const TIMER_B = 64 * T1;
/** How long an ended call stays known, to ACK a retransmitted 2xx and absorb late responses. */
const LINGER_MS = 32_000;

export interface Trunk {
  /** Where every request goes (SIP_TRUNK host:port). */
  host: string;
  port: number;
  /** Digest credentials for the trunk's 401/407 challenges (SIP_TRUNK_USER / SIP_TRUNK_PASSWORD). */
  user?: string;
  password?: string;
  /** Our caller id (SIP_FROM_NUMBER). */
  fromNumber: string;
}

const Phone = v.pipe(
  v.string('must be a phone number'),
  v.transform((s) => s.replace(/[\s().-]/g, '')),
  v.regex(/^\+?[0-9*#]{2,32}$/, 'must be a phone number: digits, optionally with a leading +'),
);
export const DialRequest = v.object({
  conversationId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/, 'not a conversation id')),
  number: Phone,
});
export type DialRequest = v.InferInput<typeof DialRequest>;

export class DialError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export interface Progress {
  callId: string;
  state: CallState;
  reason?: string;
}

export interface OutboundOptions {
  trunk: Trunk;
  /** Our listen address (RTP relays bind there) and the one we put in Via, Contact and SDP. */
  host: string;
  publicIp: string;
  /** The edge's SIP port and its socket's send. */
  port: number;
  send(text: string, to: { ip: string; port: number }): void;
  media: MediaClient;
  /** Tells the conversation actor (durably, in order). */
  progress(conversationId: string, p: Progress): Promise<void>;
  holdPrompt?: string;
  /** Unanswered this long after ringing: CANCEL, failed with "no answer" (default 60 s). */
  ringTimeoutMs?: number;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

type Phase = 'calling' | 'proceeding' | 'answered' | 'ended';

interface OutCall {
  callId: string;
  conversationId: string;
  number: string;
  phase: Phase;
  fromTag: string;
  seq: number;
  /** The INVITE in flight (the latest one, after a challenge). */
  invite: SipRequest;
  inviteText: string;
  /** Remote tag and target once answered. */
  toTag?: string;
  target?: string;
  /** The ACK for the final response to the current INVITE, re-sent when that response is retransmitted. */
  ack?: { seq: number; text: string };
  authTries: number;
  provisional: boolean;
  ringing: boolean;
  /** Set when the call should stop before the answer: what to report once the trunk confirms. */
  cancel?: { state: CallState; reason: string; sent: boolean };
  negotiated?: Negotiated;
  relay?: RtpRelay;
  /** The SSRC the relay gives the callee's audio (the media node's producer expects it). */
  calleeSsrc: number;
  transportId?: string;
  sessionId: number;
  sdpVersion: number;
  /** INVITE-side timers (Timer A/B, ring timeout); cleared when the call ends. */
  timers: Set<ReturnType<typeof setTimeout>>;
  ringTimer?: ReturnType<typeof setTimeout>;
  /** Non-INVITE client transactions (CANCEL, BYE), retransmitted until answered even after the call ended; by CSeq method. */
  pending: Map<string, ReturnType<typeof setTimeout>>;
  /** Progress tells in order: one after the other. */
  told: Promise<void>;
}

export interface OutboundCalls {
  /** Calls by Call-ID (ended ones linger a while). */
  calls: Map<string, Readonly<OutCall>>;
  stats: { dialed: number; answered: number; failed: number; challenged: number };
  dial(req: v.InferOutput<typeof DialRequest>): Promise<{ callId: string }>;
  /** A message whose Call-ID is one of our calls; false when it is not ours. */
  take(m: SipMessage, from: { ip: string; port: number }): boolean;
  /** The agent hung up (or gave up before the answer); false when this edge holds no such call. */
  hangup(conversationId: string, reason: string): boolean;
  /** The media node lost this call's router. */
  mediaFailed(conversationId: string, reason: string): boolean;
  stop(): Promise<void>;
}

const rand = () => crypto.randomUUID().replace(/-/g, '').slice(0, 16);

export function outboundCalls(o: OutboundOptions): OutboundCalls {
  const calls = new Map<string, OutCall>();
  const stats = { dialed: 0, answered: 0, failed: 0, challenged: 0 };
  const trunkAddr = { ip: o.trunk.host, port: o.trunk.port };
  const ringTimeoutMs = o.ringTimeoutMs ?? 60_000;
  const log = o.log;
  const sendText = (text: string) => o.send(text, trunkAddr);
  const later = (call: OutCall, ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      call.timers.delete(t);
      fn();
    }, ms);
    call.timers.add(t);
    return t;
  };
  const stopTimer = (call: OutCall, t: ReturnType<typeof setTimeout> | undefined) => {
    if (!t) return;
    clearTimeout(t);
    call.timers.delete(t);
  };
  const live = (conversationId: string) => [...calls.values()].find((c) => c.conversationId === conversationId && c.phase !== 'ended');
  const tell = (call: OutCall, state: CallState, reason?: string) =>
    (call.told = call.told.then(() => o.progress(call.conversationId, { callId: call.callId, state, reason }).catch((e: Error) => log?.warn({ callId: call.callId, state, err: e.message }, 'call progress not told'))));

  const via = (branch: string) => [{ version: '2.0', protocol: 'UDP', host: o.publicIp, port: o.port, params: { branch, rport: null } }];

  function buildInvite(call: OutCall, auth?: { header: 'authorization' | 'proxy-authorization'; value: string }): SipRequest {
    const uri = `sip:${call.number}@${o.trunk.host}:${o.trunk.port}`;
    const sdp = buildOffer({ ip: o.publicIp, port: call.relay!.local.port, sessionId: call.sessionId, version: call.sdpVersion });
    return {
      method: 'INVITE',
      uri,
      version: '2.0',
      headers: {
        via: via(`z9hG4bK${rand()}`),
        from: { uri: `sip:${o.trunk.fromNumber}@${o.trunk.host}`, params: { tag: call.fromTag } },
        to: { uri: `sip:${call.number}@${o.trunk.host}`, params: {} },
        'call-id': call.callId,
        cseq: { seq: call.seq, method: 'INVITE' },
        contact: [{ uri: `sip:cc@${o.publicIp}:${o.port}`, params: {} }],
        'max-forwards': 70,
        ...(auth ? { [auth.header]: auth.value } : {}),
        allow: 'INVITE, ACK, BYE, CANCEL, OPTIONS',
        'content-type': 'application/sdp',
      },
      content: sdp,
    };
  }

  /** Sends the INVITE and retransmits it (Timer A, doubling from T1) until a response; Timer B fails the call. */
  function sendInvite(call: OutCall, rq: SipRequest): void {
    call.invite = rq;
    call.inviteText = stringifySip(rq);
    call.provisional = false;
    call.ack = undefined;
    const seq = call.seq;
    let delay = T1;
    const started = Date.now();
    const again = () => {
      if (call.phase !== 'calling' || call.seq !== seq) return;
      if (Date.now() - started >= TIMER_B) return void end(call, 'failed', 'the trunk did not answer the INVITE (timer B)');
      sendText(call.inviteText);
      later(call, delay, again);
      delay *= 2;
    };
    again();
  }

  /** A non-INVITE request (CANCEL, BYE): retransmitted (T1 doubling to T2) until any response, for up to 32 s. */
  function sendNonInvite(call: OutCall, rq: SipRequest): void {
    const text = stringifySip(rq);
    let delay = T1;
    const started = Date.now();
    const again = () => {
      call.pending.delete(rq.method);
      if (Date.now() - started >= TIMER_B) return;
      sendText(text);
      call.pending.set(rq.method, setTimeout(again, delay));
      delay = Math.min(delay * 2, T2);
    };
    again();
  }
  const answeredNonInvite = (call: OutCall, method: string) => {
    clearTimeout(call.pending.get(method));
    call.pending.delete(method);
  };

  function sendCancel(call: OutCall): void {
    if (!call.cancel || call.cancel.sent) return;
    call.cancel.sent = true;
    const i = call.invite;
    // Same Request-URI, top Via (branch), From, To (no tag), Call-ID and CSeq number as the INVITE (§9.1).
    sendNonInvite(call, { method: 'CANCEL', uri: i.uri, version: '2.0', headers: { via: i.headers.via, from: i.headers.from, to: i.headers.to, 'call-id': call.callId, cseq: { seq: i.headers.cseq.seq, method: 'CANCEL' }, 'max-forwards': 70 }, content: '' });
    // A trunk that never finishes the INVITE after our CANCEL does not keep the call alive.
    later(call, TIMER_B, () => void end(call, call.cancel!.state, `${call.cancel!.reason} (the trunk never confirmed the CANCEL)`));
  }

  function sendBye(call: OutCall): void {
    call.seq++;
    sendNonInvite(call, {
      method: 'BYE',
      uri: call.target ?? call.invite.uri,
      version: '2.0',
      headers: { via: via(`z9hG4bK${rand()}`), from: call.invite.headers.from, to: { ...call.invite.headers.to, params: { tag: call.toTag } }, 'call-id': call.callId, cseq: { seq: call.seq, method: 'BYE' }, 'max-forwards': 70 },
      content: '',
    });
  }

  /** ACK: for a 2xx a new transaction to the remote target; for a failure, the INVITE's own (same branch). */
  function sendAck(call: OutCall, rs: SipResponse, success: boolean): void {
    const i = call.invite;
    const text = stringifySip({
      method: 'ACK',
      uri: success ? (call.target ?? i.uri) : i.uri,
      version: '2.0',
      headers: { via: success ? via(`z9hG4bK${rand()}`) : i.headers.via, from: i.headers.from, to: rs.headers.to, 'call-id': call.callId, cseq: { seq: i.headers.cseq.seq, method: 'ACK' }, 'max-forwards': 70 },
      content: '',
    });
    call.ack = { seq: i.headers.cseq.seq, text };
    sendText(text);
  }

  async function end(call: OutCall, state: CallState, reason: string): Promise<void> {
    if (call.phase === 'ended') return;
    const wasAnswered = call.phase === 'answered';
    call.phase = 'ended';
    for (const t of call.timers) clearTimeout(t);
    call.timers.clear();
    if (state === 'failed') stats.failed++;
    call.relay?.close();
    log?.info({ callId: call.callId, conversation: call.conversationId, state, reason, answered: wasAnswered, relay: call.relay?.stats }, 'outbound call ended');
    // Kept a while so a retransmitted 2xx is still ACKed and a late BYE answer absorbed.
    setTimeout(() => {
      if (calls.get(call.callId) === call) calls.delete(call.callId);
    }, LINGER_MS).unref();
    await o.media.call('router.close', { conversationId: call.conversationId }).catch(() => undefined);
    await tell(call, state, reason);
  }

  async function answered(call: OutCall, rs: SipResponse): Promise<void> {
    stopTimer(call, call.ringTimer);
    call.toTag = String(rs.headers.to.params.tag ?? '');
    call.target = rs.headers.contact?.[0]?.uri ?? call.invite.uri;
    sendAck(call, rs, true);
    if (call.cancel) {
      // Answered while we were giving up: the call is confirmed, then ended at once.
      call.phase = 'answered';
      sendBye(call);
      return end(call, call.cancel.state, call.cancel.reason);
    }
    call.phase = 'answered';
    try {
      const answer = parseOffer(rs.content);
      call.negotiated = negotiate(answer);
      call.relay!.negotiated(call.negotiated);
      call.relay!.retarget({ ip: answer.ip, port: answer.port });
      call.relay!.held = answer.direction === 'sendonly' || answer.direction === 'inactive';
      // The callee's voice is the call's 'caller' producer: what the agent's browser consumes.
      await o.media.call('produce', { conversationId: call.conversationId, transportId: call.transportId!, codec: call.negotiated.codec, payloadType: call.negotiated.payloadType, ssrc: call.calleeSsrc });
    } catch (e) {
      sendBye(call);
      return end(call, 'failed', `unusable answer from the trunk: ${(e as Error).message}`);
    }
    if (call.phase !== 'answered') return;
    stats.answered++;
    await tell(call, 'answered');
    await holdMusic(call);
  }

  /** Music until an agent's microphone is bridged into the call (webrtc.produce stops it). */
  async function holdMusic(call: OutCall): Promise<void> {
    const codec = call.negotiated?.codec;
    if (!o.holdPrompt || (codec !== 'PCMU' && codec !== 'PCMA')) return;
    try {
      const info = await o.media.call<{ producers: { source: string }[] }>('call.info', { conversationId: call.conversationId });
      if (info.producers.some((p) => p.source === 'agent')) return;
      await o.media.call('play', { conversationId: call.conversationId, transportId: call.transportId!, prompt: o.holdPrompt, codec, loop: true });
    } catch (e) {
      log?.warn({ callId: call.callId, err: (e as Error).message }, 'no music on hold');
    }
  }

  function onInviteResponse(call: OutCall, rs: SipResponse): void {
    const seq = rs.headers.cseq.seq;
    if (seq !== call.invite.headers.cseq.seq) return; // an answer to an INVITE we already replaced
    if (rs.status < 200) {
      if (call.phase === 'ended') return;
      call.provisional = true;
      if (call.phase === 'calling') call.phase = 'proceeding';
      if (call.cancel) return sendCancel(call);
      if ((rs.status === 180 || rs.status === 183) && !call.ringing) {
        call.ringing = true;
        void tell(call, 'ringing');
        call.ringTimer = later(call, ringTimeoutMs, () => giveUp(call, 'failed', `no answer within ${Math.round(ringTimeoutMs / 1000)} s`));
      }
      return;
    }
    // A retransmitted final response: the same ACK again.
    if (call.ack?.seq === seq) return sendText(call.ack.text);
    if (call.phase === 'ended' && rs.status >= 300) return sendAck(call, rs, false);
    if (rs.status < 300) {
      if (call.phase === 'ended') {
        // Answered after we stopped (e.g. a CANCEL crossed the 200): confirm and hang up.
        call.toTag = String(rs.headers.to.params.tag ?? '');
        call.target = rs.headers.contact?.[0]?.uri ?? call.invite.uri;
        sendAck(call, rs, true);
        sendBye(call);
        return;
      }
      void answered(call, rs);
      return;
    }
    sendAck(call, rs, false);
    if ((rs.status === 401 || rs.status === 407) && !call.cancel) return challenged(call, rs);
    if (call.cancel && rs.status === 487) return void end(call, call.cancel.state, call.cancel.reason);
    void end(call, 'failed', `${rs.status} ${rs.reason}`);
  }

  /** 401/407: the INVITE again with credentials; a second challenge means they were refused. */
  function challenged(call: OutCall, rs: SipResponse): void {
    stats.challenged++;
    const proxy = rs.status === 407;
    const raw = (rs.headers[proxy ? 'proxy-authenticate' : 'www-authenticate'] as Record<string, string>[] | undefined)?.[0];
    const fail = (why: string) => void end(call, 'failed', `${rs.status} ${rs.reason}: ${why}`);
    if (!raw) return fail('no challenge in the response');
    if (!o.trunk.user || o.trunk.password === undefined) return fail('the trunk asks for credentials; set SIP_TRUNK_USER and SIP_TRUNK_PASSWORD');
    let challenge;
    try {
      challenge = parseChallenge(`${raw.scheme ?? ''} ${Object.entries(raw).filter(([k]) => k !== 'scheme').map(([k, x]) => `${k}=${x}`).join(', ')}`);
    } catch (e) {
      return fail((e as DigestError).message);
    }
    const stale = /^"?true"?$/i.test(raw.stale ?? '');
    if (call.authTries >= 1 && !stale) return fail('the trunk refused our credentials');
    call.authTries++;
    call.seq++;
    call.phase = 'calling';
    const value = authorization({ challenge, username: o.trunk.user, password: o.trunk.password, method: 'INVITE', uri: `sip:${call.number}@${o.trunk.host}:${o.trunk.port}` });
    sendInvite(call, buildInvite(call, { header: proxy ? 'proxy-authorization' : 'authorization', value }));
  }

  /** Requests from the trunk inside our call's dialog. */
  function onRequest(call: OutCall, rq: SipRequest): void {
    const reply = (status: number, reason: string, extra: { headers?: Record<string, unknown>; content?: string } = {}) => {
      const rs = makeResponse(rq, status, reason, extra);
      if (extra.content) rs.headers['content-type'] = 'application/sdp';
      sendText(stringifySip(rs));
    };
    switch (rq.method) {
      case 'ACK':
        return;
      case 'BYE':
        reply(200, 'OK');
        void end(call, 'ended', 'the callee hung up');
        return;
      case 'OPTIONS':
        return reply(200, 'OK', { headers: { allow: 'INVITE, ACK, BYE, CANCEL, OPTIONS' } });
      case 'INVITE': {
        // A re-INVITE (hold, session refresh): answered like the inbound side does.
        if (call.phase !== 'answered' || !call.negotiated || !call.relay) return reply(491, 'Request Pending');
        let direction: ReturnType<typeof parseOffer>['direction'] = 'sendrecv';
        try {
          if (rq.content.trim()) {
            const offer = parseOffer(rq.content);
            direction = offer.direction;
            call.relay.retarget({ ip: offer.ip, port: offer.port });
          }
        } catch (e) {
          return reply(488, 'Not Acceptable Here', { headers: { warning: `399 cc "${(e as Error).message.replace(/"/g, "'")}"` } });
        }
        call.relay.held = direction === 'sendonly' || direction === 'inactive';
        call.sdpVersion++;
        const sdp = buildAnswer({ ip: o.publicIp, port: call.relay.local.port, negotiated: call.negotiated, offerDirection: direction, sessionId: call.sessionId, version: call.sdpVersion });
        return reply(200, 'OK', { content: sdp, headers: { contact: [{ uri: `sip:cc@${o.publicIp}:${o.port}`, params: {} }] } });
      }
      default:
        return reply(501, 'Not Implemented', { headers: { allow: 'INVITE, ACK, BYE, CANCEL, OPTIONS' } });
    }
  }

  /** Stops a call from our side: BYE once answered, CANCEL before (ended when the trunk confirms with 487). */
  function giveUp(call: OutCall, state: CallState, reason: string): void {
    if (call.phase === 'ended' || call.cancel) return;
    if (call.phase === 'answered') {
      sendBye(call);
      void end(call, state, reason);
      return;
    }
    call.cancel = { state, reason, sent: false };
    if (call.provisional) sendCancel(call);
    // Without a provisional yet, the CANCEL waits for one (§9.1); Timer B still bounds the INVITE.
  }

  return {
    calls,
    stats,
    async dial({ conversationId, number }) {
      if (live(conversationId)) throw new DialError(409, `conversation ${conversationId} already has a call in progress`);
      const call: OutCall = {
        callId: `${crypto.randomUUID()}@${o.publicIp}`,
        conversationId,
        number,
        phase: 'calling',
        fromTag: rand().slice(0, 10),
        seq: 1,
        invite: undefined as unknown as SipRequest,
        inviteText: '',
        authTries: 0,
        provisional: false,
        ringing: false,
        calleeSsrc: 0x30000000 + Math.floor(Math.random() * 0x0fffffff),
        sessionId: Math.floor(Math.random() * 1e9),
        sdpVersion: 1,
        timers: new Set(),
        pending: new Map(),
        told: Promise.resolve(),
      };
      calls.set(call.callId, call);
      try {
        // Media first: the offer names the relay's port, and the relay forwards to the media node.
        await o.media.call('router.open', { conversationId });
        const leg = await o.media.call<{ transportId: string; ip: string; port: number }>('plain.create', { conversationId });
        call.transportId = leg.transportId;
        call.relay = await RtpRelay.open(o.host, trunkAddr, {
          payloadType: 0, // until the answer says which codec
          callerSsrc: call.calleeSsrc,
          onDigit: (digit) => log?.info({ callId: call.callId, digit }, 'dtmf from the callee'),
        });
        call.relay.connectMedia({ ip: leg.ip, port: leg.port });
        await o.media.call('plain.connect', { conversationId, transportId: leg.transportId, ip: call.relay.local.ip, port: call.relay.local.port });
      } catch (e) {
        calls.delete(call.callId);
        call.relay?.close();
        await o.media.call('router.close', { conversationId }).catch(() => undefined);
        throw new DialError(502, `media node: ${(e as Error).message}`);
      }
      // Told (durably) before the INVITE leaves, so every later step reaches the conversation after it.
      try {
        await o.progress(conversationId, { callId: call.callId, state: 'dialing' });
      } catch (e) {
        calls.delete(call.callId);
        call.relay.close();
        await o.media.call('router.close', { conversationId }).catch(() => undefined);
        throw new DialError(503, `the conversation could not be told: ${(e as Error).message}`);
      }
      stats.dialed++;
      sendInvite(call, buildInvite(call));
      log?.info({ callId: call.callId, conversation: conversationId }, 'outbound call dialing');
      return { callId: call.callId };
    },
    take(m, _from) {
      const call = calls.get(m.headers['call-id']);
      if (!call) return false;
      if (isRequest(m)) {
        if (call.phase === 'ended' && m.method !== 'ACK') {
          const rs = makeResponse(m, 481, 'Call/Transaction Does Not Exist');
          sendText(stringifySip(rs));
        } else onRequest(call, m);
        return true;
      }
      const method = m.headers.cseq.method;
      if (method === 'INVITE') onInviteResponse(call, m);
      else if (m.status >= 200) answeredNonInvite(call, method);
      return true;
    },
    hangup(conversationId, reason) {
      const call = live(conversationId);
      if (!call) return false;
      giveUp(call, 'ended', reason);
      return true;
    },
    mediaFailed(conversationId, reason) {
      const call = live(conversationId);
      if (!call) return false;
      giveUp(call, 'failed', `media failed: ${reason}`);
      // Without media there is nothing to wait for: report it now (the SIP side finishes in the background).
      void end(call, 'failed', `media failed: ${reason}`);
      return true;
    },
    async stop() {
      const open = [...calls.values()].filter((c) => c.phase !== 'ended');
      for (const c of open) giveUp(c, 'ended', 'the SIP edge stopped');
      await Promise.all(open.map((c) => end(c, 'ended', 'the SIP edge stopped')));
      for (const c of calls.values()) for (const t of [...c.timers, ...c.pending.values()]) clearTimeout(t);
      calls.clear();
    },
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Answers `cc.voice.v1.dial` for this edge (queue group: one edge with a trunk takes each request). */
export async function serveDial(nc: NatsConnection, out: OutboundCalls): Promise<Service> {
  const service = await new Svcm(nc).add({ name: 'cc-sip-dial', version: '1.0.0', description: 'cc SIP edge: outbound calls through the trunk', queue: 'cc-sip-dial' });
  service.addEndpoint('dial', {
    subject: DIAL_SUBJECT,
    handler: (err, msg) => {
      if (!err) void answer(msg);
    },
  });
  async function answer(msg: ServiceMsg): Promise<void> {
    try {
      let input: unknown;
      try {
        input = JSON.parse(dec.decode(msg.data));
      } catch {
        throw new DialError(400, 'dial: request is not JSON');
      }
      const r = v.safeParse(DialRequest, input);
      if (!r.success) throw new DialError(400, `dial: ${v.getDotPath(r.issues[0]) ?? 'request'}: ${r.issues[0].message}`);
      msg.respond(enc.encode(JSON.stringify(await out.dial(r.output))));
    } catch (e) {
      const code = e instanceof DialError ? e.code : 500;
      const reason = (e instanceof DialError ? e.reason : `dial: ${(e as Error).message}`).replace(/[\r\n]+/g, ' ').slice(0, 500);
      msg.respondError(code, reason, enc.encode(JSON.stringify({ error: { code, reason } })));
    }
  }
  return service;
}

/** Asks an edge with a trunk to call `number` for the conversation; throws DialError (503 when no edge can). */
export async function dialCall(nc: NatsConnection, req: DialRequest, timeoutMs = 10_000): Promise<{ callId: string }> {
  const r = v.safeParse(DialRequest, req);
  if (!r.success) throw new DialError(400, `${v.getDotPath(r.issues[0]) ?? 'request'}: ${r.issues[0].message}`);
  let m;
  try {
    m = await nc.request(DIAL_SUBJECT, enc.encode(JSON.stringify(r.output)), { timeout: timeoutMs });
  } catch (e) {
    const why = (e as Error).message;
    if (/no responders|503/i.test(why)) throw new DialError(503, 'no SIP edge with a trunk is running (set SIP_TRUNK on an edge node)');
    throw new DialError(504, `the SIP edge did not answer: ${why}`);
  }
  const code = m.headers?.get('Nats-Service-Error-Code');
  if (code) throw new DialError(Number(code), m.headers?.get('Nats-Service-Error') ?? 'dial failed');
  return v.parse(v.object({ callId: v.string() }), JSON.parse(dec.decode(m.data)));
}
