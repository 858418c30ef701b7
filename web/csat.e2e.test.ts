// Customer satisfaction end to end on one whole engine (real nats-server, in-memory SurrealDB, the widget on
// a shop page in headless Chromium): a visitor chats, an agent answers and closes, the widget asks for a
// rating, the visitor rates 4 with a comment; the rating is in the conversation actor, in the customer's
// history and on the supervisor's reports page. A second rating, a rating before the close and a rating of
// someone else's conversation are refused with the reason (raw protocol v3 sockets, as any client).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { apiSession, NO_CHROMIUM, signIn, startWorkspaceStack, type ApiCall, type WorkspaceStack } from './browser.testing.ts';
import { conversationOf } from '../tests/support/engine.ts';
import { waitFor } from '../tests/support/nats.ts';

const SHOTS = resolve('.test-data/screenshots');
const skip = NO_CHROMIUM;

let s: WorkspaceStack;
let admin: ApiCall;

before(async () => {
  if (skip) return;
  s = await startWorkspaceStack('web-csat');
  admin = await apiSession(s.base, 'admin', s.adminPassword);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await s?.stop();
});

type Frame = Record<string, unknown> & { type: string };

/** A protocol v3 socket to the engine's web chat, as the widget or an app speaks it. */
async function chatSocket(hello: Record<string, unknown> = {}): Promise<{ welcome: Frame; send(f: object): void; next(pred: (f: Frame) => boolean): Promise<Frame>; close(): void }> {
  const ws = new WebSocket(`ws://127.0.0.1:${s.engine.http!.port}/webchat/v1/ws?site=shop`);
  const frames: Frame[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Frame));
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  ws.send(JSON.stringify({ type: 'hello', v: 3, ...hello }));
  let seen = 0;
  const next = (pred: (f: Frame) => boolean) =>
    waitFor('frame', () => {
      const i = frames.findIndex((f, j) => j >= seen && pred(f));
      if (i < 0) return undefined;
      seen = i + 1;
      return frames[i];
    }, 10_000, 20);
  const welcome = await next((f) => f.type === 'welcome');
  return { welcome, send: (f) => ws.send(JSON.stringify(f)), next, close: () => ws.close() };
}

type Report = { channel: string; conversations: number; csat: number | null; ratings: number };

test('a visitor rates a chat the agent closed: the widget asks, the rating is kept once and the reports show CSAT', { skip, timeout: 120_000 }, async () => {
  await admin('/api/users', { id: 'cara', name: 'Cara', role: 'agent', password: 'cara-password-1', queues: ['support'] });
  await admin('/api/users', { id: 'sam', name: 'Sam', role: 'supervisor', password: 'sam-password-1', queues: [] });
  const cara = await apiSession(s.base, 'cara', 'cara-password-1');
  await cara('/api/presence', { presence: 'available' });

  // The visitor writes from the shop's page (the widget speaks Chinese there).
  const visitor = await (await s.browser.newContext({ locale: 'zh-CN' })).newPage();
  await visitor.goto(`${s.base}/shop`);
  await visitor.click('[data-cc-webchat] button.l');
  await visitor.fill('#cc-in', '我的订单还没有到');
  await visitor.click('[data-cc-webchat] form button[type=submit]');

  // Cara is offered the chat, takes it and answers.
  const offer = await waitFor('offer to cara', async () => (await cara<{ offers: { reservationId: string; task: { id: string } }[] }>('/api/me')).offers[0], 20_000, 100);
  const cid = offer.task.id;
  await cara(`/api/offers/${offer.reservationId}/accept`, {});
  await waitFor('chat active', async () => (await conversationOf(s.actors, cid)).value === 'active', 10_000, 100);
  await cara(`/api/conversations/${cid}/reply`, { text: '已为您催促快递，明天送达。' });
  await visitor.waitForSelector('[data-cc-webchat] .b:has-text("明天送达")', { timeout: 10_000 });

  // The visitor's own socket, beside the page: a rating while the chat goes on is refused by the conversation.
  const visitorId = JSON.parse((await visitor.evaluate(() => localStorage.getItem('ccwc:shop::visitor')))!) as string;
  const same = await chatSocket({ visitorId });
  assert.equal(same.welcome.conversationId, cid, 'the same visitor, the same conversation');
  same.send({ type: 'csat', conversationId: cid, score: 5 });
  assert.deepEqual(await same.next((f) => f.type === 'error'), { type: 'error', code: 'csat_refused', reason: 'the conversation is still going on: rate it once it is closed', ref: cid });

  // Cara wraps up and closes: the widget says so and asks for a rating.
  await cara(`/api/conversations/${cid}/wrapup`, { disposition: 'resolved: courier chased' });
  const form = await visitor.waitForSelector('[data-cc-webchat] .r[role=group]', { timeout: 10_000 });
  assert.equal(await form.getAttribute('aria-label'), '您对本次服务满意吗？');
  assert.ok(await visitor.$('[data-cc-webchat] .n:has-text("对话已结束")'), 'the end of the conversation is shown');
  const labels = await form.$$eval('div button', (bs) => bs.map((b) => `${b.textContent}=${b.getAttribute('aria-label')}`));
  assert.deepEqual(labels, ['1=1 分（满分 5 分）', '2=2 分（满分 5 分）', '3=3 分（满分 5 分）', '4=4 分（满分 5 分）', '5=5 分（满分 5 分）'], 'each score has an accessible name');
  assert.equal(await form.$eval('textarea', (t) => (t as HTMLTextAreaElement).labels?.[0]?.textContent), '留言（可选）', 'the comment box is labelled');
  // Focus goes through the scores, then the comment, then Send.
  await visitor.focus('[data-cc-webchat] .r div button:first-child');
  const order: string[] = [];
  for (let i = 0; i < 6; i++) {
    await visitor.keyboard.press('Tab');
    order.push(await visitor.evaluate(() => {
      const a = document.querySelector('[data-cc-webchat]')!.shadowRoot!.activeElement as HTMLElement;
      return a.id || a.textContent || '';
    }));
  }
  assert.deepEqual(order, ['2', '3', '4', '5', 'cc-rc', '发送'], 'rating focus order');

  await visitor.click('[data-cc-webchat] .r button[aria-label="4 分（满分 5 分）"]');
  assert.equal(await visitor.getAttribute('[data-cc-webchat] .r button[aria-label="4 分（满分 5 分）"]', 'aria-pressed'), 'true');
  await visitor.fill('#cc-rc', '回复很快，谢谢');
  await visitor.screenshot({ path: join(SHOTS, 'csat-widget.png') });
  await visitor.click('[data-cc-webchat] .r > button');
  await visitor.waitForSelector('[data-cc-webchat] .n:has-text("感谢您的评价：4 分（满分 5 分）。")', { timeout: 10_000 });
  await visitor.waitForSelector('[data-cc-webchat] .r', { state: 'detached', timeout: 5000 });

  const rated = (await conversationOf(s.actors, cid)).context as { csat?: { score: number; comment?: string; channel: string } };
  assert.deepEqual({ ...rated.csat, at: 0 }, { score: 4, comment: '回复很快，谢谢', channel: 'webchat', at: 0 }, 'the conversation actor holds the rating');

  // A second rating from the same visitor is refused; the same one sent again (a client's resend) is answered as taken.
  same.send({ type: 'csat', conversationId: cid, score: 1, comment: 'changed my mind' });
  assert.deepEqual(await same.next((f) => f.type === 'error'), { type: 'error', code: 'csat_refused', reason: 'this conversation was already rated (4 of 5)', ref: cid });
  same.send({ type: 'csat', conversationId: cid, score: 4, comment: '回复很快，谢谢' });
  assert.deepEqual(await same.next((f) => f.type === 'csat.ack'), { type: 'csat.ack', conversationId: cid, score: 4, duplicate: true });
  same.close();
  // Someone else's conversation: another visitor cannot rate it.
  const stranger = await chatSocket();
  stranger.send({ type: 'csat', conversationId: cid, score: 1 });
  assert.deepEqual(await stranger.next((f) => f.type === 'error'), { type: 'error', code: 'csat_refused', reason: 'you can only rate your own conversation', ref: cid });
  stranger.close();

  // After a reload the page shows the thanks, and no rating form again.
  await visitor.reload();
  await visitor.click('[data-cc-webchat] button.l');
  await visitor.waitForSelector('[data-cc-webchat] .n:has-text("感谢您的评价")', { timeout: 10_000 });
  assert.equal(await visitor.$('[data-cc-webchat] .r'), null);

  // The customer's history keeps it, once, as a system message.
  const sam = await apiSession(s.base, 'sam', 'sam-password-1');
  const view = await sam<{ customer: { messages: { direction: string; author?: string; text?: string }[] } }>(`/api/conversations/${cid}`);
  const kept = view.customer.messages.filter((m) => m.author === 'csat');
  assert.deepEqual(kept.map((m) => [m.direction, m.text]), [['system', 'Customer rating: 4 of 5\n“回复很快，谢谢”']]);

  // The report summary written at the close is rewritten with the score; the page shows 4.0 from 1 rating.
  const report = await waitFor('webchat CSAT in the report', async () => {
    const r = await sam<{ channels: Report[] }>(`/api/reports?from=0&to=${Date.now() + 86400_000}`);
    return r.channels.find((c) => c.channel === 'webchat' && c.csat !== null);
  }, 15_000, 200);
  assert.deepEqual({ csat: report.csat, ratings: report.ratings, conversations: report.conversations }, { csat: 4, ratings: 1, conversations: 1 });
  const page = await (await s.browser.newContext({ locale: 'en-US' })).newPage();
  await signIn(page, s.base, 'sam', 'sam-password-1');
  await page.click('a[href="#reports"]');
  const row = await page.waitForSelector('tr[data-channel=webchat]', { timeout: 10_000 });
  const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent?.trim()));
  const heads = await page.$$eval('thead th', (ths) => ths.map((th) => th.textContent?.trim()));
  assert.deepEqual(heads.slice(-2), ['CSAT (1-5)', 'Ratings']);
  assert.deepEqual(cells.slice(-2), ['4.0', '1'], 'webchat: CSAT 4.0 from one rating');
  await page.screenshot({ path: join(SHOTS, 'csat-reports.png') });
});
