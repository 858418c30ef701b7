// The recorder's parts on real tools: G.711 tables against sox's decoder; two legs of RTP (with a gap,
// jitter, and the agent side changing streams) placed on one timeline and encoded by opusenc, checked
// by decoding the Ogg/Opus again with opusdec; pocketsphinx's output parsed; espeak-ng speech through
// the recorder transcribed by pocketsphinx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../tests/support/nats.ts';
import { ALAW_TABLE, ULAW_TABLE, decodeG711 } from './g711.ts';
import { readOggOpus } from './ogg.ts';
import { CallRecorder, type Leg } from './recording.ts';
import { parseTimedOutput, pocketsphinx } from './speech.ts';
import { EXPECTED, spokenUlaw, wordsHeard } from './speech.testing.ts';

const dir = tempDir('recording');

/** sox's reading of raw G.711 bytes as 16-bit samples. */
function soxDecode(type: 'ul' | 'al', bytes: Uint8Array): Int16Array {
  const inPath = join(dir, `all.${type}`);
  writeFileSync(inPath, bytes);
  const out = execFileSync('sox', ['-t', type, '-r', '8000', '-c', '1', inPath, '-t', 's16', '-e', 'signed', '-L', '-']);
  return new Int16Array(out.buffer, out.byteOffset, out.byteLength / 2);
}

test('G.711 tables decode as the standard (known values) and as sox does, all 256 codes', () => {
  assert.equal(ULAW_TABLE[0xff], 0);
  assert.equal(ULAW_TABLE[0x7f], 0);
  assert.equal(ULAW_TABLE[0x00], -32124);
  assert.equal(ULAW_TABLE[0x80], 32124);
  assert.equal(ULAW_TABLE[0xfe], 8); // the first step above zero
  assert.equal(ULAW_TABLE[0xef], 132); // segment 1 starts
  assert.equal(ALAW_TABLE[0xd5], 8);
  assert.equal(ALAW_TABLE[0x55], -8);
  assert.equal(ALAW_TABLE[0xaa], 32256);
  assert.equal(ALAW_TABLE[0x2a], -32256);
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual([...ULAW_TABLE], [...soxDecode('ul', all)]);
  assert.deepEqual([...ALAW_TABLE], [...soxDecode('al', all)]);
  const out = new Int16Array(4);
  decodeG711('PCMU', new Uint8Array([0x00, 0xff]), out, 1);
  assert.deepEqual([...out], [0, -32124, 0, 0]);
});

/** sox makes the test's G.711 audio: a tone, 20 ms (160-byte) frames. */
function toneFrames(seconds: number, freq: number): Uint8Array[] {
  const path = join(dir, `tone${freq}.ul`);
  execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-t', 'ul', path, 'synth', String(seconds), 'sine', String(freq), 'vol', '0.5']);
  const b = new Uint8Array(readFileSync(path));
  return Array.from({ length: Math.floor(b.length / 160) }, (_, i) => b.subarray(i * 160, (i + 1) * 160));
}

/** Decodes an Ogg/Opus file to 8 kHz stereo samples. */
function decodeOpus(path: string): { left: Int16Array; right: Int16Array } {
  const raw = execFileSync('opusdec', ['--quiet', '--rate', '8000', '--force-stereo', path, '-'], { maxBuffer: 64 << 20 });
  const s = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
  const left = new Int16Array(s.length / 2);
  const right = new Int16Array(s.length / 2);
  for (let i = 0; i < left.length; i++) [left[i], right[i]] = [s[2 * i], s[2 * i + 1]];
  return { left, right };
}

const rms = (x: Int16Array, fromSec: number, toSec: number) => {
  const a = x.subarray(Math.round(fromSec * 8000), Math.round(toSec * 8000));
  return Math.sqrt(a.reduce((n, v) => n + v * v, 0) / Math.max(1, a.length));
};

test('two legs stay time-aligned as stereo (caller left, agent right): gaps are silence by RTP timestamp, jitter does not move audio, streams change', async () => {
  const frames = toneFrames(3, 440);
  let now = 1_700_000_000_000;
  const t0 = now;
  const path = join(dir, 'aligned.opus');
  const rec = new CallRecorder({ codec: 'PCMU', path, now: () => now });
  const sends: { leg: Leg; at: number; ssrc: number; ts: number; seq: number; payload: Uint8Array }[] = [];
  // Caller: second 0 and second 2 (nothing in between: a pause with silence suppression).
  for (let i = 0; i < 150; i++) if (i < 50 || i >= 100) sends.push({ leg: 'caller', at: i * 20, ssrc: 1, ts: 1000 + i * 160, seq: i, payload: frames[i] });
  // Agent: second 1, as two streams in turn (a prompt, then the agent's voice), each with its own clock.
  for (let i = 50; i < 100; i++) sends.push({ leg: 'agent', at: i * 20, ssrc: i < 75 ? 2 : 3, ts: (i < 75 ? 5_000_000 : 90_000) + i * 160, seq: (i * 7) & 0xffff, payload: frames[i] });
  // Jitter: up to 60 ms late, and so out of order.
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (const s of sends) s.at += Math.floor(rand() * 60);
  sends.sort((a, b) => a.at - b.at);
  for (const s of sends) {
    now = t0 + s.at;
    rec.push(s.leg, { payloadType: 0, marker: false, seq: s.seq, timestamp: s.ts, ssrc: s.ssrc, payload: s.payload });
  }
  now = t0 + 3000;
  const r = await rec.stop();
  assert.deepEqual(r.packets, { caller: 100, agent: 50 });
  assert.equal(r.late, 0);
  assert.ok(Math.abs(r.durationSec - 3) < 0.1, `duration ${r.durationSec}`);

  const bytes = new Uint8Array(readFileSync(path));
  const info = readOggOpus(bytes);
  assert.equal(info.channels, 2);
  assert.equal(info.inputSampleRate, 8000);
  assert.ok(Math.abs(info.durationSec - 3) < 0.1, `Ogg duration ${info.durationSec}`);

  const { left, right } = decodeOpus(path);
  const loud = rms(left, 0.1, 0.9);
  assert.ok(loud > 3000, `caller tone is there (rms ${loud.toFixed(0)})`);
  const windows: [number, number, boolean, boolean][] = [
    [0.1, 0.9, true, false],
    [1.1, 1.9, false, true],
    [2.1, 2.9, true, false],
  ];
  for (const [a, b, l, rr] of windows) {
    const [lv, rv] = [rms(left, a, b), rms(right, a, b)];
    assert.equal(lv > loud / 3, l, `left ${a}-${b} s: rms ${lv.toFixed(0)}`);
    assert.equal(rv > loud / 3, rr, `right ${a}-${b} s: rms ${rv.toFixed(0)}`);
    if (!l) assert.ok(lv < loud / 20, `left ${a}-${b} s is silent: rms ${lv.toFixed(0)}`);
    if (!rr) assert.ok(rv < loud / 20, `right ${a}-${b} s is silent: rms ${rv.toFixed(0)}`);
  }
});

test('a packet older than the jitter window is dropped and counted; a stream whose clock jumps is anchored again', async () => {
  const frames = toneFrames(1, 300);
  let now = 1_000;
  const rec = new CallRecorder({ codec: 'PCMU', path: join(dir, 'late.opus'), now: () => now });
  const p = (ts: number, i: number) => ({ payloadType: 0, marker: false, seq: i, timestamp: ts, ssrc: 9, payload: frames[i % frames.length] });
  for (let i = 0; i < 150; i++) {
    now = 1_000 + i * 20;
    // At 2 s the sender's clock jumps by an hour's worth of samples: placed by the wall clock, not an hour on.
    rec.push('caller', p(i < 100 ? i * 160 : 3600 * 8000 + i * 160, i));
  }
  rec.push('caller', p(0, 0)); // 3 s late
  now = 1_000 + 3000;
  const r = await rec.stop();
  assert.equal(r.late, 1);
  assert.ok(Math.abs(r.durationSec - 3) < 0.1, `duration ${r.durationSec}`);
});

test('pocketsphinx timed output becomes segments without fillers or alternate marks', () => {
  const out = ['hello world', '<s> 0.000 0.020 1.000100', 'hello 0.030 0.500 0.98', '<sil> 0.510 0.700 1.0', 'world(2) 0.710 1.100 0.75', '</s> 1.110 1.300 1.0', 'back', '<s> 2.000 2.010 1.0', '[NOISE] 2.02 2.5 1.0', 'back 2.51 2.9 0.9', '</s> 2.91 3.0 1.0'].join('\n');
  assert.deepEqual(parseTimedOutput(out), [
    { start: 0.03, end: 1.1, text: 'hello world' },
    { start: 2.51, end: 2.9, text: 'back' },
  ]);
});

test('espeak-ng speech recorded as a G.711 caller leg is transcribed by pocketsphinx (English)', { timeout: 120_000 }, async (t) => {
  const stt = await pocketsphinx();
  assert.ok(!('unavailable' in stt), 'unavailable' in stt ? stt.unavailable : '');
  const b = spokenUlaw(join(dir, 'said.wav'));
  let now = 0;
  const path = join(dir, 'said.opus');
  const rec = new CallRecorder({ codec: 'PCMU', path, now: () => now });
  for (let i = 0; (i + 1) * 160 <= b.length; i++) {
    now = 500 + i * 20;
    rec.push('caller', { payloadType: 0, marker: false, seq: i, timestamp: i * 160, ssrc: 5, payload: b.subarray(i * 160, (i + 1) * 160) });
  }
  now += 500;
  await rec.stop();
  const started = performance.now();
  const got = await stt.transcribe({ bytes: new Uint8Array(readFileSync(path)), contentType: 'audio/ogg' }, 'en');
  t.diagnostic(`pocketsphinx heard "${got.text}" in ${Math.round(performance.now() - started)} ms`);
  const heard = wordsHeard(got.text);
  assert.ok(heard.length >= 3, `at least 3 of ${EXPECTED.join(', ')} heard; got "${got.text}"`);
  assert.ok(got.segments.length > 0 && got.segments.every((s) => s.speaker === 'caller' && s.end >= s.start), 'segments are the caller\'s');
  await assert.rejects(stt.transcribe({ bytes: new Uint8Array(readFileSync(path)), contentType: 'audio/ogg' }, 'zh'), /English model only/);
});
