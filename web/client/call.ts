// The agent's side of a voice call in the browser: mediasoup-client's Device on the call's router, a send
// transport carrying the microphone (in the caller's codec: the media node does not transcode) and a recv
// transport playing the caller. Every signalling step is a workspace API call (/api/calls/:id/*).
// A warm transfer adds a consult: the colleague joins the same router (`joinConsult`), each side plays the
// other's voice (`peer`), and on completion the colleague's call takes the caller over (`takeOver`).
import { Device } from 'mediasoup-client';
import type { Consumer, Producer, RtpCapabilities, RtpParameters, Transport, TransportOptions } from 'mediasoup-client/types';
import { api } from './api.ts';

interface Joined {
  routerRtpCapabilities: RtpCapabilities;
  send: TransportOptions;
  recv: TransportOptions;
  codec: string;
}
type Consumed = { consumerId: string; producerId: string; kind: 'audio'; rtpParameters: RtpParameters };

export interface CallFigures {
  /** RTP packets the browser received from the media node / sent to it (RTCPeerConnection getStats). */
  packetsReceived: number;
  packetsSent: number;
  /** Received from the other agent of a consult. */
  peerPacketsReceived: number;
}

/** A voice stream playing in the page. */
class Heard {
  private readonly audio = new Audio();
  constructor(readonly consumer: Consumer) {
    this.audio.srcObject = new MediaStream([consumer.track]);
    void this.audio.play().catch(() => undefined); // autoplay refused: the track still flows, the agent clicks to hear
  }
  close(): void {
    this.audio.srcObject = null;
    this.consumer.close();
  }
}

/** Calls handed from the consult invitation to the call panel once a warm transfer completed, by conversation. */
export const handedOver = new Map<string, BrowserCall>();

export class BrowserCall {
  private caller?: Heard;
  private peer?: Heard;

  private constructor(
    readonly id: string,
    private readonly device: Device,
    private readonly send: Transport,
    private readonly recv: Transport,
    private readonly producer: Producer,
    private readonly mic: MediaStream,
  ) {}

  /** Joins the call: microphone on, caller's voice playing. Closes what it opened if any step fails. */
  static async join(id: string): Promise<BrowserCall> {
    const call = await BrowserCall.open(id, 'join');
    try {
      await call.hearCaller();
    } catch (e) {
      call.close();
      throw e;
    }
    return call;
  }

  /** Joins a consult the agent was invited to: microphone on (toward the inviting agent only), their voice playing. */
  static async joinConsult(id: string): Promise<BrowserCall> {
    const call = await BrowserCall.open(id, 'consult/join');
    try {
      await call.hearPeer();
    } catch (e) {
      call.close();
      throw e;
    }
    return call;
  }

  private static async open(id: string, how: 'join' | 'consult/join'): Promise<BrowserCall> {
    const base = `/api/calls/${encodeURIComponent(id)}`;
    const j = await api<Joined>(`${base}/${how}`, {});
    const device = new Device();
    await device.load({ routerRtpCapabilities: j.routerRtpCapabilities });
    const send = device.createSendTransport(j.send);
    const recv = device.createRecvTransport(j.recv);
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
      return new BrowserCall(id, device, send, recv, producer, mic);
    } catch (e) {
      send.close();
      recv.close();
      mic?.getTracks().forEach((t) => t.stop());
      throw e;
    }
  }

  private get base() {
    return `/api/calls/${encodeURIComponent(this.id)}`;
  }

  private async consume(peer: boolean): Promise<Heard> {
    const c = await api<Consumed>(`${this.base}/consume`, { rtpCapabilities: this.device.recvRtpCapabilities, peer });
    return new Heard(await this.recv.consume({ id: c.consumerId, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters }));
  }

  private async hearCaller(): Promise<void> {
    this.caller?.close();
    this.caller = await this.consume(false);
  }

  /** The other agent of a consult: the invited one once they joined, or the inviting one. */
  async hearPeer(): Promise<void> {
    this.peer?.close();
    this.peer = await this.consume(true);
  }

  /** The consult ended (declined, cancelled, completed): the other agent's voice stops. */
  dropPeer(): void {
    this.peer?.close();
    this.peer = undefined;
  }

  /** The warm transfer completed: this consult leg is now the call's, with the caller's voice. */
  async takeOver(): Promise<void> {
    this.dropPeer();
    await this.hearCaller();
  }

  /** Invites a colleague to talk while the caller hears music. */
  async consult(agent: string, note: string): Promise<void> {
    await api(`${this.base}/consult`, { agent, note });
  }

  async completeConsult(): Promise<void> {
    await api(`${this.base}/consult/complete`, {});
    this.close();
  }

  async cancelConsult(): Promise<void> {
    await api(`${this.base}/consult/cancel`, {});
    this.dropPeer();
  }

  /** The invited agent leaves the consult (or declines it after joining). */
  async leaveConsult(): Promise<void> {
    this.close();
    await api(`${this.base}/consult/decline`, {});
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
      this.caller?.consumer.pause();
    } else {
      this.producer.resume();
      this.caller?.consumer.resume();
    }
  }

  /** Keys toward the caller's phone line (RFC 4733, e.g. an extension or a PIN at the far end). */
  async dtmf(digits: string): Promise<void> {
    await api(`${this.base}/dtmf`, { digits });
  }

  /** Packet counts from the browser's own RTCPeerConnections. */
  async figures(): Promise<CallFigures> {
    const received = async (h: Heard | undefined) => {
      let n = 0;
      if (h && !h.consumer.closed) (await h.consumer.getStats()).forEach((r: { type: string; packetsReceived?: number }) => {
        if (r.type === 'inbound-rtp') n += r.packetsReceived ?? 0;
      });
      return n;
    };
    let packetsSent = 0;
    (await this.producer.getStats()).forEach((r: { type: string; packetsSent?: number }) => {
      if (r.type === 'outbound-rtp') packetsSent += r.packetsSent ?? 0;
    });
    return { packetsReceived: await received(this.caller), packetsSent, peerPacketsReceived: await received(this.peer) };
  }

  /** Leaves the call on this side only (the server side closes with the call). */
  close(): void {
    this.caller?.close();
    this.dropPeer();
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
