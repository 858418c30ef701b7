// The agent's side of a voice call in the browser: mediasoup-client's Device on the call's router, a send
// transport carrying the microphone (in the caller's codec: the media node does not transcode) and a recv
// transport playing the caller. Every signalling step is a workspace API call (/api/calls/:id/*).
import { Device } from 'mediasoup-client';
import type { Consumer, Producer, RtpCapabilities, RtpParameters, Transport, TransportOptions } from 'mediasoup-client/types';
import { api } from './api.ts';

interface Joined {
  routerRtpCapabilities: RtpCapabilities;
  send: TransportOptions;
  recv: TransportOptions;
  codec: string;
}

export interface CallFigures {
  /** RTP packets the browser received from the media node / sent to it (RTCPeerConnection getStats). */
  packetsReceived: number;
  packetsSent: number;
}

export class BrowserCall {
  private constructor(
    readonly id: string,
    private readonly send: Transport,
    private readonly recv: Transport,
    private readonly producer: Producer,
    private readonly consumer: Consumer,
    private readonly mic: MediaStream,
    private readonly audio: HTMLAudioElement,
  ) {}

  /** Joins the call: microphone on, caller's voice playing. Closes what it opened if any step fails. */
  static async join(id: string): Promise<BrowserCall> {
    const base = `/api/calls/${encodeURIComponent(id)}`;
    const j = await api<Joined>(`${base}/join`, {});
    const device = new Device();
    await device.load({ routerRtpCapabilities: j.routerRtpCapabilities });
    const send = device.createSendTransport(j.send);
    const recv = device.createRecvTransport(j.recv);
    const opened: { close(): void }[] = [send, recv];
    let mic: MediaStream | undefined;
    try {
      for (const [t, direction] of [[send, 'send'], [recv, 'recv']] as const) {
        t.on('connect', ({ dtlsParameters }, ok, fail) => void api(`${base}/connect`, { direction, dtlsParameters }).then(() => ok(), fail));
      }
      send.on('produce', ({ kind, rtpParameters }, ok, fail) => void api<{ producerId: string }>(`${base}/produce`, { kind, rtpParameters }).then((r) => ok({ id: r.producerId }), fail));
      mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      const codec = device.rtpCapabilities.codecs?.find((c) => c.mimeType.toLowerCase() === j.codec.toLowerCase());
      if (!codec) throw new Error(`this browser cannot send ${j.codec}`);
      const producer = await send.produce({ track: mic.getAudioTracks()[0], codec, stopTracks: false });
      const c = await api<{ consumerId: string; producerId: string; kind: 'audio'; rtpParameters: RtpParameters }>(`${base}/consume`, { rtpCapabilities: device.recvRtpCapabilities });
      const consumer = await recv.consume({ id: c.consumerId, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters });
      const audio = new Audio();
      audio.srcObject = new MediaStream([consumer.track]);
      await audio.play().catch(() => undefined); // autoplay refused: the track still flows, the agent clicks to hear
      return new BrowserCall(id, send, recv, producer, consumer, mic, audio);
    } catch (e) {
      for (const o of opened) o.close();
      mic?.getTracks().forEach((t) => t.stop());
      throw e;
    }
  }

  private get base() {
    return `/api/calls/${encodeURIComponent(this.id)}`;
  }

  async mute(muted: boolean): Promise<void> {
    await api(`${this.base}/mute`, { muted });
    if (muted) this.producer.pause();
    else this.producer.resume();
  }

  async hold(held: boolean): Promise<void> {
    await api(`${this.base}/hold`, { held });
    if (held) {
      this.producer.pause();
      this.consumer.pause();
    } else {
      this.producer.resume();
      this.consumer.resume();
    }
  }

  /** Keys toward the caller's phone line (RFC 4733, e.g. an extension or a PIN at the far end). */
  async dtmf(digits: string): Promise<void> {
    await api(`${this.base}/dtmf`, { digits });
  }

  /** Packet counts from the browser's own RTCPeerConnections. */
  async figures(): Promise<CallFigures> {
    let packetsReceived = 0;
    let packetsSent = 0;
    (await this.consumer.getStats()).forEach((r: { type: string; packetsReceived?: number }) => {
      if (r.type === 'inbound-rtp') packetsReceived += r.packetsReceived ?? 0;
    });
    (await this.producer.getStats()).forEach((r: { type: string; packetsSent?: number }) => {
      if (r.type === 'outbound-rtp') packetsSent += r.packetsSent ?? 0;
    });
    return { packetsReceived, packetsSent };
  }

  /** Leaves the call on this side only (the server side closes with the call). */
  close(): void {
    this.audio.srcObject = null;
    this.send.close();
    this.recv.close();
    this.mic.getTracks().forEach((t) => t.stop());
  }

  /** Hangs up: the caller gets a BYE and the conversation moves to wrap-up. */
  async hangup(): Promise<void> {
    this.close();
    await api(`${this.base}/hangup`, {});
  }
}
