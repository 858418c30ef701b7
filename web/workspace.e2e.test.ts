// The workspace end to end in headless Chromium (Debian's, driven by playwright-core) on a whole engine
// on real parts: an agent signs in, accepts a web chat visitor's offer (the visitor is a second page
// using the widget), replies, transfers to a second agent, and a supervisor's wallboard shows it live.
// Screenshots go to .test-data/screenshots/; accessibility basics are checked on the main views.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { Hono } from 'hono';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium, loginCookie } from './browser.testing.ts';
import { loadConfig } from '../engine/config.ts';
import { freePort } from '../engine/nats-server.ts';
import { startEngine, type Engine } from '../engine/start.ts';
import { ActorClient } from '../actors/client.ts';
import { StoreClient } from '../storage/client.ts';
import { serve, type HttpServer } from '../platform/serve.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from '../tests/support/nats.ts';
import { workspace, type Workspace } from './server/routes.ts';

const SHOTS = resolve('.test-data/screenshots');
const skip = existsSync(CHROMIUM) ? false : `no ${CHROMIUM}: run scripts/setup-browser.sh as root`;

let nats: TestNats;
let engine: Engine;
let ws: Workspace;
let http: HttpServer;
let browser: Browser;
let base = '';
const adminPassword = crypto.randomUUID();

before(async () => {
  if (skip) return;
  nats = await startTestNats();
  const enginePort = await freePort();
  const env = { NATS_URL: nats.urls[0], DATA_DIR: tempDir('web-e2e'), SURREAL_URL: 'mem://', PORT: String(enginePort), SMTP_PORT: String(await freePort()), SIP_PORT: String(await freePort()), MEDIA_WORKERS: '1', ACTOR_SHARDS: '4', WEBCHAT_SITES: 'shop:Shop', LOG_LEVEL: 'warn', ADMIN_PASSWORD: adminPassword };
  engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
  const nc = await nats.connect();
  ws = await workspace({ nc, actors: new ActorClient(nc, 4), store: new StoreClient(nc), log: pino({ level: 'warn' }), dataDir: env.DATA_DIR, env: { ADMIN_PASSWORD: adminPassword }, blobs: engine.blobs!.store });
  // The shop's own page with the widget from the engine; the workspace beside it, as the lead mounts it at `/`.
  const site = new Hono();
  site.get('/shop', (c) => c.html(`<!doctype html><html lang="zh-CN"><body><h1>Shop</h1><script src="http://127.0.0.1:${enginePort}/webchat/v1/widget.js" data-site="shop" data-lang="zh-CN"></script></body></html>`));
  site.route('/', ws.app);
  http = await serve(site.fetch, await freePort(), '127.0.0.1');
  base = `http://127.0.0.1:${http.port}`;
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await http?.close();
  await ws?.stop();
  await engine?.stop();
  await nats?.stop();
});

/** A session for API calls outside the browser (the admin, the second agent). */
async function apiSession(user: string, password: string) {
  const cookie = await loginCookie(base, user, password);
  return async <T = Record<string, unknown>>(path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = (await res.json()) as T;
    assert.ok(res.ok, `${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  };
}

async function signIn(page: Page, user: string, password: string) {
  await page.goto(base);
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('header nav');
}

// Plain JavaScript in a string: tsx's helpers (__name) do not exist inside the page.
const CONTRAST = `(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bgOf = (e) => {
      for (; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const out = [];
    let checked = 0;
    for (const e of Array.from(document.querySelectorAll('body *'))) {
      const own = Array.from(e.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !e.offsetParent) continue;
      checked++;
      const a = lum(rgb(getComputedStyle(e).color).slice(0, 3));
      const b = lum(bgOf(e));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) out.push(e.tagName + ' "' + e.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
    }
    return { out, checked };
  })()`;

/** Inputs without a label, text below 4.5:1 contrast against its effective background. */
async function accessibility(page: Page, view: string) {
  const unlabelled = await page.$$eval('input:not([type=hidden]),select,textarea', (els) =>
    els.filter((e) => !(e as HTMLInputElement).labels?.length && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map((e) => e.outerHTML.slice(0, 80)),
  );
  assert.deepEqual(unlabelled, [], `${view}: every input has a label`);
  const low = (await page.evaluate(CONTRAST)) as { out: string[]; checked: number };
  assert.ok(low.checked > 3, `${view}: some text was checked (${low.checked})`);
  assert.deepEqual(low.out, [], `${view}: body text contrast ≥ 4.5:1`);
}

/** The ids (or tag names) focus visits from `start` on, pressing Tab. */
async function tabOrder(page: Page, count: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('Tab');
    seen.push(await page.evaluate(() => document.activeElement?.id || `${document.activeElement?.tagName.toLowerCase()}:${document.activeElement?.getAttribute('type') ?? ''}`));
  }
  return seen;
}

test('agent accepts, replies, transfers; the visitor is answered; the wallboard follows', { skip, timeout: 90_000 }, async () => {
  const admin = await apiSession('admin', adminPassword);
  for (const [id, name] of [['ann', 'Ann'], ['bob', 'Bob'], ['sue', 'Sue']]) {
    await admin('/api/users', { id, name, role: id === 'sue' ? 'supervisor' : 'agent', password: `${id}-password-1`, queues: ['support'] });
  }
  await admin('/api/canned', { id: 'thanks', title: 'Thanks', text: '感谢您的耐心等待。' }).catch(() => assert.fail('admins add canned responses'));

  // Ann signs in: the login form is labelled, focus follows the visual order, text is readable.
  const ann = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  await ann.goto(base);
  await ann.waitForSelector('#login-user');
  await accessibility(ann, 'login');
  await ann.focus('body');
  assert.deepEqual(await tabOrder(ann, 4), ['lang', 'login-user', 'login-password', 'button:submit'], 'login focus order');
  await ann.selectOption('#lang', 'en');
  await signIn(ann, 'ann', 'ann-password-1');
  await ann.selectOption('#presence', 'available');
  await waitFor('ann available', async () => (await ann.getAttribute('[data-presence]', 'data-presence')) === 'available', 10_000, 100);

  // The visitor writes from the shop's page through the widget.
  const visitor = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  await visitor.goto(`${base}/shop`);
  await visitor.click('[data-cc-webchat] button.l');
  await visitor.fill('#cc-in', '你好，我的订单还没到');
  await visitor.click('[data-cc-webchat] form button[type=submit]');

  // The offer shows with its countdown; Ann accepts it with the keyboard shortcut.
  const offer = await ann.waitForSelector('[data-offer]', { timeout: 20_000 });
  assert.match((await offer.textContent()) ?? '', /expires in \d+ s/);
  await ann.keyboard.press('a');
  const item = await ann.waitForSelector('li[data-conversation]', { timeout: 15_000 });
  const conversationId = (await item.getAttribute('data-conversation'))!;
  assert.match((await item.textContent()) ?? '', /active/);
  await ann.screenshot({ path: join(SHOTS, 'inbox.png') });

  // Sue watches the wallboard: Ann holds one conversation.
  const sue = await (await browser.newContext()).newPage();
  await signIn(sue, 'sue', 'sue-password-1');
  await sue.click('a[href="#wallboard"]');
  await sue.waitForSelector('tr[data-agent=ann] td[data-tasks="1"]', { timeout: 10_000 });
  await sue.waitForSelector('tr[data-channel=webchat]');
  await accessibility(sue, 'wallboard');

  // The conversation view: the customer's history and profile; a reply with a canned response.
  await item.click();
  await ann.waitForSelector('.msg[data-direction=in]');
  assert.match((await ann.textContent('.history')) ?? '', /我的订单还没到/);
  await ann.keyboard.press('r');
  assert.equal(await ann.evaluate(() => document.activeElement?.id), 'reply-text', 'r focuses the reply box');
  assert.deepEqual(await tabOrder(ann, 3), ['reply-canned', 'reply-file', 'button:submit'], 'reply focus order');
  await ann.selectOption('#reply-canned', 'thanks');
  assert.equal(await ann.inputValue('#reply-text'), '感谢您的耐心等待。');
  await ann.fill('#reply-text', '您好，包裹明天送达。');
  await ann.click('.replybox button[type=submit]');
  await visitor.waitForSelector('[data-cc-webchat] >> text=您好，包裹明天送达。', { timeout: 15_000 });
  await ann.waitForSelector('.msg[data-direction=out]');
  await ann.waitForSelector('[data-delivery=sent], [data-delivery=delivered], [data-delivery=read]', { timeout: 10_000 });
  await ann.waitForSelector(`li[data-conversation="${conversationId}"]:not(:has(.badge))`, { timeout: 5_000 });
  await accessibility(ann, 'conversation');
  await ann.screenshot({ path: join(SHOTS, 'conversation.png') });

  // Transfer to Bob with a note (keyboard shortcut t); Bob accepts; the wallboard moves the load.
  await ann.focus('.history');
  await ann.keyboard.press('t');
  await ann.waitForSelector('dialog[open] #transfer-to option[value="agent/bob"]', { state: 'attached' });
  await accessibility(ann, 'transfer dialog');
  const bob = await apiSession('bob', 'bob-password-1');
  await bob('/api/presence', { presence: 'available' });
  await ann.selectOption('#transfer-to', 'agent/bob');
  await ann.fill('#transfer-note', 'Customer waits for order 1042');
  await ann.click('dialog button[type=submit]');
  const bobOffer = await waitFor('offer to bob', async () => (await bob<{ offers: { reservationId: string; task: { id: string } }[] }>('/api/me')).offers.find((o) => o.task.id === conversationId), 15_000, 200);
  await bob(`/api/offers/${bobOffer.reservationId}/accept`, {});
  await waitFor('bob holds it', async () => (await bob<{ conversations: { id: string }[] }>('/api/inbox')).conversations.some((c) => c.id === conversationId), 15_000, 200);
  const detail = await bob<{ conversation: { transfers: { to: string; note: string }[] } }>(`/api/conversations/${conversationId}`);
  assert.deepEqual(detail.conversation.transfers.map((t) => [t.to, t.note]), [['agent/bob', 'Customer waits for order 1042']]);
  await sue.waitForSelector('tr[data-agent=bob] td[data-tasks="1"]', { timeout: 15_000 });
  await sue.waitForSelector('tr[data-agent=ann] td[data-tasks="0"]', { timeout: 15_000 });
  await ann.waitForSelector(`li[data-conversation="${conversationId}"]`, { state: 'detached', timeout: 15_000 });
  await sue.screenshot({ path: join(SHOTS, 'wallboard.png') });

  // Chinese is one switch away, and stays.
  await ann.selectOption('#lang', 'zh-CN');
  await ann.waitForSelector('text=收件箱');
  for (const f of ['inbox.png', 'conversation.png', 'wallboard.png']) assert.ok(existsSync(join(SHOTS, f)), `${f} written`);
});
