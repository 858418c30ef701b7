// RTP (RFC 3550) packets as bytes, and RFC 4733 telephone events (DTMF) in them. Web-standard only.

export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  seq: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
}

/** A fixed 12-byte header (no CSRCs, no extension) and the payload. */
export function buildRtp(p: Omit<RtpPacket, 'marker'> & { marker?: boolean }): Uint8Array {
  const out = new Uint8Array(12 + p.payload.length);
  const dv = new DataView(out.buffer);
  out[0] = 0x80;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  dv.setUint16(2, p.seq & 0xffff);
  dv.setUint32(4, p.timestamp >>> 0);
  dv.setUint32(8, p.ssrc >>> 0);
  out.set(p.payload, 12);
  return out;
}

/** Parses an RTP packet; undefined for anything that is not RTP version 2 (RTCP included: PT 72-76 with the marker). */
export function parseRtp(b: Uint8Array): RtpPacket | undefined {
  if (b.length < 12 || b[0] >> 6 !== 2) return undefined;
  const pt = b[1] & 0x7f;
  if (pt >= 72 && pt <= 76) return undefined; // RTCP muxed on the same port (RFC 5761)
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const csrc = b[0] & 0x0f;
  let offset = 12 + csrc * 4;
  if (b[0] & 0x10) {
    if (b.length < offset + 4) return undefined;
    offset += 4 + dv.getUint16(offset + 2) * 4;
  }
  let end = b.length;
  if (b[0] & 0x20) end -= b[b.length - 1];
  if (offset > end) return undefined;
  return { payloadType: pt, marker: (b[1] & 0x80) !== 0, seq: dv.getUint16(2), timestamp: dv.getUint32(4), ssrc: dv.getUint32(8), payload: b.subarray(offset, end) };
}

/** Rewrites payload type and SSRC in place (a relay normalizing a trunk's stream for the media node). */
export function rewriteRtp(b: Uint8Array, payloadType: number, ssrc: number): void {
  b[1] = (b[1] & 0x80) | (payloadType & 0x7f);
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(8, ssrc >>> 0);
}

const EVENTS = '0123456789*#ABCD';

export interface TelephoneEvent {
  digit: string;
  end: boolean;
  volume: number;
  duration: number;
}

/** RFC 4733 §2.3 payload: event, E bit, volume, duration. Events 0-15 are the DTMF keys. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < 4 || payload[0] > 15) return undefined;
  return { digit: EVENTS[payload[0]], end: (payload[1] & 0x80) !== 0, volume: payload[1] & 0x3f, duration: (payload[2] << 8) | payload[3] };
}

export function buildTelephoneEvent(e: TelephoneEvent): Uint8Array {
  const i = EVENTS.indexOf(e.digit);
  if (i < 0) throw new Error(`not a DTMF key: ${e.digit}`);
  return new Uint8Array([i, (e.end ? 0x80 : 0) | (e.volume & 0x3f), (e.duration >> 8) & 0xff, e.duration & 0xff]);
}

/**
 * One key press per event, however many packets carry it: RFC 4733 repeats an event (same RTP timestamp)
 * while the key is held and sends its end three times; a digit counts once, at its first packet.
 */
export class DtmfDetector {
  private last: number | undefined;

  /** The digit this packet starts, if it starts one. */
  push(p: RtpPacket): string | undefined {
    const e = parseTelephoneEvent(p.payload);
    if (!e || p.timestamp === this.last) return undefined;
    this.last = p.timestamp;
    return e.digit;
  }
}

/**
 * One key press as RFC 4733 §2.5 sends it: a packet every `stepMs` carrying the duration so far (the
 * first with the marker), then the end packet three times (it is what a receiver must not miss). All
 * share the RTP timestamp of the key's start; the sender numbers them in sequence.
 */
export function keyPressEvents(digit: string, o: { clockRate: number; ms?: number; stepMs?: number; volume?: number }): { payload: Uint8Array; marker: boolean }[] {
  const ms = o.ms ?? 100;
  const step = o.stepMs ?? 20;
  const volume = o.volume ?? 10;
  const ticks = (t: number) => Math.round((t * o.clockRate) / 1000);
  const out: { payload: Uint8Array; marker: boolean }[] = [];
  for (let t = step; t < ms; t += step) out.push({ payload: buildTelephoneEvent({ digit, end: false, volume, duration: ticks(t) }), marker: out.length === 0 });
  for (let i = 0; i < 3; i++) out.push({ payload: buildTelephoneEvent({ digit, end: true, volume, duration: ticks(ms) }), marker: out.length === 0 });
  return out;
}
