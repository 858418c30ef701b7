// One person, three channels: an app user (signed token with phone and email), a mail from that address
// (DKIM passed at the receiving server) and an SMS from that number end up as one customer with one
// history on a real engine; the agent's reply reaches each on its own channel (the app socket, the SMTP
// relay, the SMSC).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import smpp from 'smpp';
import { signUserToken } from '../edges/webchat/token.ts';
import { agentOnDuty, answer as answerBy, chatSocket, conversationOf, startEngineWithPeers, type EngineWithPeers, type TestEngine } from './support/engine.ts';
import { waitFor } from './support/nats.ts';
import { submittedText, type TestRelay, type TestSmsc } from './support/peers.ts';

const APP_SECRET = randomBytes(32).toString('base64url');
const PHONE = '+8613812345678';
const EMAIL = 'alice@example.test';

let t: TestEngine;
let relay: TestRelay;
let smsc: TestSmsc;
let peers: EngineWithPeers;

before(async () => {
  peers = await startEngineWithPeers('one-customer', { APP_KEYS: `shopapp:${APP_SECRET}` });
  ({ t, relay, smsc } = peers);
  await agentOnDuty(t.actors, 'ann');
});

after(() => peers?.stop());

const conversation = (id: string) => conversationOf(t.actors, id);
const answer = (id: string) => answerBy(t.actors, 'ann', id);

test('an app user, a mail and an SMS from the same person are one customer; each reply leaves on its own channel', { timeout: 90_000 }, async () => {
  // 1. In the app: a user the app vouches for, with their phone and email.
  const user = { id: 'u-1', name: 'Alice', phone: PHONE, email: EMAIL };
  const { ws, frames } = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?app=shopapp`, { user, token: await signUserToken(APP_SECRET, user, Math.floor(Date.now() / 1000) + 600) });
  ws.send(JSON.stringify({ type: 'message', clientMessageId: 'a1', text: 'My order 1042 is late' }));
  const appConversation = String((await waitFor('ack', () => frames.find((f) => f.type === 'ack'), 20_000)).conversationId);

  // 2. By email, from the same address, DKIM-checked by the receiving mail server.
  const mailer = nodemailer.createTransport({ host: '127.0.0.1', port: t.smtpPort, secure: false, ignoreTLS: true });
  await mailer.sendMail({
    from: `Alice <${EMAIL}>`,
    to: 'support@shop.test',
    subject: 'Order 1042',
    text: 'Any news on my order?',
    messageId: '<order1042@example.test>',
    headers: { 'Authentication-Results': 'mx.shop.test; dkim=pass header.d=example.test; spf=pass smtp.mailfrom=example.test; dmarc=pass' },
  });

  // 3. By SMS, from the same number.
  assert.equal(await new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: '8613812345678', destination_addr: '10690001', short_message: 'Please call me' }), (r) => ok(r.command_status))), 0);

  // One customer, one history across the three channels.
  const found = await t.store.search({ phone: PHONE, viewer: 'system' });
  assert.equal(found.customers.length, 1);
  const view = await waitFor('three channels in one history', async () => {
    const v = await t.store.view({ customerId: found.customers[0].id, viewer: 'system' });
    return new Set(v.messages.map((m) => m.channel)).size === 3 ? v : undefined;
  }, 20_000, 200);
  assert.deepEqual(new Set(view.messages.map((m) => m.channel)), new Set(['app', 'email', 'sms']));
  assert.equal((await t.store.search({ email: EMAIL, viewer: 'system' })).customers[0].id, found.customers[0].id);
  const byChannel = (ch: string) => view.messages.find((m) => m.channel === ch)!.conversationId.split(':')[1];
  // The customer actor knows every handle that reached it.
  const customer = `customer/${found.customers[0].id.split(':')[1]}`;
  const known = await waitFor('three identities on the customer', async () => {
    const c = await t.actors.ask<{ identities: { channel: string; handle: string }[] }>(customer, { type: 'get' });
    return c.identities.length === 3 ? c.identities : undefined;
  }, 10_000, 100);
  assert.deepEqual(new Set(known.map((i) => i.channel)), new Set(['app', 'email', 'sms']));
  assert.ok(known.some((i) => i.channel === 'email' && i.handle === EMAIL));
  assert.equal(byChannel('app'), appConversation);

  // The agent answers each; each reply goes back where the customer wrote.
  for (const ch of ['app', 'email', 'sms']) {
    await answer(byChannel(ch));
    await t.actors.tell(`conversation/${byChannel(ch)}`, { type: 'agent.reply', messageId: `r-${ch}`, agent: 'ann', text: `Reply on ${ch}: it ships today.` });
  }
  await waitFor('app reply on the socket', () => frames.find((f) => f.type === 'message' && f.from === 'agent' && String(f.text).includes('on app')), 20_000, 100);
  const mail = await waitFor('email reply at the relay', () => relay.relayed.find((m) => m.text?.includes('on email')), 20_000, 100);
  assert.equal(mail.inReplyTo, '<order1042@example.test>');
  const sms = await waitFor('SMS reply at the SMSC', () => smsc.submits.find((p) => submittedText(p).includes('on sms')), 20_000, 100);
  assert.equal(sms.destination_addr, '8613812345678');
  for (const ch of ['app', 'email', 'sms']) {
    await waitFor(`${ch} reply sent`, async () => (await conversation(byChannel(ch))).context.deliveries?.[`r-${ch}`]?.state === 'sent', 10_000, 100);
  }
  ws.close();
});

test('an SMS that is only STOP opts the sender out of SMS (kept in the history); START opts them back in', { timeout: 60_000 }, async () => {
  const deliver = (text: string) =>
    new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: '8613900001111', destination_addr: '10690001', short_message: text }), (r) => ok(r.command_status)));
  assert.equal(await deliver('Stop.'), 0);
  const [who] = (await waitFor('the sender is a customer', async () => ((r) => (r.customers.length ? r : undefined))(await t.store.search({ phone: '+8613900001111', viewer: 'system' })))).customers;
  const customer = `customer/${who.id.split(':')[1]}`;
  const check = () => t.actors.ask<{ allowed: boolean; reason: string }>(customer, { type: 'contact.check', channel: 'sms' });
  const out = await waitFor('opted out', async () => ((c) => (c.allowed ? undefined : c))(await check()), 10_000, 100);
  assert.match(out.reason, /opted out/i);
  const c = await t.actors.ask<{ consent: Record<string, { optedIn: boolean; source: string }> }>(customer, { type: 'get' });
  assert.deepEqual({ ...c.consent.sms, at: undefined }, { optedIn: false, source: 'sms keyword "Stop."', at: undefined });
  const history = await t.store.view({ customerId: who.id, viewer: 'system' });
  assert.equal(history.messages.at(-1)?.text, 'Stop.', 'the message itself is kept, for agents to see');
  // A sentence that merely contains the word is a message, not a keyword.
  assert.equal(await deliver('please stop calling me at work'), 0);
  assert.equal(await deliver('START'), 0);
  await waitFor('opted back in', async () => (await check()).allowed, 10_000, 100);
});
