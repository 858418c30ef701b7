// The per-call RTP relay on the SIP edge, between the trunk and the media node's PlainTransport.
// Why a relay: a trunk's SSRC is unknown until its first packet (SDP rarely carries a=ssrc) and mediasoup
// matches producers by SSRC, so the relay gives the caller's stream a fixed SSRC and the payload type
// the media node expects; it also reads RFC 4733 telephone-events (DTMF) off the wire before they reach
// the router, and keeps media from the caller during hold (a=sendonly: we answer recvonly and stop
// sending). The trunk's address is the one its SDP gave, then whatever it really sends from (symmetric RTP).
import { createSocket, type Socket } from 'node:dgram';
import { DtmfDetector, parseRtp, rewriteRtp } from '../../media/rtp.ts';

export interface RelayStats {
  fromTrunk: number;
  toMedia: number;
  fromMedia: number;
  toTrunk: number;
  dtmf: number;
}

export interface Addr {
  ip: string;
  port: number;
}

export class RtpRelay {
  readonly stats: RelayStats = { fromTrunk: 0, toMedia: 0, fromMedia: 0, toTrunk: 0, dtmf: 0 };
  /** Set while the trunk holds the call: nothing is sent to it. */
  held = false;
  private media: Addr | undefined;
  private readonly detector = new DtmfDetector();
  private latched = false;

  private constructor(
    private readonly socket: Socket,
    private trunk: Addr,
    private readonly o: {
      /** Payload types agreed with the trunk. */
      payloadType: number;
      dtmfPayloadType?: number;
      /** The SSRC the media node's producer expects for the caller's audio. */
      callerSsrc: number;
      onDigit: (digit: string) => void;
    },
  ) {
    socket.on('message', (b, from) => this.onPacket(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { ip: from.address, port: from.port }));
  }

  static async open(listenIp: string, trunk: Addr, o: RtpRelay['o']): Promise<RtpRelay> {
    const socket = createSocket(listenIp.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind(0, listenIp, () => {
        socket.off('error', fail);
        ok();
      });
    });
    socket.on('error', () => undefined); // ICMP unreachable and the like: RTP is best effort
    return new RtpRelay(socket, trunk, o);
  }

  get local(): Addr {
    const a = this.socket.address();
    return { ip: a.address, port: a.port };
  }

  /** The media node's transport for this call (where caller audio goes, where prompts and agents come from). */
  connectMedia(media: Addr): void {
    this.media = media;
  }

  /** A re-INVITE moved the trunk's media. */
  retarget(trunk: Addr): void {
    this.trunk = trunk;
    this.latched = false;
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }

  private onPacket(b: Uint8Array, from: Addr): void {
    if (this.media && from.ip === this.media.ip && from.port === this.media.port) {
      this.stats.fromMedia++;
      if (this.held || !parseRtp(b)) return;
      rewriteRtp(b, this.o.payloadType, readSsrc(b));
      this.socket.send(b, this.trunk.port, this.trunk.ip);
      this.stats.toTrunk++;
      return;
    }
    const p = parseRtp(b);
    if (!p) return;
    // Latch onto a real sender only: sipp's pcap player (raw socket) sends from port 0.
    if (!this.latched && from.port > 0) {
      this.trunk = from;
      this.latched = true;
    } else if (this.latched && (from.ip !== this.trunk.ip || from.port !== this.trunk.port)) {
      return; // not the caller's stream
    }
    this.stats.fromTrunk++;
    if (this.o.dtmfPayloadType !== undefined && p.payloadType === this.o.dtmfPayloadType) {
      const digit = this.detector.push(p);
      if (digit) {
        this.stats.dtmf++;
        this.o.onDigit(digit);
      }
      return;
    }
    if (p.payloadType !== this.o.payloadType || !this.media) return;
    rewriteRtp(b, p.payloadType, this.o.callerSsrc);
    this.socket.send(b, this.media.port, this.media.ip);
    this.stats.toMedia++;
  }
}

const readSsrc = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8);
