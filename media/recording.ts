// A call recorder: both legs of a G.711 call as one stereo track (caller left, agent right), encoded
// to Ogg/Opus by Debian's `opusenc` (opus-tools) while the call goes on, so memory stays at a few
// seconds of audio whatever the call's length.
//
// Time alignment: each leg is placed on one timeline of 8 kHz samples counted from the recording's
// start. A stream (SSRC) is anchored where its first packet arrives (wall clock) and its later packets
// are placed by their RTP timestamps from there, so lost packets and silence suppression become
// silence of the right length and network jitter does not shift the audio. The agent's side is made of
// several streams in turn (each prompt, music on hold and the agent's voice are different mediasoup
// consumers, with their own SSRCs and timestamp bases): each is anchored on its own. A stream whose
// timestamps stray more than DRIFT_MS from the wall clock (a sender restarting its clock, a long hold)
// is anchored again. Samples are handed to the encoder once they are JITTER_MS old; a packet later than
// that is dropped (counted in `late`).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { decodeG711 } from './g711.ts';
import type { RtpPacket } from './rtp.ts';

export type Leg = 'caller' | 'agent';
export const RECORDING_RATE = 8000;
const PER_MS = RECORDING_RATE / 1000;
const DRIFT_MS = 500;
const JITTER_MS = 1000;

/** Whether `opusenc` runs here; the reason when it does not. */
export function opusencAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync('opusenc', ['--version'], { stdio: 'ignore', timeout: 5000 });
  if (r.error || r.status !== 0) return { ok: false, reason: `opusenc is not installed (Debian package opus-tools; scripts/setup-voice.sh installs it): ${r.error?.message ?? `exit ${r.status}`}` };
  return { ok: true };
}

export interface RecorderOptions {
  codec: 'PCMU' | 'PCMA';
  /** Where the Ogg/Opus file goes. */
  path: string;
  /** Opus bitrate for the two channels together (default 32 kbit/s: clear speech at narrowband). */
  bitrateKbps?: number;
  now?: () => number;
}

export interface RecordingResult {
  path: string;
  bytes: number;
  /** Length of the stereo track written (seconds). */
  durationSec: number;
  /** RTP packets placed per leg, and those that came too late to be. */
  packets: Record<Leg, number>;
  late: number;
}

interface LegBuffer {
  /** Samples from `flushed` on; zeros are silence. */
  buf: Int16Array;
  /** One past the last sample written (timeline position). */
  high: number;
  anchors: Map<number, { ts: number; pos: number; seq: number }>;
  packets: number;
}

export class CallRecorder {
  private readonly started: number;
  private readonly now: () => number;
  private flushed = 0;
  private late = 0;
  private readonly legs: Record<Leg, LegBuffer>;
  private readonly enc: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<{ code: number | null; stderr: string }>;
  private stopped = false;

  constructor(private readonly o: RecorderOptions) {
    this.now = o.now ?? Date.now;
    this.started = this.now();
    const leg = (): LegBuffer => ({ buf: new Int16Array(RECORDING_RATE * 4), high: 0, anchors: new Map(), packets: 0 });
    this.legs = { caller: leg(), agent: leg() };
    this.enc = spawn('opusenc', [
      '--quiet', '--raw', '--raw-rate', String(RECORDING_RATE), '--raw-chan', '2', '--raw-bits', '16',
      '--raw-endianness', endianness() === 'BE' ? '1' : '0',
      '--bitrate', String(o.bitrateKbps ?? 32), '--speech',
      '--comment', 'channels=left:caller,right:agent', '-', o.path,
    ]);
    let stderr = '';
    this.enc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.enc.stdin.on('error', () => undefined); // a dead encoder shows in its exit code
    this.exited = new Promise((ok) => {
      this.enc.on('error', (e) => ok({ code: null, stderr: e.message }));
      this.enc.on('close', (code) => ok({ code, stderr }));
    });
  }

  /** One RTP packet of a leg, in the call's G.711 codec; `atMs` is its arrival time. */
  push(leg: Leg, p: RtpPacket, atMs = this.now()): void {
    if (this.stopped || p.payload.length === 0) return;
    const l = this.legs[leg];
    const wall = Math.round((atMs - this.started) * PER_MS);
    let a = l.anchors.get(p.ssrc);
    let pos = a ? a.pos + ((p.timestamp - a.ts) | 0) : wall;
    // A packet older (by sequence number) than one already placed was reordered or delayed: it goes where
    // its timestamp says, or nowhere; only a new packet may re-anchor its stream.
    const reordered = a !== undefined && ((p.seq - a.seq) << 16) >> 16 < 0;
    if (!a || (!reordered && Math.abs(pos - wall) > DRIFT_MS * PER_MS)) {
      a = { ts: p.timestamp, pos: wall, seq: p.seq };
      l.anchors.set(p.ssrc, a);
      pos = wall;
    } else if (!reordered) a.seq = p.seq;
    if (pos < this.flushed) {
      this.late++;
      return;
    }
    const from = pos - this.flushed;
    const need = from + p.payload.length;
    if (need > l.buf.length) {
      const grown = new Int16Array(Math.max(need, l.buf.length * 2));
      grown.set(l.buf);
      l.buf = grown;
    }
    decodeG711(this.o.codec, p.payload, l.buf, from);
    l.high = Math.max(l.high, pos + p.payload.length);
    l.packets++;
    // Hand over what no late packet can change any more.
    if (wall - this.flushed > (JITTER_MS + 500) * PER_MS) this.flush(wall - JITTER_MS * PER_MS);
  }

  /** Interleaves [flushed, upto) of both legs (caller left, agent right) into the encoder, 10 s at a time. */
  private flush(upto: number): void {
    while (upto - this.flushed > 10 * RECORDING_RATE) this.flush(this.flushed + 10 * RECORDING_RATE);
    const n = upto - this.flushed;
    if (n <= 0) return;
    const stereo = new Int16Array(n * 2);
    const { caller, agent } = this.legs;
    for (let i = 0; i < n; i++) {
      stereo[2 * i] = i < caller.buf.length ? caller.buf[i] : 0;
      stereo[2 * i + 1] = i < agent.buf.length ? agent.buf[i] : 0;
    }
    for (const l of [caller, agent]) {
      const rest = new Int16Array(Math.max(RECORDING_RATE * 4, l.buf.length - n));
      if (l.buf.length > n) rest.set(l.buf.subarray(n));
      l.buf = rest;
    }
    this.flushed = upto;
    this.enc.stdin.write(new Uint8Array(stereo.buffer));
  }

  /** Ends the recording: writes what is left (up to now or the last sample heard) and waits for the encoder. */
  async stop(): Promise<RecordingResult> {
    if (!this.stopped) {
      this.stopped = true;
      const wall = Math.round((this.now() - this.started) * PER_MS);
      this.flush(Math.max(wall, this.legs.caller.high, this.legs.agent.high));
      this.enc.stdin.end();
    }
    const { code, stderr } = await this.exited;
    if (code !== 0) throw new Error(`opusenc failed (exit ${code}): ${stderr.trim() || 'no message'}`);
    return {
      path: this.o.path,
      bytes: (await stat(this.o.path)).size,
      durationSec: this.flushed / RECORDING_RATE,
      packets: { caller: this.legs.caller.packets, agent: this.legs.agent.packets },
      late: this.late,
    };
  }

  /** Drops the recording (the encoder is killed; the caller removes the file). */
  abort(): void {
    this.stopped = true;
    this.enc.kill('SIGKILL');
  }
}
