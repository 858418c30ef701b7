// A web chat visitor calls from the widget, on real parts: a whole engine (actors, store, media node with a
// mediasoup worker, web chat edge, workspace) and Debian's Chromium with a fake microphone in two pages: a
// website with the widget (data-voice="on") and the agent's workspace. The visitor chats, the agent takes
// the chat; the visitor presses Call: the same conversation goes to voice and is offered to the agent, who
// accepts and answers in the browser. Audio is measured both ways (mediasoup's producer and consumer
// counters, and each page's own getStats), the agent sees the chat beside the call controls, the visitor
// hangs up: wrap-up, router closed, and the visitor's next chat message lands in the same conversation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium, loginCookie } from './browser.testing.ts';
import { ActorClient } from '../actors/client.ts';
import { loadConfig } from '../engine/config.ts';
import { freePort } from '../engine/nats-server.ts';
import { startEngine, type Engine } from '../engine/start.ts';
import { MediaClient, MediaError } from '../media/service.ts';
import { serve, type HttpServer } from '../platform/serve.ts';
import { StoreClient } from '../storage/client.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from '../tests/support/nats.ts';

const SHOTS = resolve('.test-data/screenshots');
const PROMPTS = process.env.PROMPTS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cc', 'prompts');
const skip = !existsSync(CHROMIUM) ? `no ${CHROMIUM}: run scripts/setup-browser.sh as root` : false;

let nats: TestNats;
let engine: Engine;
let browser: Browser;
let base = '';
let site: HttpServer;
let siteBase = '';
let actors: ActorClient;
let media: MediaClient;
let store: StoreClient;
const adminPassword = crypto.randomUUID();

before(async () => {
  if (skip) return;
  nats = await startTestNats();
  const dir = tempDir('widget-call-e2e');
  const env = { NATS_URL: nats.urls[0], DATA_DIR: dir, SURREAL_URL: 'mem://', PORT: String(await freePort()), SMTP_PORT: String(await freePort()), SIP_PORT: String(await freePort()), SIP_HOST: '127.0.0.1', MEDIA_LISTEN_IP: '127.0.0.1', MEDIA_WORKERS: '1', ACTOR_SHARDS: '4', LOG_LEVEL: 'warn', ADMIN_PASSWORD: adminPassword, PROMPTS_DIR: PROMPTS };
  engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
  base = `http://127.0.0.1:${engine.http!.port}`;
  const nc = await nats.connect();
  actors = new ActorClient(nc, 4);
  media = new MediaClient(nc);
  store = new StoreClient(nc);
  // The shop's own web server (another origin than the engine's), with the widget on its page.
  site = await serve(() => new Response(sitePage(base), { headers: { 'content-type': 'text/html; charset=utf-8' } }), await freePort(), '127.0.0.1');
  siteBase = `http://127.0.0.1:${site.port}`;
  // Microphones without people: Chromium's fake device (a beep) and no permission prompt.
  browser = await launchChromium(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required']);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await engine?.stop();
  await nats?.stop();
});

/** A shop's page that embeds the widget from the engine, voice on. */
const sitePage = (engine: string) => `<!doctype html><html lang="en"><head><title>Shop</title></head><body><h1>Shop</h1>
<script src="${engine}/webchat/v1/widget.js" data-site="demo" data-voice="on" data-lang="en" async></script></body></html>`;

type View = { value: unknown; context: { channel: string; channels: { channel: string }[]; agent?: string; customer: string; lastCustomerAt?: number } };
const conversation = (id: string) => actors.ask<View>(`conversation/${id}`, { type: 'get' });
const stateOf = (v: View) => String(typeof v.value === 'object' && v.value ? Object.keys(v.value)[0] : v.value);
const attr = async (page: Page, sel: string, name: string) => Number(await page.getAttribute(sel, name));

/** A new agent, signed in to the workspace in their own browser context and available. */
/**
 * Audio both ways on a live widget call: each page's own getStats (the agent's call panel, the widget's call
 * bar), then mediasoup's counters — each producer received from its browser, each consumer sent towards the
 * other. Returns the figures for the test's diagnostics.
 */
async function audioBothWays(conversationId: string, agent: Page, visitor: Page, bar: string) {
  await agent.waitForFunction(() => Number(document.querySelector('[data-rtp-in]')?.getAttribute('data-rtp-in')) > 25 && Number(document.querySelector('[data-rtp-out]')?.getAttribute('data-rtp-out')) > 25, undefined, { timeout: 15_000 });
  await waitFor('the widget counts audio both ways', async () => (await attr(visitor, bar, 'data-rtp-in')) > 25 && (await attr(visitor, bar, 'data-rtp-out')) > 25, 15_000, 200);
  type Info = { producers: { id: string; source: string }[]; consumers: { id: string; producerId: string }[] };
  const count = async (id: string, type: string) => (await media.call<{ stats: { type: string; packetCount?: number }[] }>('stats', { conversationId, id })).stats.filter((s) => s.type === type).reduce((n, s) => n + (s.packetCount ?? 0), 0);
  const figures = await waitFor('mediasoup counts both ways', async () => {
    const info = await media.call<Info>('call.info', { conversationId });
    const caller = info.producers.find((p) => p.source === 'caller');
    const agentVoice = info.producers.find((p) => p.source === 'agent');
    const toAgent = info.consumers.find((c) => c.producerId === caller?.id);
    const toVisitor = info.consumers.find((c) => c.producerId === agentVoice?.id);
    if (!caller || !agentVoice || !toAgent || !toVisitor) return undefined;
    const f = { fromVisitor: await count(caller.id, 'inbound-rtp'), toAgent: await count(toAgent.id, 'outbound-rtp'), fromAgent: await count(agentVoice.id, 'inbound-rtp'), toVisitor: await count(toVisitor.id, 'outbound-rtp') };
    return Object.values(f).every((n) => n > 25) ? f : undefined;
  }, 15_000, 200);
  const pages = { agentIn: await attr(agent, '[data-rtp-in]', 'data-rtp-in'), agentOut: await attr(agent, '[data-rtp-out]', 'data-rtp-out'), visitorIn: await attr(visitor, bar, 'data-rtp-in'), visitorOut: await attr(visitor, bar, 'data-rtp-out') };
  return `mediasoup packets: visitor→router ${figures.fromVisitor}, router→agent ${figures.toAgent}, agent→router ${figures.fromAgent}, router→visitor ${figures.toVisitor}; getStats: agent in ${pages.agentIn} out ${pages.agentOut}, visitor in ${pages.visitorIn} out ${pages.visitorOut}`;
}

async function agentPage(id: string): Promise<Page> {
  const cookie = await loginCookie(base, 'admin', adminPassword);
  const created = await fetch(`${base}/api/users`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ id, name: id, role: 'agent', password: `${id}-password-1`, queues: ['support'] }) });
  assert.equal(created.status, 201, await created.text());
  const page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  await page.goto(base);
  await page.fill('#login-user', id);
  await page.fill('#login-password', `${id}-password-1`);
  await page.click('button[type=submit]');
  await page.waitForSelector('header nav');
  await page.selectOption('#presence', 'available');
  await waitFor(`${id} available`, async () => (await page.getAttribute('[data-presence]', 'data-presence')) === 'available', 10_000, 100);
  return page;
}

/** A visitor on the shop's page who has written `text` in the widget. */
async function visitorPage(text: string): Promise<Page> {
  const page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  await page.goto(siteBase);
  await page.click('[data-cc-webchat] .l');
  await page.fill('[data-cc-webchat] textarea', text);
  await page.press('[data-cc-webchat] textarea', 'Enter');
  return page;
}

test('a web chat visitor calls from the widget: same conversation, the agent answers in the browser, audio both ways, chat beside the call, wrap-up, chat goes on', { skip, timeout: 120_000 }, async (t) => {
  const ann = await agentPage('ann');
  // The visitor chats; Ann takes the chat.
  const visitor = await visitorPage('my order 1234 is late');
  await ann.waitForSelector('[data-offer]:has-text("webchat")', { timeout: 20_000 });
  await ann.keyboard.press('a');
  const item = await ann.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const conversationId = (await item.getAttribute('data-conversation'))!;
  await item.click();
  await ann.waitForSelector('.history :text("my order 1234 is late")', { timeout: 10_000 });
  assert.equal(stateOf(await conversation(conversationId)), 'active');

  // The visitor presses Call (the call module is fetched now): ringing, and Ann is offered the voice call.
  const started = Date.now();
  await visitor.click('[data-cc-webchat] .cb', { timeout: 10_000 });
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=ringing]', { timeout: 15_000 }).catch(async (e) => {
    throw new Error(`${(e as Error).message}\nthe widget says: ${await visitor.locator('[data-cc-webchat] .cs').textContent()}`);
  });
  assert.equal((await fetch(`${base}/webchat/v1/call.js`)).headers.get('access-control-allow-origin'), '*', 'the call module loads from any site');
  const ringing = await conversation(conversationId);
  assert.equal(ringing.context.channel, 'voice', 'the same conversation is now on voice');
  const callerOnRouter = await media.call<{ producers: { source: string; mimeType: string }[] }>('call.info', { conversationId });
  assert.deepEqual(callerOnRouter.producers.map((p) => [p.source, p.mimeType.toLowerCase()]), [['caller', 'audio/opus']], "the widget's microphone is the call's caller");
  await ann.waitForSelector('[data-offer]:has-text("voice")', { timeout: 15_000 });
  await ann.keyboard.press('a');
  await ann.click(`li[data-conversation="${conversationId}"]`, { timeout: 15_000 });
  await ann.click('#call-answer', { timeout: 15_000 });
  await ann.waitForSelector('[data-call=live]', { timeout: 15_000 });
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=live]', { timeout: 15_000 });
  t.diagnostic(`answered ${Date.now() - started} ms after the visitor pressed Call`);

  t.diagnostic(await audioBothWays(conversationId, ann, visitor, '[data-cc-webchat] .cs'));

  // The agent sees the chat beside the call controls, without the visitor repeating anything.
  const conv = ann.locator('section.conv');
  await conv.locator('[data-call=live]').waitFor();
  assert.ok((await conv.locator('.history').textContent())?.includes('my order 1234 is late'), 'the chat history is beside the call panel');
  const during = await conversation(conversationId);
  assert.equal(stateOf(during), 'active');
  assert.equal(during.context.agent, 'ann');
  assert.deepEqual(during.context.channels.map((c) => c.channel), ['webchat', 'voice']);
  await ann.screenshot({ path: join(SHOTS, 'widget-call-agent.png') });
  await visitor.screenshot({ path: join(SHOTS, 'widget-call-visitor.png') });

  // The visitor hangs up: the call ends in wrap-up for the agent, the router closes, the panel goes.
  const hungUpAt = Date.now();
  await visitor.click('[data-cc-webchat] .hu');
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=ended]', { state: 'attached', timeout: 10_000 });
  await waitFor('wrap-up', async () => stateOf(await conversation(conversationId)) === 'wrapup', 10_000, 100);
  const gone = await media.call('call.info', { conversationId }).catch((e: unknown) => e);
  assert.ok(gone instanceof MediaError && gone.code === 404, 'the router is closed');
  await waitFor('the call panel is gone', async () => (await ann.$('[data-call]')) === null, 10_000, 100);
  t.diagnostic(`wrap-up ${Date.now() - hungUpAt} ms after the hang-up`);

  // The chat goes on in the same conversation.
  await visitor.fill('[data-cc-webchat] textarea', 'thanks, that was quick');
  await visitor.press('[data-cc-webchat] textarea', 'Enter');
  const after = await waitFor('the message after the call', async () => {
    const v = await conversation(conversationId);
    return (v.context.lastCustomerAt ?? 0) >= hungUpAt ? v : undefined;
  }, 10_000, 100);
  assert.equal(after.context.channel, 'webchat', 'back on the chat');
  const view = await store.view({ customerId: `customer:${after.context.customer}`, viewer: 'agent', limit: 50 });
  const last = view.messages.find((m) => m.text === 'thanks, that was quick');
  assert.equal(last?.conversationId, `conversation:${conversationId}`, 'stored in the same conversation');
  assert.equal(await visitor.evaluate(() => JSON.parse(localStorage.getItem('ccwc:demo::conversation') ?? 'null')), conversationId, 'the widget is still in the same conversation');
  await ann.selectOption('#presence', 'offline'); // the next test's calls go to its own agent
  await ann.context().close();
  await visitor.context().close();
});

test('the agent hangs up a widget call: the widget is told, the conversation is in wrap-up; a call before any agent joined is refused', { skip, timeout: 90_000 }, async () => {
  const bob = await agentPage('bob');
  const visitor = await visitorPage('can you call me about my refund?');
  // Before an agent joined the chat, calling is refused with the reason (the button stays).
  await visitor.click('[data-cc-webchat] .cb', { timeout: 10_000 });
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=ended]:has-text("an agent must join the chat")', { timeout: 10_000 });
  await bob.waitForSelector('[data-offer]:has-text("webchat")', { timeout: 20_000 });
  await bob.keyboard.press('a');
  const item = await bob.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const conversationId = (await item.getAttribute('data-conversation'))!;
  await waitFor('bob holds the chat', async () => stateOf(await conversation(conversationId)) === 'active', 10_000, 100);

  await visitor.click('[data-cc-webchat] .cb', { timeout: 10_000 });
  await bob.waitForSelector('[data-offer]:has-text("voice")', { timeout: 15_000 });
  await bob.keyboard.press('a');
  await bob.click(`li[data-conversation="${conversationId}"]`, { timeout: 15_000 });
  await bob.click('#call-answer', { timeout: 15_000 });
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=live]', { timeout: 15_000 });
  await waitFor('the widget hears bob', async () => (await attr(visitor, '[data-cc-webchat] .cs', 'data-rtp-in')) > 10, 10_000, 200);

  await bob.click('#call-hangup');
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=ended]:has-text("the agent hung up")', { timeout: 10_000 });
  await waitFor('wrap-up', async () => stateOf(await conversation(conversationId)) === 'wrapup', 10_000, 100);
  const gone = await media.call('call.info', { conversationId }).catch((e: unknown) => e);
  assert.ok(gone instanceof MediaError && gone.code === 404, 'the router is closed');
  // In wrap-up there is no agent on the chat: a new call waits until the conversation is open again.
  await visitor.click('[data-cc-webchat] .cb', { timeout: 10_000 });
  await visitor.waitForSelector('[data-cc-webchat] .cs[data-call=ended]:has-text("the conversation has ended")', { timeout: 10_000 });
  await bob.selectOption('#presence', 'offline'); // the next test's chat goes to its own agent
});

test('the agent calls the web chat visitor: the widget rings, a declined call leaves the chat going and the agent told; accepted, the agent takes it at once, audio both ways, wrap-up', { skip, timeout: 120_000 }, async (t) => {
  const cara = await agentPage('cara');
  const visitor = await visitorPage('could you call me about the delivery?');
  await cara.waitForSelector('[data-offer]:has-text("webchat")', { timeout: 20_000 });
  await cara.keyboard.press('a');
  const item = await cara.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const conversationId = (await item.getAttribute('data-conversation'))!;
  await item.click();
  await cara.waitForSelector('.history :text("could you call me about the delivery?")', { timeout: 10_000 });
  const callButton = cara.locator('section.conv button:has-text("📞")');
  const bar = '[data-cc-webchat] .cs';

  // Declined: the widget rang with Accept/Decline, the agent is told, the chat goes on.
  await callButton.click();
  await visitor.waitForSelector(`${bar}[data-call=incoming]`, { timeout: 10_000 });
  assert.equal(await visitor.locator(`${bar} .ac`).textContent(), 'Accept call');
  assert.equal(await visitor.locator(`${bar} .dc`).textContent(), 'Decline call');
  assert.equal(await visitor.locator(`${bar}`).getAttribute('role'), 'status', 'the ring is announced');
  await visitor.click(`${bar} .dc`);
  await cara.waitForSelector('section.conv [role=alert]:has-text("the visitor declined the call")', { timeout: 10_000 });
  const declined = await conversation(conversationId);
  assert.equal(stateOf(declined), 'active', 'the chat is still active');
  assert.equal(declined.context.channel, 'webchat');
  assert.equal(declined.context.agent, 'cara');
  await visitor.fill('[data-cc-webchat] textarea', 'no call for now, thanks');
  await visitor.press('[data-cc-webchat] textarea', 'Enter');
  await cara.waitForSelector('.history :text("no call for now, thanks")', { timeout: 10_000 });

  // Accepted: the same call as the visitor's own, and the agent who placed it holds the voice leg at once.
  const started = Date.now();
  await callButton.click();
  await visitor.click(`${bar}[data-call=incoming] .ac`, { timeout: 10_000 });
  const taken = await waitFor('cara holds the voice call', async () => {
    const c = await conversation(conversationId);
    return stateOf(c) === 'active' && c.context.channel === 'voice' && c.context.agent === 'cara' ? c : undefined;
  }, 15_000, 100).catch(async (e) => {
    throw new Error(`${(e as Error).message}: conversation ${JSON.stringify(await conversation(conversationId))}\nagent ${JSON.stringify(await actors.ask('agent/cara', { type: 'get' }))}\nwidget: ${await visitor.locator(bar).textContent()}`);
  });
  assert.deepEqual(taken.context.channels.map((c) => c.channel), ['webchat', 'voice'], 'one conversation, chat then voice');
  await cara.click(`li[data-conversation="${conversationId}"]`, { timeout: 15_000 });
  await cara.click('#call-answer', { timeout: 15_000 });
  await cara.waitForSelector('[data-call=live]', { timeout: 15_000 });
  await visitor.waitForSelector(`${bar}[data-call=live]`, { timeout: 15_000 });
  t.diagnostic(`live ${Date.now() - started} ms after the agent pressed Call`);

  t.diagnostic(await audioBothWays(conversationId, cara, visitor, bar));
  await visitor.screenshot({ path: join(SHOTS, 'widget-call-incoming-live.png') });

  // The agent hangs up: wrap-up, the router closes, the widget is told.
  await cara.click('#call-hangup');
  await visitor.waitForSelector(`${bar}[data-call=ended]:has-text("the agent hung up")`, { timeout: 10_000 });
  await waitFor('wrap-up', async () => stateOf(await conversation(conversationId)) === 'wrapup', 10_000, 100);
  const gone = await media.call('call.info', { conversationId }).catch((e: unknown) => e);
  assert.ok(gone instanceof MediaError && gone.code === 404, 'the router is closed');
  await cara.selectOption('#presence', 'offline');
  await cara.context().close();
  await visitor.context().close();
});
