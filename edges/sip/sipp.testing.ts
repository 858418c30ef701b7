// What the SIP tests share: sipp as the trunk, key presses as RFC 4733 packets in a pcap (what sipp's
// play_pcap_audio replays), an "ear" socket that records the RTP the caller receives, and a check that a
// prompt file's audio is in what was heard.
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { buildRtp, buildTelephoneEvent, parseRtp } from '../../media/rtp.ts';
import { writeRtpPcap } from '../../tests/support/pcap.ts';

export const PROMPTS = process.env.PROMPTS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cc', 'prompts');
const HERE = import.meta.dirname;

/** Runs sipp as the trunk against the edge with a scenario of this folder; resolves with its exit code and output. */
export function sipp(o: { port: number; scenario: string; args: string[]; timeoutMs: number; cwd: string }): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('sipp', ['127.0.0.1:' + o.port, '-sf', join(HERE, o.scenario), '-m', '1', '-i', '127.0.0.1', '-timeout', `${Math.ceil(o.timeoutMs / 1000)}s`, '-timeout_error', ...o.args], { cwd: o.cwd });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

/** A pcap of key presses (RFC 4733, payload type 101), each `atMs` from the start; one RTP timestamp per press. */
export function keysPcap(path: string, presses: { digit: string; atMs: number }[]): void {
  const packets: { at: number; rtp: Uint8Array }[] = [];
  let seq = 100;
  for (const { digit, atMs } of presses) {
    const ts = atMs * 8;
    for (let i = 0; i < 8; i++) {
      const payload = buildTelephoneEvent({ digit, end: i >= 5, volume: 10, duration: Math.min(i + 1, 6) * 160 });
      packets.push({ at: (1000 + atMs + i * 20) * 1000, rtp: buildRtp({ payloadType: 101, seq: seq++, timestamp: ts, ssrc: 0x1234abcd, marker: i === 0, payload }) });
    }
  }
  writeRtpPcap(path, packets);
}

/** A socket standing for the caller's RTP address in the offer: keeps every payload heard, in order. */
export async function ear(): Promise<{ socket: Socket; port: number; heard: { pt: number; payload: Uint8Array }[]; close(): void }> {
  const socket = createSocket('udp4');
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  const heard: { pt: number; payload: Uint8Array }[] = [];
  socket.on('message', (b) => {
    const p = parseRtp(new Uint8Array(b));
    if (p) heard.push({ pt: p.payloadType, payload: p.payload.slice() });
  });
  return { socket, port: socket.address().port, heard, close: () => socket.close() };
}

const FRAME = 160;
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * Where a prompt's audio (the G.711 μ-law file, 20 ms packets) is in what was heard: the share of its
 * whole packets heard byte for byte, and the index in `heard` of its last packet (-1 if none).
 */
export function promptHeard(heard: { payload: Uint8Array }[], prompt: string, from = 0): { share: number; lastIndex: number; frames: number } {
  const audio = new Uint8Array(readFileSync(join(PROMPTS, `${prompt}.ul`)));
  const frames = new Set<string>();
  for (let i = 0; i + FRAME <= audio.length; i += FRAME) frames.add(hex(audio.subarray(i, i + FRAME)));
  const found = new Set<string>();
  let lastIndex = -1;
  for (let i = from; i < heard.length; i++) {
    const h = hex(heard[i].payload);
    if (frames.has(h)) {
      found.add(h);
      lastIndex = i;
    }
  }
  return { share: frames.size ? found.size / frames.size : 0, lastIndex, frames: frames.size };
}
