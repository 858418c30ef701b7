// What the workspace's browser tests share: Debian's Chromium started headless on this closed network,
// a whole engine with the workspace and a shop page carrying the chat widget, signed-in API sessions
// outside the browser, and the accessibility checks (labels, contrast, focus order).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Hono } from 'hono';
import pino from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ActorClient } from '../actors/client.ts';
import { loadConfig } from '../engine/config.ts';
import { freePort } from '../engine/nats-server.ts';
import { startEngine, type Engine } from '../engine/start.ts';
import { serve, type HttpServer } from '../platform/serve.ts';
import { StoreClient } from '../storage/client.ts';
import { startTestNats, tempDir, type TestNats } from '../tests/support/nats.ts';
import { workspace, type Workspace } from './server/routes.ts';

export const CHROMIUM = '/usr/bin/chromium';
/** The `skip` option of a browser test: false, or why it cannot run here. */
export const NO_CHROMIUM: string | false = existsSync(CHROMIUM) ? false : `no ${CHROMIUM}: run scripts/setup-browser.sh as root`;

/** playwright-core gives each launch a fresh temporary profile (its own --user-data-dir). */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/** Signs in through the API and answers the session cookie. */
export async function loginCookie(base: string, user: string, password: string): Promise<string> {
  const r = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
  assert.equal(r.status, 200, await r.clone().text());
  return (r.headers.get('set-cookie') ?? '').split(';')[0];
}

export type ApiCall = <T = Record<string, unknown>>(path: string, body?: unknown, method?: string) => Promise<T>;

/** A signed-in session for API calls outside the browser; a non-2xx answer fails the test with the reason. */
export async function apiSession(base: string, user: string, password: string): Promise<ApiCall> {
  const cookie = await loginCookie(base, user, password);
  return async <T = Record<string, unknown>>(path: string, body?: unknown, method?: string): Promise<T> => {
    const res = await fetch(`${base}${path}`, { method: method ?? (body === undefined ? 'GET' : 'POST'), headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = (await res.json()) as T;
    assert.ok(res.ok, `${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  };
}

/** Signs in through the login form. */
export async function signIn(page: Page, base: string, user: string, password: string): Promise<void> {
  await page.goto(base);
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('header nav');
}

export interface WorkspaceStack {
  nats: TestNats;
  engine: Engine;
  /** The workspace the browser talks to (beside the engine's own, as the lead mounts it at `/`). */
  ws: Workspace;
  actors: ActorClient;
  store: StoreClient;
  /** The workspace's origin; `${base}/shop` is the shop's page with the chat widget. */
  base: string;
  adminPassword: string;
  browser: Browser;
  /** The engine's DATA_DIR (sipp's working directory in the call tests). */
  dir: string;
  sipPort: number;
  stop(): Promise<void>;
}

/** A whole engine on real parts (nats-server, in-memory SurrealDB, file blobs), the workspace, a shop page and Chromium. */
export async function startWorkspaceStack(name: string, extraEnv: Record<string, string> = {}, chromiumArgs: string[] = []): Promise<WorkspaceStack> {
  const nats = await startTestNats();
  const enginePort = await freePort();
  const sipPort = await freePort();
  const adminPassword = crypto.randomUUID();
  const env = { NATS_URL: nats.urls[0], DATA_DIR: tempDir(name), SURREAL_URL: 'mem://', PORT: String(enginePort), SMTP_PORT: String(await freePort()), SIP_PORT: String(sipPort), MEDIA_WORKERS: '1', ACTOR_SHARDS: '4', WEBCHAT_SITES: 'shop:Shop', LOG_LEVEL: 'warn', ADMIN_PASSWORD: adminPassword, ...extraEnv };
  const engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
  const nc = await nats.connect();
  const actors = new ActorClient(nc, 4);
  const store = new StoreClient(nc);
  const ws = await workspace({ nc, actors, store, log: pino({ level: 'warn' }), dataDir: env.DATA_DIR, env, blobs: engine.blobs!.store });
  // The shop's own page with the widget from the engine; the workspace beside it.
  const site = new Hono();
  site.get('/shop', (c) => c.html(`<!doctype html><html lang="zh-CN"><body><h1>Shop</h1><script src="http://127.0.0.1:${enginePort}/webchat/v1/widget.js" data-site="shop" data-lang="zh-CN"></script></body></html>`));
  site.route('/', ws.app);
  const http: HttpServer = await serve(site.fetch, await freePort(), '127.0.0.1');
  const browser = await launchChromium(chromiumArgs);
  return {
    nats, engine, ws, actors, store, browser, adminPassword, sipPort,
    dir: env.DATA_DIR,
    base: `http://127.0.0.1:${http.port}`,
    async stop() {
      await browser.close();
      await http.close();
      await ws.stop();
      await engine.stop();
      await nats.stop();
    },
  };
}

// Plain JavaScript in a string: tsx's helpers (__name) do not exist inside the page.
const CONTRAST = `(() => {
    const rgb = (s) => (s.match(/[\\d.]+/g) ?? []).map(Number);
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
export async function accessibility(page: Page, view: string): Promise<void> {
  const unlabelled = await page.$$eval('input:not([type=hidden]),select,textarea', (els) =>
    els.filter((e) => !(e as HTMLInputElement).labels?.length && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map((e) => e.outerHTML.slice(0, 80)),
  );
  assert.deepEqual(unlabelled, [], `${view}: every input has a label`);
  const low = (await page.evaluate(CONTRAST)) as { out: string[]; checked: number };
  assert.ok(low.checked > 3, `${view}: some text was checked (${low.checked})`);
  assert.deepEqual(low.out, [], `${view}: body text contrast ≥ 4.5:1`);
}

/** The ids (or tag:type) focus visits from where it is, pressing Tab `count` times. */
export async function tabOrder(page: Page, count: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('Tab');
    seen.push(await page.evaluate(() => document.activeElement?.id || `${document.activeElement?.tagName.toLowerCase()}:${document.activeElement?.getAttribute('type') ?? ''}`));
  }
  return seen;
}
