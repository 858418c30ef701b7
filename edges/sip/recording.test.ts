// A recorded call end to end, on a whole engine (ROLE=all: SIP edge, mediasoup media node, store,
// workspace) with RECORD_CALLS=announce: sipp calls, hears the recording notice before the menu, presses
// 1 and speaks an English sentence (espeak-ng, as PCMU RTP from a pcap), an agent answers, the caller
// hangs up. Then the recording is in the object store as Ogg/Opus as long as the call, linked to the
// conversation, its transcript (pocketsphinx) holds words that were said, and the workspace streams it
// with Range to the agent who took the call and refuses another agent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../engine/nats-server.ts';
import { buildRtp, buildTelephoneEvent } from '../../media/rtp.ts';
import { readOggOpus } from '../../media/ogg.ts';
import { spokenUlaw, wordsHeard, EXPECTED } from '../../media/speech.testing.ts';
import { writeRtpPcap } from '../../tests/support/pcap.ts';
import { agentOnDuty, answer, startTestEngine, type TestEngine } from '../../tests/support/engine.ts';
import { waitFor } from '../../tests/support/nats.ts';
import { loginCookie } from '../../web/browser.testing.ts';
import { voiceConfig } from '../../engine/voice.ts';
import { callRecordings, noticePrompt } from './recording.ts';
import { ear, PROMPTS, promptHeard, sipp } from './sipp.testing.ts';

const ADMIN = 'admin-password-recording-1';
let t: TestEngine;
let base: string;

before(async () => {
  t = await startTestEngine('recording', { RECORD_CALLS: 'announce', ADMIN_PASSWORD: ADMIN, PROMPTS_DIR: PROMPTS, SIP_HOST: '127.0.0.1', MEDIA_LISTEN_IP: '127.0.0.1' });
  base = `http://127.0.0.1:${t.httpPort}`;
  const admin = await loginCookie(base, 'admin', ADMIN);
  for (const id of ['ann', 'bob']) {
    const r = await fetch(`${base}/api/users`, { method: 'POST', headers: { cookie: admin, 'content-type': 'application/json' }, body: JSON.stringify({ id, name: id, role: 'agent', password: `${id}-password-1`, queues: ['support'] }) });
    assert.equal(r.status, 201, await r.text());
  }
  await agentOnDuty(t.actors, 'ann');
});

after(async () => {
  await t?.stop();
});

/** The key press at 0 s, then the sentence from 1 s on, as sipp's play_pcap_audio replays them. */
function speakPcap(path: string, ulaw: Uint8Array): number {
  const packets: { at: number; rtp: Uint8Array }[] = [];
  for (let i = 0; i < 8; i++) {
    const payload = buildTelephoneEvent({ digit: '1', end: i >= 5, volume: 10, duration: Math.min(i + 1, 6) * 160 });
    packets.push({ at: i * 20_000, rtp: buildRtp({ payloadType: 101, seq: 100 + i, timestamp: 8000, ssrc: 0x1234abcd, marker: i === 0, payload }) });
  }
  const frames = Math.floor(ulaw.length / 160);
  for (let i = 0; i < frames; i++) {
    packets.push({ at: 1_000_000 + i * 20_000, rtp: buildRtp({ payloadType: 0, seq: 1000 + i, timestamp: 160_000 + i * 160, ssrc: 0x5eec4000, marker: i === 0, payload: ulaw.subarray(i * 160, (i + 1) * 160) }) });
  }
  writeRtpPcap(path, packets);
  return 1 + frames * 0.02;
}

test('a recorded call: notice before the menu, Ogg/Opus in the object store linked to the conversation, a transcript, playback with Range and access control', { timeout: 180_000 }, async (tc) => {
  const dir = t.env.DATA_DIR;
  const spokenSec = speakPcap(join(dir, 'speak.pcap'), spokenUlaw(join(dir, 'said.wav')));
  const rtp = await ear();
  const started = Date.now();
  const run = sipp({ port: Number(t.env.SIP_PORT), scenario: 'uac-speak.xml', args: ['-key', 'rtp_port', String(rtp.port), '-key', 'caller', '+8613800138001', '-mi', '127.0.0.1', '-mp', String(await freePort())], timeoutMs: 60_000, cwd: dir });

  // The agent answers once the IVR queued the call.
  const offered = await waitFor('an offer to ann', async () => {
    const a = await t.actors.ask<{ offers?: Record<string, { task: { id: string } }> }>('agent/ann', { type: 'get' });
    return Object.values(a.offers ?? {})[0]?.task.id;
  }, 30_000, 200);
  await answer(t.actors, 'ann', offered);
  const r = await run;
  const callSec = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  rtp.close();

  // Consent: the notice was heard whole, and before the menu.
  const notice = promptHeard(rtp.heard, 'recording.notice.en');
  const welcome = promptHeard(rtp.heard, 'welcome.en');
  assert.ok(notice.share > 0.9, `the recording notice was heard (${Math.round(notice.share * 100)}% of its packets)`);
  assert.ok(welcome.share > 0.2 && welcome.lastIndex > notice.lastIndex, 'then the menu');

  // The recording and the transcript join the conversation's history.
  const conversationId = `conversation:${offered}`;
  const view = async () => {
    const { customerId } = await t.store.resolve({ channel: 'phone', handle: '+8613800138001', phone: '+8613800138001' });
    return t.store.view({ customerId, viewer: 'supervisor' });
  };
  const transcript = await waitFor('the transcript', async () => (await view()).messages.find((m) => m.author === 'transcript'), 120_000, 500);
  const recording = (await view()).messages.find((m) => m.author === 'recording');
  assert.ok(recording, 'a recording message');
  assert.equal(recording.conversationId, conversationId);
  assert.equal(recording.direction, 'system');
  const [att] = recording.attachments;
  assert.match(att.objectKey, new RegExp(`^recordings/${offered}/[^/]+\\.opus$`));
  assert.equal(att.contentType, 'audio/ogg');
  assert.deepEqual(transcript.attachments, recording.attachments, 'the transcript is linked to its recording');
  assert.equal(transcript.conversationId, conversationId);

  // The object: Ogg/Opus, stereo, as long as the call.
  const blob = await t.engine.blobs!.store.get(att.objectKey);
  const bytes = new Uint8Array(await new Response(blob.body).arrayBuffer());
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'OggS');
  assert.equal(new TextDecoder().decode(bytes.subarray(28, 36)), 'OpusHead');
  const info = readOggOpus(bytes);
  tc.diagnostic(`call ${callSec.toFixed(1)} s (sipp), recording ${info.durationSec.toFixed(2)} s, ${bytes.length} bytes; spoken ${spokenSec.toFixed(1)} s`);
  tc.diagnostic(`transcript: ${transcript.text?.replace(/\n/g, ' | ')}`);
  assert.equal(info.channels, 2);
  assert.ok(Math.abs(info.durationSec - callSec) < 1.5, `recording ${info.durationSec} s vs call ${callSec} s`);

  // Caller left, what the caller heard right: the notice plays while the caller is silent, then the caller speaks.
  const pcm = execFileSync('opusdec', ['--quiet', '--rate', '8000', '-', '-'], { input: bytes, maxBuffer: 64 << 20 });
  const s = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength / 2);
  const rms = (ch: 0 | 1, from: number, to: number) => {
    let n = 0;
    let sum = 0;
    for (let i = Math.floor(from * 8000); i < Math.min(s.length / 2, to * 8000); i++, n++) sum += s[2 * i + ch] ** 2;
    return Math.sqrt(sum / Math.max(1, n));
  };
  assert.ok(rms(1, 0.5, 3) > 10 * Math.max(1, rms(0, 0.5, 3)), `the notice is on the right only (right ${rms(1, 0.5, 3).toFixed(0)}, left ${rms(0, 0.5, 3).toFixed(0)})`);
  assert.ok(rms(0, 8, 14) > 300, `the caller speaks on the left (${rms(0, 8, 14).toFixed(0)})`);

  // The transcript says some of what was said.
  const text = transcript.text ?? '';
  const heard = wordsHeard(text);
  assert.ok(heard.length >= 2, `at least 2 of ${EXPECTED.join(', ')} in the transcript; heard ${heard.join(', ') || 'none'}`);
  assert.match(text, /caller: /);

  // Playback: the agent who took the call gets it whole (200) and by Range (206); another agent 403.
  const rid = att.objectKey.split('/').pop()!.replace(/\.opus$/, '');
  const url = `${base}/api/conversations/${offered}/recordings/${encodeURIComponent(rid)}`;
  const ann = await loginCookie(base, 'ann', 'ann-password-1');
  const whole = await fetch(url, { headers: { cookie: ann } });
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get('content-type'), 'audio/ogg');
  assert.equal(whole.headers.get('accept-ranges'), 'bytes');
  assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
  const part = await fetch(url, { headers: { cookie: ann, range: 'bytes=100-1099' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 100-1099/${bytes.length}`);
  assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(100, 1100));
  const tail = await fetch(url, { headers: { cookie: ann, range: 'bytes=-10' } });
  assert.equal(tail.status, 206);
  assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(bytes.length - 10));
  const beyond = await fetch(url, { headers: { cookie: ann, range: `bytes=${bytes.length}-` } });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get('content-range'), `bytes */${bytes.length}`);
  const missing = await fetch(`${base}/api/conversations/${offered}/recordings/nope`, { headers: { cookie: ann } });
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { error: string }).error, /has no recording nope/);

  const bob = await loginCookie(base, 'bob', 'bob-password-1');
  const refused = await fetch(url, { headers: { cookie: bob, range: 'bytes=0-99' } });
  assert.equal(refused.status, 403);
  assert.match(((await refused.json()) as { error: string }).error, /not assigned to you/);
  assert.equal((await fetch(url)).status, 401, 'no session, no recording');
  const admin = await loginCookie(base, 'admin', ADMIN);
  assert.equal((await fetch(url, { headers: { cookie: admin, range: 'bytes=0-3' } })).status, 206, 'admins may listen');
});

test('RECORD_CALLS is off, on or announce (off by default); a bad value stops start-up with one line', () => {
  assert.equal(voiceConfig({}).recordCalls, 'off');
  assert.equal(voiceConfig({ RECORD_CALLS: 'announce' }).recordCalls, 'announce');
  assert.throws(() => voiceConfig({ RECORD_CALLS: 'sometimes' }), { message: 'config: RECORD_CALLS must be off, on or announce' });
  assert.equal(callRecordings({ mode: 'off', blobs: t.engine.blobs!.store, store: t.store }), undefined);
  assert.equal(noticePrompt('zh-CN'), 'recording.notice.zh');
  assert.equal(noticePrompt('en'), 'recording.notice.en');
});
