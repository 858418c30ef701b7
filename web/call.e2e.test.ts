// A phone call answered in the browser, on real parts: a whole engine (actors, store, media node with a
// mediasoup worker, SIP edge with its IVR), sipp as the trunk, and Debian's Chromium (fake microphone)
// running the workspace with mediasoup-client. The caller presses 1, queues, the agent accepts and
// answers; audio is measured both ways (mediasoup's producer/consumer counters, the browser's getStats,
// and the packets the caller hears); mute silences the agent towards the caller, hold plays music and
// moves the conversation to onHold; another agent is refused; the agent hangs up: the trunk gets a BYE,
// the router closes and the conversation is in wrap-up.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mediaId } from '../edges/sip/edge.ts';
import { DtmfDetector, parseTelephoneEvent } from '../media/rtp.ts';
import { MediaError } from '../media/service.ts';
import { waitFor } from '../tests/support/nats.ts';
import { agentPage, CALL_SKIP as skip, callerEar, callPcap, createAgents, SHOTS, sipp, sleep, startCallStack, statusSession, type CallStack } from './call.testing.ts';

let stack: CallStack;

before(async () => {
  if (!skip) stack = await startCallStack('call-e2e');
});

after(async () => {
  await stack?.stop();
});

test('a caller reaches an agent who answers in the browser: audio both ways, mute, keys, hold, transfer, hang-up', { skip, timeout: 90_000 }, async (t) => {
  const { ws, actors, media, base } = stack;
  await createAgents(stack, ['ann', 'bob']);

  // What the caller hears, by SSRC (prompts, music and the agent each arrive as their own stream).
  const ear = await callerEar();
  const heardIn = ear.heardIn;
  // The agent's keys as the trunk sees them: RFC 4733 events (PT 101), one digit per key press.
  const keys = new DtmfDetector();
  const keysHeard: string[] = [];
  const keySeqs: { ssrc: number; seq: number; end: boolean }[] = [];
  const audioSeqs: { ssrc: number; seq: number }[] = [];
  ear.onRtp((p) => {
    if (p.payloadType === 101) {
      const digit = keys.push(p);
      if (digit) keysHeard.push(digit);
      keySeqs.push({ ssrc: p.ssrc, seq: p.seq, end: parseTelephoneEvent(p.payload)?.end ?? false });
    } else audioSeqs.push({ ssrc: p.ssrc, seq: p.seq });
  });
  const ann = await agentPage(stack, 'ann', { available: true });

  callPcap(join(stack.dir, 'call.pcap'), 45);
  const started = Date.now();
  const run = sipp(stack, ear.port, 80_000);

  // IVR → queue → offer; Ann accepts and opens the conversation: the call panel is there.
  await ann.waitForSelector('[data-offer]', { timeout: 25_000 });
  await ann.keyboard.press('a');
  const item = await ann.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const conversationId = (await item.getAttribute('data-conversation'))!;
  await item.click();
  await ann.click('#call-answer', { timeout: 15_000 });
  await ann.waitForSelector('[data-call=live]', { timeout: 15_000 });
  t.diagnostic(`answered ${Date.now() - started} ms after the INVITE`);

  // The browser's own counters: the caller's voice arrives (inbound-rtp), the microphone leaves.
  await ann.waitForFunction(() => Number(document.querySelector('[data-rtp-in]')?.getAttribute('data-rtp-in')) > 25 && Number(document.querySelector('[data-rtp-out]')?.getAttribute('data-rtp-out')) > 25, undefined, { timeout: 15_000 });
  const annApi = await statusSession(base, 'ann', 'ann-password-1');
  const stats = await waitFor('mediasoup counts both ways', async () => {
    const s = (await annApi(`/api/calls/${conversationId}/stats`)).data as { fromAgent: number; toAgent: number };
    return s.fromAgent > 25 && s.toAgent > 25 ? s : undefined;
  }, 10_000, 200);
  const browserFig = await ann.evaluate(() => ({ in: Number(document.querySelector('[data-rtp-in]')!.getAttribute('data-rtp-in')), out: Number(document.querySelector('[data-rtp-out]')!.getAttribute('data-rtp-out')) }));
  t.diagnostic(`mediasoup: agent producer received ${stats.fromAgent} packets, consumer sent ${stats.toAgent} towards the browser; browser getStats: inbound-rtp ${browserFig.in}, outbound-rtp ${browserFig.out}`);
  // The agent reaches the caller: a steady 20 ms stream at the trunk (the hold music stopped when the agent joined).
  const talking = await heardIn(1000);
  t.diagnostic(`caller heard ${talking} packets in 1 s while the agent talked`);
  assert.ok(talking >= 35 && talking <= 70, `one 50 pps stream towards the caller, got ${talking}`);
  await ann.screenshot({ path: join(SHOTS, 'call.png') });

  // Nobody else reaches the call's media.
  const bob = await statusSession(base, 'bob', 'bob-password-1');
  const refused = await bob(`/api/calls/${conversationId}/join`, {});
  assert.equal(refused.status, 403);
  assert.match(String(refused.data.error), /not assigned to you/);
  assert.equal((await fetch(`${base}/api/calls/${conversationId}/join`, { method: 'POST' })).status, 401);
  assert.equal((await annApi(`/api/calls/${conversationId}/mute`, { muted: 'yes' })).status, 400);

  // Mute: nothing of the agent reaches the caller; unmute brings it back.
  await ann.click('#call-mute');
  await ann.waitForSelector('#call-mute[aria-pressed=true]');
  await sleep(300);
  const muted = await heardIn(1000);
  await ann.click('#call-mute');
  await ann.waitForSelector('#call-mute[aria-pressed=false]');
  await sleep(300);
  const unmuted = await heardIn(1000);
  t.diagnostic(`caller heard ${muted} packets in 1 s muted, ${unmuted} after unmuting`);
  assert.ok(muted <= 2, `muted: the caller hears nothing of the agent (${muted})`);
  assert.ok(unmuted >= 35, `unmuted: the agent is back (${unmuted})`);

  // Keys from the keypad reach the trunk as RFC 4733 events inside the agent's stream: same SSRC, and the
  // sequence numbers run on without a gap around them.
  const before = audioSeqs.length;
  for (const k of ['4', '2', '#']) await ann.click(`.keypad [data-key="${k}"]`);
  await waitFor('three keys at the trunk', async () => (keysHeard.length >= 3 && keySeqs.filter((k) => k.end).length >= 9 ? true : undefined), 10_000, 50);
  assert.deepEqual(keysHeard, ['4', '2', '#']);
  await sleep(300);
  const agentSsrc = audioSeqs[audioSeqs.length - 1].ssrc;
  assert.ok(keySeqs.every((k) => k.ssrc === agentSsrc), "the keys travel in the agent's stream");
  const stream = [...audioSeqs.slice(before), ...keySeqs].filter((x) => x.ssrc === agentSsrc).map((x) => x.seq).sort((a, b) => a - b);
  const gaps = stream.slice(1).filter((q, i) => q - stream[i] !== 1).length;
  t.diagnostic(`keys heard at the trunk: ${keysHeard.join('')} in ${keySeqs.length} event packets; ${gaps} sequence gaps`);
  assert.ok(gaps <= 1, `the agent's stream numbering stays continuous around the keys (${gaps} gaps)`);
  assert.equal((await annApi(`/api/calls/${conversationId}/dtmf`, { digits: '12x' })).status, 400);
  assert.equal((await bob(`/api/calls/${conversationId}/dtmf`, { digits: '1' })).status, 403);

  // Hold: the conversation is on hold, the caller hears music, the agent's side is paused; resume.
  await ann.click('#call-hold');
  await ann.waitForSelector('[data-held=true]', { timeout: 10_000 });
  const view = await actors.ask<{ value: string }>(`conversation/${conversationId}`, { type: 'get' });
  assert.equal(view.value, 'onHold');
  await sleep(300);
  const music = await heardIn(1000);
  t.diagnostic(`caller heard ${music} packets of music in 1 s on hold`);
  assert.ok(music >= 35, `music on hold reaches the caller (${music})`);
  const callId = (await actors.ask<{ context: { task: { attrs: { callId: string } } } }>(`conversation/${conversationId}`, { type: 'get' })).context.task.attrs.callId;
  const info = await media.call<{ producers: { source: string; paused: boolean }[] }>('call.info', { conversationId: mediaId({ callId }) });
  assert.equal(info.producers.find((p) => p.source === 'agent')?.paused, true, "the agent's producer is paused on hold");
  await ann.click('#call-hold');
  await ann.waitForSelector('[data-held=false]', { timeout: 10_000 });

  // Blind transfer to Bob with a note: Ann's leg closes at once, the caller hears music meanwhile, Bob
  // accepts and answers in his own page, and the caller hears him.
  const bobPage = await agentPage(stack, 'bob', { available: true });
  await ann.focus('.history');
  await ann.keyboard.press('t');
  await ann.waitForSelector('dialog[open] #transfer-to option[value="agent/bob"]', { state: 'attached' });
  await ann.selectOption('#transfer-to', 'agent/bob');
  await ann.fill('#transfer-note', 'Caller wants a refund for order 1042');
  await ann.click('dialog button[type=submit]');
  await waitFor("Ann's leg closed", async () => ![...ws.calls.legs.values()].some((l) => l.user === 'ann'), 10_000, 100);
  await waitFor("Ann's call panel is gone", async () => (await ann.$('[data-call]')) === null, 10_000, 100);
  await sleep(400);
  const meanwhile = await heardIn(1000);
  t.diagnostic(`caller heard ${meanwhile} packets of music in 1 s while being transferred`);
  assert.ok(meanwhile >= 35, `music while the call is transferred (${meanwhile})`);
  await bobPage.waitForSelector('[data-offer]', { timeout: 15_000 });
  await bobPage.keyboard.press('a');
  await (await bobPage.waitForSelector(`li[data-conversation="${conversationId}"]`, { timeout: 15_000 })).click();
  await bobPage.click('#call-answer', { timeout: 15_000 });
  await bobPage.waitForSelector('[data-call=live]', { timeout: 15_000 });
  await sleep(400);
  const withBob = await heardIn(1000);
  t.diagnostic(`caller heard ${withBob} packets in 1 s from Bob`);
  assert.ok(withBob >= 35 && withBob <= 70, `one stream (Bob's) towards the caller, got ${withBob}`);
  const afterTransfer = await media.call<{ producers: { source: string; paused: boolean }[] }>('call.info', { conversationId: mediaId({ callId }) });
  assert.deepEqual(afterTransfer.producers.filter((p) => p.source === 'agent').map((p) => p.paused), [false], "one agent's voice in the call: Bob's");
  const transferred = await actors.ask<{ value: string; context: { agent: string; transfers: { to: string; note: string }[] } }>(`conversation/${conversationId}`, { type: 'get' });
  assert.equal(transferred.context.agent, 'bob');
  assert.deepEqual(transferred.context.transfers.map((x) => [x.to, x.note]), [['agent/bob', 'Caller wants a refund for order 1042']]);
  assert.equal((await annApi(`/api/calls/${conversationId}/join`, {})).status, 403, 'Ann no longer reaches the call');

  // Hang up: the trunk gets a BYE (sipp answers 200 and ends cleanly), the router closes, wrap-up.
  await bobPage.click('#call-hangup');
  const r = await run;
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  await waitFor('wrap-up', async () => (await actors.ask<{ value: string }>(`conversation/${conversationId}`, { type: 'get' })).value === 'wrapup', 10_000, 100);
  const gone = await media.call('call.info', { conversationId: mediaId({ callId }) }).catch((e: unknown) => e);
  assert.ok(gone instanceof MediaError && gone.code === 404, 'the router is closed');
  await waitFor('the call panel is gone', async () => (await bobPage.$('[data-call]')) === null, 10_000, 100);
  assert.equal(ws.calls.legs.size, 0, 'no agent leg left on the web node');
  t.diagnostic(`whole call ${Date.now() - started} ms`);
  ear.close();
});
