// What the workspace's browser tests share: Debian's Chromium started headless on this closed network,
// and a signed-in API session outside the browser.
import assert from 'node:assert/strict';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

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
