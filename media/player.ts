// Plays prompt audio as RTP: raw G.711 files (8 kHz, 160 bytes per 20 ms packet) made by
// scripts/setup-voice.sh, paced by the wall clock (packets due are sent on each tick, so a late timer
// does not stretch the prompt). Node-only adapter (dgram), like the rest of the media node.
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRtp } from './rtp.ts';

const FRAME = 160; // 20 ms of 8 kHz G.711
const PTIME_MS = 20;

export interface Playback {
  durationMs: number;
  packets: number;
  /** Settles when the prompt ended or was stopped. */
  done: Promise<void>;
  stop(): void;
}

export class PromptError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export const promptFile = (dir: string, prompt: string, codec: 'PCMU' | 'PCMA') => join(dir, `${prompt}.${codec === 'PCMU' ? 'ul' : 'al'}`);

export class PromptPlayer {
  private readonly cache = new Map<string, Uint8Array>();

  constructor(private readonly dir: string) {}

  private async load(prompt: string, codec: 'PCMU' | 'PCMA'): Promise<Uint8Array> {
    const path = promptFile(this.dir, prompt, codec);
    const known = this.cache.get(path);
    if (known) return known;
    let audio: Uint8Array;
    try {
      audio = new Uint8Array(await readFile(path));
    } catch {
      throw new PromptError(404, `prompt ${prompt} (${codec}) not found at ${path}; run scripts/setup-voice.sh`);
    }
    if (audio.length < FRAME) throw new PromptError(422, `prompt ${prompt} is shorter than one packet`);
    this.cache.set(path, audio);
    return audio;
  }

  /** Pieces one after another, each padded with silence to whole packets (so each piece's packets are its own). */
  private async joined(prompts: string[], codec: 'PCMU' | 'PCMA'): Promise<Uint8Array> {
    const parts = await Promise.all(prompts.map((p) => this.load(p, codec)));
    const out = new Uint8Array(parts.reduce((n, p) => n + Math.ceil(p.length / FRAME) * FRAME, 0)).fill(codec === 'PCMU' ? 0xff : 0xd5);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += Math.ceil(p.length / FRAME) * FRAME;
    }
    return out;
  }

  /** One prompt, or several played back to back as one (`next`: a sentence composed of pieces). */
  async play(o: { prompt: string; next?: string[]; codec: 'PCMU' | 'PCMA'; ssrc: number; payloadType: number; to: { ip: string; port: number }; loop?: boolean }): Promise<Playback> {
    const audio = o.next?.length ? await this.joined([o.prompt, ...o.next], o.codec) : await this.load(o.prompt, o.codec);
    const frames = Math.floor(audio.length / FRAME);
    const socket = createSocket(o.to.ip.includes(':') ? 'udp6' : 'udp4');
    let seq = Math.floor(Math.random() * 0xffff);
    let timestamp = Math.floor(Math.random() * 0xffffffff);
    let sent = 0;
    let stopped = false;
    const started = performance.now();
    let finish: () => void = () => undefined;
    const done = new Promise<void>((ok) => (finish = ok));
    const end = () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      socket.close();
      finish();
    };
    const tick = () => {
      const due = Math.floor((performance.now() - started) / PTIME_MS) + 1;
      while (!stopped && sent < due) {
        if (!o.loop && sent >= frames) return end();
        const i = sent % frames;
        const packet = buildRtp({ payloadType: o.payloadType, seq, timestamp, ssrc: o.ssrc, marker: sent === 0, payload: audio.subarray(i * FRAME, (i + 1) * FRAME) });
        socket.send(packet, o.to.port, o.to.ip);
        seq = (seq + 1) & 0xffff;
        timestamp = (timestamp + FRAME) >>> 0;
        sent++;
      }
    };
    const timer = setInterval(tick, PTIME_MS / 2);
    tick();
    return { durationMs: frames * PTIME_MS, packets: frames, done, stop: end };
  }
}
