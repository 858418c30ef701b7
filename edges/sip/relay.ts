// The per-call RTP relay on the SIP edge, between the trunk and the media node's PlainTransport.
// Why a relay: a trunk's SSRC is unknown until its first packet (SDP rarely carries a=ssrc) and mediasoup
// matches producers by SSRC, so the relay gives the caller's stream a fixed SSRC and the payload type
// the media node expects; it also reads RFC 4733 telephone-events (DTMF) off the wire before they reach
// the router, and keeps media from the caller during hold (a=sendonly: we answer recvonly and stop
// sending). The trunk's address is the one its SDP gave, then whatever it really sends from (symmetric RTP).
// It also writes the agent's key presses toward the trunk as RFC 4733 events inside the stream it
// forwards (same SSRC, sequence numbers kept gapless, audio paused while a key sounds), because a
// browser's DTMF would not survive the media node: the router only forwards what the trunk negotiated.
import { createSocket, type Socket } from 'node:dgram';
import { DtmfDetector, buildRtp, keyPressEvents, parseRtp, rewriteRtp, type RtpPacket } from '../../media/rtp.ts';

export interface RelayStats {
  fromTrunk: number;
  toMedia: number;
  fromMedia: number;
  toTrunk: number;
  dtmf: number;
  /** Telephone-event packets written toward the trunk (the agent's keys). */
  dtmfSent: number;
}

export interface Addr {
  ip: string;
  port: number;
}

export class RtpRelay {
  readonly stats: RelayStats = { fromTrunk: 0, toMedia: 0, fromMedia: 0, toTrunk: 0, dtmf: 0, dtmfSent: 0 };
  /** Set while the trunk holds the call: nothing is sent to it. */
  held = false;
  private media: Addr | undefined;
  private readonly detector = new DtmfDetector();
  private latched = false;
  /** Added to the media stream's sequence numbers toward the trunk: the events written in, less the audio left out. */
  private seqShift = 0;
  /** The stream toward the trunk: its SSRC, last sequence number, and an RTP timestamp at a wall-clock time. */
  private lastOut: { ssrc: number; seq: number; timestamp: number; at: number } | undefined;
  private keying: Promise<void> = Promise.resolve();
  private sounding = false;

  private constructor(
    private readonly socket: Socket,
    private trunk: Addr,
    private readonly o: {
      /** Payload types agreed with the trunk. */
      payloadType: number;
      dtmfPayloadType?: number;
      /** The SSRC the media node's producer expects for the caller's audio. */
      callerSsrc: number;
      /** Clock rate of the agreed codec (and of its telephone-event). */
      clockRate?: number;
      onDigit: (digit: string) => void;
      /** Sees the call's audio both ways (the call recorder): the caller's, and what the caller hears. */
      tap?: (leg: 'caller' | 'agent', p: RtpPacket) => void;
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

  /** An outbound call's answer fixed the codec: the payload types it agreed (unknown when the relay opened for the offer). */
  negotiated(n: { payloadType: number; dtmfPayloadType?: number; clockRate: number }): void {
    this.o.payloadType = n.payloadType;
    this.o.dtmfPayloadType = n.dtmfPayloadType;
    this.o.clockRate = n.clockRate;
  }

  /** A re-INVITE moved the trunk's media. */
  retarget(trunk: Addr): void {
    this.trunk = trunk;
    this.latched = false;
  }

  /**
   * Sounds keys toward the trunk, one after another (100 ms each, 60 ms apart). Calls queue behind each
   * other. Refused when the trunk agreed no telephone-event or holds the call.
   */
  sendDigits(digits: string): Promise<void> {
    const pt = this.o.dtmfPayloadType;
    if (pt === undefined) return Promise.reject(new Error('the trunk agreed no telephone-event (RFC 4733) for this call'));
    if (this.held) return Promise.reject(new Error('the trunk holds the call'));
    const clockRate = this.o.clockRate ?? 8000;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const run = async () => {
      for (const digit of digits) {
        const events = keyPressEvents(digit, { clockRate });
        // The key starts now, on the stream's clock (or a fresh stream when nothing was sent yet).
        const now = Date.now();
        const last = this.lastOut ?? { ssrc: 0x30000000 + Math.floor(Math.random() * 0x0fffffff), seq: Math.floor(Math.random() * 0xffff), timestamp: Math.floor(Math.random() * 0xffffffff), at: now };
        const timestamp = (last.timestamp + Math.round(((now - last.at) * clockRate) / 1000)) >>> 0;
        const out = { ...last, timestamp, at: now };
        this.lastOut = out;
        this.sounding = true;
        try {
          for (const e of events) {
            out.seq = (out.seq + 1) & 0xffff;
            this.socket.send(buildRtp({ payloadType: pt, seq: out.seq, timestamp, ssrc: out.ssrc, marker: e.marker, payload: e.payload }), this.trunk.port, this.trunk.ip);
            this.stats.dtmfSent++;
            this.seqShift++;
            await sleep(20);
          }
        } finally {
          this.sounding = false;
        }
        await sleep(60);
      }
    };
    const done = this.keying.then(run);
    this.keying = done.catch(() => undefined);
    return done;
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
      const heard = this.held ? undefined : parseRtp(b);
      if (!heard) return;
      if (this.sounding) {
        this.seqShift--; // left out while a key sounds; the numbering stays gapless
        return;
      }
      this.o.tap?.('agent', heard);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const seq = (dv.getUint16(2) + this.seqShift) & 0xffff;
      dv.setUint16(2, seq);
      rewriteRtp(b, this.o.payloadType, readSsrc(b));
      this.socket.send(b, this.trunk.port, this.trunk.ip);
      this.stats.toTrunk++;
      this.lastOut = { seq, timestamp: dv.getUint32(4), ssrc: readSsrc(b), at: Date.now() };
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
    if (p.payloadType !== this.o.payloadType) return;
    this.o.tap?.('caller', p);
    if (!this.media) return;
    rewriteRtp(b, p.payloadType, this.o.callerSsrc);
    this.socket.send(b, this.media.port, this.media.ip);
    this.stats.toMedia++;
  }
}

const readSsrc = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8);
