// The widget's side of a call (served bundled as /webchat/v1/call.js, loaded by widget.js only when the
// visitor presses Call): mediasoup-client on the conversation's router, the microphone as the caller's
// voice, the agent's voice played once the call is answered. Signalling is protocol v2 `call.*` frames on
// the chat socket the widget already has (PROTOCOL.md): each request carries a ref, its answer the same ref.
import { Device } from 'mediasoup-client';
import type { Consumer, Producer, RtpCapabilities, RtpParameters, Transport, TransportOptions } from 'mediasoup-client/types';
import type { CallServerFrame, ServerFrame } from './protocol.ts';

/** The chat socket as the call sees it: widget.js's client (`call` sends a raw frame, `on` listens). */
export interface Signal {
  send(frame: Record<string, unknown>): boolean;
  on(listener: (frame: ServerFrame) => void): () => void;
}

export type CallPhase = 'starting' | 'ringing' | 'live' | 'ended';

export interface CallHooks {
  /** Each change of phase; `detail` is the reason when ended. */
  phase(p: CallPhase, detail?: string): void;
}

export interface CallFigures {
  /** RTP packets this page sent (microphone) and received (the agent), from its RTCPeerConnections. */
  packetsSent: number;
  packetsReceived: number;
}

type Answer<T extends CallServerFrame['type']> = Extract<CallServerFrame, { type: T }>;

let refs = 0;

/** Sends a call request and waits for its answer (or the error frame naming its ref). */
function request<T extends CallServerFrame['type']>(signal: Signal, frame: Record<string, unknown> & { type: string }, answer: T, timeoutMs = 15_000): Promise<Answer<T>> {
  const ref = `k${Date.now().toString(36)}${(++refs).toString(36)}`;
  return new Promise((ok, fail) => {
    const off = signal.on((f) => {
      if (!('ref' in f) || f.ref !== ref) return;
      done();
      if (f.type === 'error') fail(new Error(f.reason));
      else if (f.type === answer) ok(f as Answer<T>);
      else fail(new Error(`unexpected answer ${f.type} to ${frame.type}`));
    });
    const timer = setTimeout(() => {
      done();
      fail(new Error(`no answer to ${frame.type} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const done = () => {
      off();
      clearTimeout(timer);
    };
    if (!signal.send({ ...frame, ref })) {
      done();
      fail(new Error('the chat is offline: try again when it reconnects'));
    }
  });
}

export class WidgetCall {
  private consumer: Consumer | undefined;
  private audio: HTMLAudioElement | undefined;
  private ended = false;
  private readonly off: () => void;

  private constructor(
    private readonly signal: Signal,
    private readonly hooks: CallHooks,
    readonly callId: string,
    private readonly device: Device,
    private readonly send: Transport,
    private readonly recv: Transport,
    private readonly mic: MediaStream,
    private producer: Producer | undefined,
  ) {
    this.off = signal.on((f) => {
      if (f.type === 'call.answered' && f.callId === callId) void this.answered();
      else if (f.type === 'call.ended' && f.callId === callId) this.close(f.reason);
    });
  }

  /** Calls: transports, microphone (opus), then ringing until an agent answers. */
  static async start(signal: Signal, hooks: CallHooks, invite?: string): Promise<WidgetCall> {
    hooks.phase('starting');
    const t = await request(signal, { type: 'call.start', ...(invite ? { invite } : {}) }, 'call.transport');
    let mic: MediaStream | undefined;
    const device = new Device();
    let send: Transport | undefined;
    let recv: Transport | undefined;
    let call: WidgetCall | undefined;
    try {
      await device.load({ routerRtpCapabilities: t.routerRtpCapabilities as RtpCapabilities });
      send = device.createSendTransport(t.send as TransportOptions);
      recv = device.createRecvTransport(t.recv as TransportOptions);
      for (const [tr, direction] of [[send, 'send'], [recv, 'recv']] as const) {
        tr.on('connect', ({ dtlsParameters }, ok, fail) => void request(signal, { type: 'call.connect', direction, dtlsParameters }, 'call.connected').then(() => ok(), fail));
      }
      send.on('produce', ({ kind, rtpParameters }, ok, fail) => void request(signal, { type: 'call.produce', kind, rtpParameters }, 'call.produced').then((r) => ok({ id: r.producerId }), fail));
      mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      // Listen before producing: call.ringing and even call.answered may follow the produce answer at once.
      call = new WidgetCall(signal, hooks, t.callId, device, send, recv, mic, undefined);
      const codec = device.rtpCapabilities.codecs?.find((c) => c.mimeType.toLowerCase() === 'audio/opus');
      if (!codec) throw new Error('this browser cannot send opus audio');
      call.producer = await send.produce({ track: mic.getAudioTracks()[0], codec, stopTracks: false });
      if (!call.ended && !call.consumer) hooks.phase('ringing');
      return call;
    } catch (e) {
      signal.send({ type: 'call.hangup' });
      if (call) call.close((e as Error).message);
      else {
        send?.close();
        recv?.close();
        mic?.getTracks().forEach((x) => x.stop());
      }
      throw e;
    }
  }

  private async answered(): Promise<void> {
    if (this.ended || this.consumer) return;
    try {
      const c = await request(this.signal, { type: 'call.consume', rtpCapabilities: this.device.recvRtpCapabilities }, 'call.consumer');
      this.consumer = await this.recv.consume({ id: c.consumerId, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters as RtpParameters });
      this.audio = new Audio();
      this.audio.srcObject = new MediaStream([this.consumer.track]);
      await this.audio.play().catch(() => undefined); // autoplay refused: the track still flows
      if (!this.ended) this.hooks.phase('live');
    } catch (e) {
      this.signal.send({ type: 'call.hangup' });
      this.close(`the agent could not be heard: ${(e as Error).message}`);
    }
  }

  /** Packet counts from this page's own RTCPeerConnections. */
  async figures(): Promise<CallFigures> {
    let packetsSent = 0;
    let packetsReceived = 0;
    (await this.producer?.getStats())?.forEach((r: { type: string; packetsSent?: number }) => {
      if (r.type === 'outbound-rtp') packetsSent += r.packetsSent ?? 0;
    });
    (await this.consumer?.getStats())?.forEach((r: { type: string; packetsReceived?: number }) => {
      if (r.type === 'inbound-rtp') packetsReceived += r.packetsReceived ?? 0;
    });
    return { packetsSent, packetsReceived };
  }

  /** The visitor hangs up: the server ends the call (wrap-up for the agent) and answers call.ended. */
  hangup(): void {
    if (this.ended) return;
    this.signal.send({ type: 'call.hangup' });
    this.close('you hung up');
  }

  private close(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.off();
    if (this.audio) this.audio.srcObject = null;
    this.send.close();
    this.recv.close();
    this.mic.getTracks().forEach((t) => t.stop());
    this.hooks.phase('ended', reason);
  }
}

/** What widget.js calls after importing this module. */
export function startCall(signal: Signal, hooks: CallHooks, opts: { invite?: string } = {}): Promise<WidgetCall> {
  return WidgetCall.start(signal, hooks, opts.invite);
}
