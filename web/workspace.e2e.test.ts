// The workspace end to end in headless Chromium (Debian's, driven by playwright-core) on a whole engine
// on real parts: an agent signs in, accepts a web chat visitor's offer (the visitor is a second page
// using the widget), replies, transfers to a second agent, and a supervisor's wallboard shows it live.
// Screenshots go to .test-data/screenshots/; accessibility basics are checked on the main views.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { accessibility, apiSession as session, NO_CHROMIUM, signIn as signInAt, startWorkspaceStack, tabOrder, type WorkspaceStack } from './browser.testing.ts';
import { waitFor } from '../tests/support/nats.ts';

const SHOTS = resolve('.test-data/screenshots');
const skip = NO_CHROMIUM;

let stack: WorkspaceStack;
let base = '';
let adminPassword = '';

before(async () => {
  if (skip) return;
  stack = await startWorkspaceStack('web-e2e');
  ({ base, adminPassword } = stack);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await stack?.stop();
});

const apiSession = (user: string, password: string) => session(base, user, password);
const signIn = (page: Parameters<typeof signInAt>[0], user: string, password: string) => signInAt(page, base, user, password);
const newPage = async (locale?: string) => (await stack.browser.newContext(locale ? { locale } : {})).newPage();

test('agent accepts, replies, transfers; the visitor is answered; the wallboard follows', { skip, timeout: 90_000 }, async () => {
  const admin = await apiSession('admin', adminPassword);
  for (const [id, name] of [['ann', 'Ann'], ['bob', 'Bob'], ['sue', 'Sue']]) {
    await admin('/api/users', { id, name, role: id === 'sue' ? 'supervisor' : 'agent', password: `${id}-password-1`, queues: ['support'] });
  }
  await admin('/api/canned', { id: 'thanks', title: 'Thanks', text: '感谢您的耐心等待。' }).catch(() => assert.fail('admins add canned responses'));

  // Ann signs in: the login form is labelled, focus follows the visual order, text is readable.
  const ann = await newPage('zh-CN');
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
  const visitor = await newPage('zh-CN');
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
  const sue = await newPage();
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
  const detail = await bob<{ conversation: { transfers: { to: string; note: string }[] }; customer: { messages: { direction: string; text?: string }[] } }>(`/api/conversations/${conversationId}`);
  assert.deepEqual(detail.conversation.transfers.map((t) => [t.to, t.note]), [['agent/bob', 'Customer waits for order 1042']]);
  // The history goes with it: bob reads what the customer wrote and what ann answered before him.
  const before = detail.customer.messages;
  assert.ok(before.some((m) => m.direction === 'in' && m.text?.includes('我的订单还没到')), 'the customer’s message');
  assert.ok(before.some((m) => m.direction === 'out' && m.text === '您好，包裹明天送达。'), 'ann’s reply');
  await sue.waitForSelector('tr[data-agent=bob] td[data-tasks="1"]', { timeout: 15_000 });
  await sue.waitForSelector('tr[data-agent=ann] td[data-tasks="0"]', { timeout: 15_000 });
  await ann.waitForSelector(`li[data-conversation="${conversationId}"]`, { state: 'detached', timeout: 15_000 });
  await sue.screenshot({ path: join(SHOTS, 'wallboard.png') });

  // Chinese is one switch away, and stays.
  await ann.selectOption('#lang', 'zh-CN');
  await ann.waitForSelector('text=收件箱');
  for (const f of ['inbox.png', 'conversation.png', 'wallboard.png']) assert.ok(existsSync(join(SHOTS, f)), `${f} written`);
});
