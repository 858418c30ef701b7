// Speech to text for call recordings, behind one interface: the offline engine here is Debian's
// pocketsphinx (`pocketsphinx_continuous` with the `pocketsphinx-en-us` model: nothing is downloaded at
// run time); a cloud ASR implements the same `transcribe`, taking the recording as it is stored
// (Ogg/Opus, caller left, agent right), which cloud speech APIs accept as it is.
//
// pocketsphinx's US English model is wideband (16 kHz) and calls are narrowband G.711, so recognition
// is rough: expect some words right per sentence, not a faithful transcript. Each channel is decoded on
// its own (so segments say who spoke) after a warm-up pass: pocketsphinx_continuous estimates the
// channel's cepstral mean and noise floor as it goes, and its first utterances, decoded before that
// settled, come out much worse. So the input is a lead (the first WARMUP_SEC of the same channel)
// followed by the whole channel, and what is heard in the lead is dropped.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TranscriptSegment {
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
  text: string;
  /** Who spoke, when the engine can tell (one channel per party). */
  speaker?: 'caller' | 'agent';
}

export interface Transcript {
  text: string;
  segments: TranscriptSegment[];
}

export interface SpeechAudio {
  /** The recording as stored: Ogg/Opus, stereo (caller left, agent right) or mono. */
  bytes: Uint8Array;
  contentType: 'audio/ogg';
}

export interface SpeechToText {
  readonly name: string;
  /** Languages it transcribes (BCP 47 primary tags, e.g. 'en'). */
  readonly languages: readonly string[];
  transcribe(audio: SpeechAudio, language: string): Promise<Transcript>;
}

export class SpeechError extends Error {
  constructor(
    readonly code: 'unsupported_language' | 'unavailable' | 'failed',
    message: string,
  ) {
    super(message);
  }
}

export const POCKETSPHINX_MODEL = '/usr/share/pocketsphinx/model/en-us';
const WARMUP_SEC = 15;
/** About -60 dBFS. */
const SILENT_RMS = 0.001;
/** Narrower search than the defaults: half the CPU time here, no worse on this audio. */
const SEARCH = ['-maxhmmpf', '3000', '-maxwpf', '10', '-pl_window', '10'];

/** Debian's pocketsphinx, or the reason it cannot run here. */
export async function pocketsphinx(): Promise<SpeechToText | { unavailable: string }> {
  const missing = ['pocketsphinx_continuous', 'opusdec', 'sox', 'soxi'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length) return { unavailable: `${missing.join(', ')} not installed (Debian packages pocketsphinx, opus-tools, sox; scripts/setup-voice.sh installs them)` };
  if (!existsSync(join(POCKETSPHINX_MODEL, 'en-us'))) return { unavailable: `no English model at ${POCKETSPHINX_MODEL} (Debian package pocketsphinx-en-us)` };
  return new PocketSphinx();
}

class PocketSphinx implements SpeechToText {
  readonly name = 'pocketsphinx';
  readonly languages = ['en'] as const;

  async transcribe(audio: SpeechAudio, language: string): Promise<Transcript> {
    if (!this.languages.includes(language.toLowerCase().split('-')[0] as 'en')) throw new SpeechError('unsupported_language', `pocketsphinx has an English model only, not ${language}`);
    const dir = await mkdtemp(join(tmpdir(), 'cc-stt-'));
    try {
      const opus = join(dir, 'in.opus');
      await writeFile(opus, audio.bytes);
      const wav = join(dir, 'in.wav');
      await run('opusdec', ['--quiet', '--rate', '16000', opus, wav]);
      const channels = Number((await run('soxi', ['-c', wav])).trim());
      const speakers: (TranscriptSegment['speaker'] | undefined)[] = channels >= 2 ? ['caller', 'agent'] : [undefined];
      const segments: TranscriptSegment[] = [];
      for (const [i, speaker] of speakers.entries()) {
        const mono = join(dir, `ch${i + 1}.wav`);
        const lead = join(dir, `lead${i + 1}.wav`);
        const input = join(dir, `input${i + 1}.wav`);
        await run('sox', [wav, '-c', '1', '-b', '16', mono, 'remix', String(i + 1)]);
        // A silent channel (nobody on that side) costs a decoding pass for nothing.
        const rms = Number(/RMS\s+amplitude:\s+([\d.]+)/.exec(await run('sox', [mono, '-n', 'stat'], 'stderr'))?.[1] ?? 1);
        if (rms < SILENT_RMS) continue;
        await run('sox', [mono, lead, 'trim', '0', String(WARMUP_SEC)]);
        const leadSec = Number((await run('soxi', ['-D', lead])).trim());
        await run('sox', [lead, mono, input]);
        const out = await run('pocketsphinx_continuous', ['-infile', input, '-time', 'yes', '-remove_noise', 'no', ...SEARCH, '-logfn', '/dev/null']);
        for (const s of parseTimedOutput(out)) if (s.start >= leadSec) segments.push({ ...s, start: round(s.start - leadSec), end: round(s.end - leadSec), ...(speaker ? { speaker } : {}) });
      }
      segments.sort((a, b) => a.start - b.start);
      return { text: segments.map((s) => s.text).join(' '), segments };
    } catch (e) {
      if (e instanceof SpeechError) throw e;
      throw new SpeechError('failed', `pocketsphinx: ${(e as Error).message}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

/**
 * pocketsphinx_continuous -time yes prints, per utterance, the hypothesis and then one line per word:
 * `word start end confidence`, between `<s>` and `</s>`. Fillers (<sil>, [NOISE], ++…++) are dropped and
 * alternate pronunciations (`word(2)`) named by their word.
 */
export function parseTimedOutput(out: string): { start: number; end: number; text: string }[] {
  const segments: { start: number; end: number; text: string }[] = [];
  let words: { w: string; start: number; end: number }[] = [];
  for (const line of out.split('\n')) {
    const m = /^(\S+) (\d+\.\d+) (\d+\.\d+) [-\d.e]+$/.exec(line.trim());
    if (!m) continue;
    const [, token, start, end] = m;
    if (token === '</s>') {
      if (words.length) segments.push({ start: words[0].start, end: words[words.length - 1].end, text: words.map((x) => x.w).join(' ') });
      words = [];
    } else if (!/^(<.*>|\[.*\]|\+\+.*\+\+)$/.test(token)) {
      words.push({ w: token.replace(/\(\d+\)$/, ''), start: Number(start), end: Number(end) });
    }
  }
  return segments;
}

/** Runs a tool; answers its standard output (or its standard error, where sox prints stat). */
function run(cmd: string, args: string[], answer: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    p.on('error', fail);
    p.on('close', (code) => (code === 0 ? ok(answer === 'stdout' ? out : err) : fail(new Error(`${cmd} exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}
