// Warm transfer on real parts (web/call.testing.ts: whole engine, sipp as the trunk, Chromium agents with
// fake microphones). Ann answers a call and consults Bob: the caller hears music only while Ann and Bob hear
// each other (each browser's getStats and mediasoup's counters); Ann completes the transfer: the caller hears
// Bob, Ann's leg is gone, the conversation is Bob's with a transfer entry. Bob then consults Carol and
// cancels (Carol's leg closes, the caller hears Bob again), and consults her once more: she declines and Bob
// is told. Who may do what is checked on the way (403 for the others, 400 with reasons for bad input).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { mediaId } from '../edges/sip/edge.ts';
import { waitFor } from '../tests/support/nats.ts';
import { agentPage, CALL_SKIP as skip, callerEar, callPcap, createAgents, goAvailable, SHOTS, sipp, sleep, startCallStack, statusSession, type CallStack } from './call.testing.ts';

let stack: CallStack;

before(async () => {
  if (!skip) stack = await startCallStack('call-consult-e2e');
});

after(async () => {
  await stack?.stop();
});

type Info = { producers: { id: string; source: string; paused: boolean }[]; consumers: { producerId: string; paused: boolean; bridged: boolean }[]; webrtc: string[] };
/** A number a page shows in a data attribute (the browser's own RTP counters). */
const shown = (page: Page, selector: string, attr: string) => page.evaluate(([s, a]) => Number(document.querySelector(s)?.getAttribute(a) ?? 0), [selector, attr] as const);
const above = (page: Page, selector: string, attr: string, n: number) => page.waitForFunction(([s, a, min]) => Number(document.querySelector(s)?.getAttribute(a)) > min, [selector, attr, n] as const, { timeout: 15_000 });
/** The stream heard most in a window, and the window's figures. */
const loudest = (streams: Map<number, number>) => {
  const [ssrc, packets] = [...streams].sort((a, b) => b[1] - a[1])[0] ?? [0, 0];
  return { ssrc, packets, total: [...streams.values()].reduce((a, b) => a + b, 0), streams: streams.size };
};

test('warm transfer: consult with music for the caller, complete to the colleague; cancel and decline', { skip, timeout: 150_000 }, async (t) => {
  const { ws, actors, media, base } = stack;
  await createAgents(stack, ['ann', 'bob', 'carol']);
  const ear = await callerEar();
  const ann = await agentPage(stack, 'ann', { available: true });
  // Bob and Carol sign in but go on duty only once Ann has the call (else the queue might offer it to them).
  const bob = await agentPage(stack, 'bob');
  const carol = await agentPage(stack, 'carol');
  const [annApi, bobApi, carolApi] = await Promise.all(['ann', 'bob', 'carol'].map((u) => statusSession(base, u, `${u}-password-1`)));

  callPcap(join(stack.dir, 'call.pcap'), 70);
  const run = sipp(stack, ear.port, 120_000);
  await ann.waitForSelector('[data-offer]', { timeout: 25_000 });
  await ann.keyboard.press('a');
  const item = await ann.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const id = (await item.getAttribute('data-conversation'))!;
  await item.click();
  await ann.click('#call-answer', { timeout: 15_000 });
  await ann.waitForSelector('[data-call=live]', { timeout: 15_000 });
  await above(ann, '[data-call]', 'data-rtp-in', 25);
  const callId = (await actors.ask<{ context: { task: { attrs: { callId: string } } } }>(`conversation/${id}`, { type: 'get' })).context.task.attrs.callId;
  const info = () => media.call<Info>('call.info', { conversationId: mediaId({ callId }) });
  await sleep(300);
  const withAnn = loudest(await ear.streamsIn(1000));
  t.diagnostic(`caller heard ${withAnn.total} packets in 1 s from Ann (${withAnn.streams} stream)`);
  assert.ok(withAnn.packets >= 35 && withAnn.total <= 70, `one stream, Ann's, towards the caller (${JSON.stringify(withAnn)})`);
  await goAvailable(bob, 'bob');
  await goAvailable(carol, 'carol');

  // Bad input and the wrong people.
  const refusal = async (r: Promise<{ status: number; data: Record<string, unknown> }>, status: number, reason: RegExp) => {
    const got = await r;
    assert.equal(got.status, status, JSON.stringify(got.data));
    assert.match(String(got.data.error), reason);
  };
  await refusal(annApi(`/api/calls/${id}/consult`, { agent: 'Not An Id!' }), 400, /^agent: /);
  await refusal(annApi(`/api/calls/${id}/consult`, { agent: 'ann' }), 400, /you hold this call/);
  await refusal(annApi(`/api/calls/${id}/consult`, { agent: 'zed' }), 409, /zed is offline/);
  await refusal(annApi(`/api/calls/${id}/consult`, { agent: 'bob', note: 'x'.repeat(1001) }), 400, /^note: /);
  await refusal(bobApi(`/api/calls/${id}/consult`, { agent: 'carol' }), 403, /not assigned to you/);
  await refusal(annApi(`/api/calls/${id}/consult/cancel`, {}), 409, /no consult is open/);

  // Ann consults Bob from the call panel: the caller hears music only; Ann's voice toward the caller pauses.
  await ann.click('#call-consult');
  await ann.waitForSelector('#consult-agent option[value=bob]', { state: 'attached' });
  await ann.selectOption('#consult-agent', 'bob');
  await ann.fill('#consult-note', 'Refund for order 1042, already verified');
  await ann.click('#consult-start');
  await ann.waitForSelector('[data-consult=invited]', { timeout: 10_000 });
  const annProducer = (await info()).producers.find((p) => p.source === 'agent')!.id;
  assert.deepEqual((await info()).consumers.filter((c) => c.producerId === annProducer && c.bridged).map((c) => c.paused), [true], "Ann's voice toward the caller is paused");
  await sleep(300);
  const invited = loudest(await ear.streamsIn(1000));
  t.diagnostic(`caller heard ${invited.total} packets in 1 s while Bob was invited`);
  assert.ok(invited.packets >= 35 && invited.total <= 70 && invited.ssrc !== withAnn.ssrc, `music only, not Ann (${JSON.stringify(invited)})`);

  await refusal(carolApi(`/api/calls/${id}/consult/join`, {}), 403, /not assigned to you/);
  await refusal(carolApi(`/api/calls/${id}/consult/decline`, {}), 403, /not assigned to you/);
  await refusal(bobApi(`/api/calls/${id}/consult/complete`, {}), 403, /not assigned to you/);
  await refusal(annApi(`/api/calls/${id}/consult`, { agent: 'carol' }), 409, /consult with bob is already open/);
  await refusal(annApi(`/api/calls/${id}/hold`, { held: true }), 409, /consult is open/);
  await refusal(annApi(`/api/calls/${id}/consult/complete`, {}), 409, /bob has not joined/);
  await refusal(bobApi(`/api/calls/${id}/consume`, { rtpCapabilities: { codecs: [] } }), 409, /join the consult first/);

  // Bob sees the request and joins: Ann and Bob hear each other, the caller still hears music only.
  const request = await bob.waitForSelector(`[data-consult-request="${id}"]`, { timeout: 10_000 });
  assert.match((await request.textContent()) ?? '', /ann wants to consult you about a call/);
  await bob.click(`[data-consult-join="${id}"]`);
  await ann.waitForSelector('[data-consult=joined]', { timeout: 15_000 });
  await above(ann, '[data-call]', 'data-peer-in', 25);
  await above(bob, '[data-consult-call]', 'data-peer-in', 25);
  await above(bob, '[data-consult-call]', 'data-rtp-out', 25);
  const annStats = (await annApi(`/api/calls/${id}/stats`)).data as { fromAgent: number; fromPeer: number };
  const bobStats = (await bobApi(`/api/calls/${id}/stats`)).data as { fromAgent: number; fromPeer: number };
  t.diagnostic(`consult: Ann's browser got ${await shown(ann, '[data-call]', 'data-peer-in')} of Bob's packets, Bob's ${await shown(bob, '[data-consult-call]', 'data-peer-in')} of Ann's; mediasoup sent Ann ${annStats.fromPeer} of Bob's and Bob ${bobStats.fromPeer} of Ann's`);
  assert.ok(annStats.fromPeer > 0 && bobStats.fromPeer > 0 && bobStats.fromAgent > 0, 'mediasoup carries Ann ↔ Bob');
  await sleep(300);
  const talking = loudest(await ear.streamsIn(1000));
  t.diagnostic(`caller heard ${talking.total} packets in 1 s while Ann and Bob talked (${talking.streams} stream)`);
  assert.ok(talking.packets >= 35 && talking.total <= 70 && talking.ssrc === invited.ssrc, `the caller hears the music only (${JSON.stringify(talking)})`);
  await bob.screenshot({ path: join(SHOTS, 'call-consult.png') });
  await ann.screenshot({ path: join(SHOTS, 'call-consult-agent.png') });

  // Complete: the conversation is Bob's, the caller hears him, Ann's leg is gone.
  await ann.click('#consult-complete');
  await waitFor("Ann's leg closed", async () => ![...stack.ws.calls.legs.values()].some((l) => l.user === 'ann'), 10_000, 100);
  await waitFor("Ann's call panel is gone", async () => (await ann.$('[data-call]')) === null, 10_000, 100);
  await bob.waitForSelector(`section[data-open="${id}"] [data-call=live]`, { timeout: 15_000 });
  await above(bob, '[data-call]', 'data-rtp-in', 25);
  await sleep(400);
  const withBob = loudest(await ear.streamsIn(1000));
  t.diagnostic(`caller heard ${withBob.total} packets in 1 s from Bob after the transfer (${withBob.streams} stream)`);
  assert.ok(withBob.packets >= 35 && withBob.total <= 70 && ![withAnn.ssrc, invited.ssrc].includes(withBob.ssrc), `one stream, Bob's (${JSON.stringify(withBob)})`);
  assert.deepEqual((await info()).producers.filter((p) => p.source === 'agent').map((p) => p.paused), [false], "one agent's voice in the call: Bob's");
  const done = await actors.ask<{ value: string; context: { agent: string; transfers: { from?: string; to: string; note: string }[] } }>(`conversation/${id}`, { type: 'get' });
  assert.equal(done.value, 'active');
  assert.equal(done.context.agent, 'bob');
  assert.deepEqual(done.context.transfers.map((x) => [x.from, x.to, x.note]), [['agent/ann', 'agent/bob', 'Refund for order 1042, already verified']]);
  assert.equal((await annApi(`/api/calls/${id}/join`, {})).status, 403, 'Ann no longer reaches the call');
  assert.equal(ws.calls.consults.size, 0);

  // Bob consults Carol and cancels: her leg closes, the caller hears Bob again.
  const consult = async (to: string) => {
    await bob.click('#call-consult');
    await bob.waitForSelector(`#consult-agent option[value=${to}]`, { state: 'attached' });
    await bob.selectOption('#consult-agent', to);
    await bob.click('#consult-start');
    await bob.waitForSelector('[data-consult=invited]', { timeout: 10_000 });
    await carol.waitForSelector(`[data-consult-request="${id}"]`, { timeout: 10_000 });
  };
  await consult('carol');
  await carol.click(`[data-consult-join="${id}"]`);
  await bob.waitForSelector('[data-consult=joined]', { timeout: 15_000 });
  await above(carol, '[data-consult-call]', 'data-peer-in', 10);
  await above(bob, '[data-call]', 'data-peer-in', 10);
  assert.equal((await info()).webrtc.length, 4, "Bob's and Carol's legs");
  await bob.click('#consult-cancel');
  await bob.waitForSelector('[data-consult=none]', { timeout: 10_000 });
  await waitFor("Carol's request is gone", async () => (await carol.$(`[data-consult-request="${id}"]`)) === null, 10_000, 100);
  await waitFor("Carol's leg closed", async () => (await info()).webrtc.length === 2, 10_000, 100);
  const inBefore = await shown(bob, '[data-call]', 'data-rtp-in');
  await sleep(400);
  const back = loudest(await ear.streamsIn(1000));
  t.diagnostic(`caller heard ${back.total} packets in 1 s from Bob after the cancelled consult`);
  assert.ok(back.packets >= 35 && back.total <= 70 && back.ssrc === withBob.ssrc, `Bob again, alone (${JSON.stringify(back)})`);
  await above(bob, '[data-call]', 'data-rtp-in', inBefore + 25);

  // Once more, and Carol declines: Bob is told, the caller is back with him.
  await consult('carol');
  await carol.click(`[data-consult-decline="${id}"]`);
  await bob.waitForSelector('[data-consult-news]', { timeout: 10_000 });
  assert.match((await bob.textContent('[data-consult-news]')) ?? '', /carol declined the consult/);
  await bob.waitForSelector('[data-consult=none]');
  await sleep(400);
  const afterDecline = loudest(await ear.streamsIn(1000));
  assert.ok(afterDecline.packets >= 35 && afterDecline.ssrc === withBob.ssrc, `Bob again after the decline (${JSON.stringify(afterDecline)})`);

  // Bob hangs up: the trunk gets its BYE, nothing is left on the web node.
  await bob.click('#call-hangup');
  const r = await run;
  assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
  await waitFor('wrap-up', async () => (await actors.ask<{ value: string }>(`conversation/${id}`, { type: 'get' })).value === 'wrapup', 10_000, 100);
  assert.equal(ws.calls.legs.size, 0, 'no agent leg left on the web node');
  assert.equal(ws.calls.consults.size, 0, 'no consult left');
  ear.close();
});
