// Proactive outreach end to end on a real engine: a campaign reaches one customer by SMS (an SMSC on
// loopback) and another by email (an SMTP relay on loopback), each on the channel they prefer; a customer
// who opted out of SMS is skipped with the reason; the replies (an SMS, and a mail sent over STARTTLS to
// our listener) land in the conversations the campaign opened. A repeated campaign sends nothing twice.
// An agent opens a conversation over HTTP on the customer's preferred channel, and is refused (403 with
// the opt-out) where the customer opted out.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import nodemailer from 'nodemailer';
import smpp from 'smpp';
import { selfSignedCert } from '../edges/email/tls.ts';
import { OutreachClient, type CampaignReply } from '../edges/outreach-api.ts';
import { loginCookie } from '../web/browser.testing.ts';
import { agentOnDuty, conversationOf, startEngineWithPeers, type EngineWithPeers, type TestEngine } from './support/engine.ts';
import { tempDir, waitFor } from './support/nats.ts';
import type { TestRelay, TestSmsc } from './support/peers.ts';

const ADMIN_PASSWORD = randomBytes(12).toString('base64url');
const MX = 'mx.shop.test';
const tls = selfSignedCert([MX]);

let t: TestEngine;
let nc: NatsConnection;
let outreach: OutreachClient;
let relay: TestRelay;
let smsc: TestSmsc;
let peers: EngineWithPeers;
const ids = { amy: '', bo: '', cy: '' };

before(async () => {
  // The listener's certificate from PEM files, as an operator gives it (SMTP_TLS_CERT / SMTP_TLS_KEY).
  const dir = tempDir('outreach-tls');
  writeFileSync(join(dir, 'cert.pem'), tls.cert);
  writeFileSync(join(dir, 'key.pem'), tls.key, { mode: 0o600 });
  peers = await startEngineWithPeers('outreach', { SMTP_TLS_CERT: join(dir, 'cert.pem'), SMTP_TLS_KEY: join(dir, 'key.pem'), SMTP_HOSTNAME: MX, ADMIN_PASSWORD });
  ({ t, relay, smsc } = peers);
  nc = await t.nats.connect();
  outreach = new OutreachClient(nc);
  await agentOnDuty(t.actors, 'ann');

  // Three customers in the identity graph, with what their actors learned from use.
  const at = Date.now();
  const phone = (n: string, name: string) => t.store.resolve({ channel: 'phone', handle: n, displayName: name, phone: n, verified: { phone: true }, at });
  ids.amy = (await phone('+8613800000001', 'Amy')).customerId;
  ids.bo = (await phone('+8613800000002', 'Bo')).customerId;
  ids.cy = (await phone('+8613800000003', 'Cy')).customerId;
  // Bo's mailbox is linked by his verified phone: one customer, two ways to reach him.
  const boMail = await t.store.resolve({ channel: 'email', handle: 'bo@example.test', displayName: 'Bo', email: 'bo@example.test', phone: '+8613800000002', verified: { phone: true, email: true }, at });
  assert.equal(boMail.customerId, ids.bo);
  const learn = (id: string, event: Record<string, unknown> & { type: string }) => t.actors.tell(`customer/${id.split(':')[1]}`, { at, ...event });
  await learn(ids.amy, { type: 'message.inbound', channel: 'sms' });
  await learn(ids.bo, { type: 'message.inbound', channel: 'sms' });
  await learn(ids.bo, { type: 'message.inbound', channel: 'email' });
  await learn(ids.bo, { type: 'message.inbound', channel: 'email' });
  await learn(ids.cy, { type: 'message.inbound', channel: 'sms' });
  await learn(ids.cy, { type: 'consent.opt_out', channel: 'sms', source: 'sms STOP' });
});

after(async () => {
  await nc?.close();
  await peers?.stop();
});

const smsText = (p: smpp.PDU) => String((p.short_message as smpp.DecodedMessage).message ?? p.short_message);
const campaign = () =>
  outreach.campaign({
    campaignId: 'ships-today',
    template: { text: 'Hi {{name}}, your order {{order}} ships today. Reply here with any question.', subject: 'Your order ships today' },
    ratePerSec: 4,
    recipients: [
      { customerId: ids.amy, vars: { order: '1001' } },
      { customerId: ids.bo, vars: { order: '1002' } },
      { customerId: ids.cy, vars: { order: '1003' } },
      { customerId: 'customer:nobody' },
    ],
  });

let first: CampaignReply;

test('a campaign reaches each customer on their preferred channel and skips the opted-out with the reason', { timeout: 60_000 }, async (ctx) => {
  const t0 = performance.now();
  first = await campaign();
  const took = performance.now() - t0;
  const [amy, bo, cy, nobody] = first.results;
  assert.deepEqual([first.sent, first.skipped, first.failed], [2, 2, 0]);
  assert.equal(amy.status, 'sent');
  assert.equal(amy.channel, 'sms');
  assert.equal(bo.status, 'sent');
  assert.equal(bo.channel, 'email', 'Bo writes by email more than by SMS');
  assert.match(bo.reason ?? '', /^preferred: most used around/);
  assert.equal(cy.status, 'skipped');
  assert.match(cy.reason ?? '', /^outreach refused: every known channel is opted out; opted out: sms/);
  assert.equal(nobody.status, 'skipped');
  assert.match(nobody.reason ?? '', /no such customer/);
  // Paced at 4 a second: the second send waited its turn.
  assert.ok(took >= 240, `two sends at 4/s took ${took.toFixed(0)} ms`);
  ctx.diagnostic(`campaign of 4 (2 sent, 2 skipped) in ${took.toFixed(0)} ms`);

  // The SMS left through the SMSC, the mail through the relay, with the template filled in.
  const sms = await waitFor('SMS at the SMSC', () => smsc.submits.find((p) => p.destination_addr === '8613800000001'), 20_000, 100);
  assert.equal(smsText(sms), 'Hi Amy, your order 1001 ships today. Reply here with any question.');
  assert.equal(smsc.submits.filter((p) => p.destination_addr === '8613800000003').length, 0, 'nothing to the opted-out number');
  const mail = await waitFor('mail at the relay', () => relay.relayed.find((m) => m.text?.includes('order 1002')), 20_000, 100);
  assert.equal(mail.subject, 'Your order ships today');
  assert.equal((mail.to as { value: { address: string }[] }).value[0].address, 'bo@example.test');
  assert.equal(mail.replyTo?.value[0].address, `support+c-${bo.conversationId}@shop.test`);
  assert.equal(mail.text?.trim(), 'Hi Bo, your order 1002 ships today. Reply here with any question.');

  // Delivery states reach the conversations; the SMSC's receipt makes the SMS delivered.
  for (const r of [amy, bo]) await waitFor(`${r.channel} sent`, async () => (await conversationOf(t.actors, r.conversationId!)).context.deliveries?.[r.messageId!]?.state === 'sent', 10_000, 100);
  const receipt = `id:SM${smsc.submits.indexOf(sms) + 1} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:`;
  assert.equal(await new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: '8613800000001', destination_addr: '10690001', esm_class: 0x04, short_message: receipt }), (r) => ok(r.command_status))), 0);
  await waitFor('SMS delivered', async () => (await conversationOf(t.actors, amy.conversationId!)).context.deliveries?.[amy.messageId!]?.state === 'delivered', 10_000, 100);
  // A campaign's conversation waits for the customer: no agent is offered it yet.
  assert.equal((await conversationOf(t.actors, amy.conversationId!)).value, 'new');
});

test('the replies come back into the conversations the campaign opened', { timeout: 60_000 }, async () => {
  const [amy, bo] = first.results;
  // Amy answers by SMS.
  assert.equal(await new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: '8613800000001', source_addr_ton: 1, destination_addr: '10690001', short_message: 'Great, what time?' }), (r) => ok(r.command_status))), 0);
  // Bo answers the mail from his client, over STARTTLS to our listener, trusting its certificate.
  const mail = relay.relayed.find((m) => m.text?.includes('order 1002'))!;
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: t.smtpPort, secure: false, requireTLS: true, tls: { ca: tls.cert, servername: MX } });
  const info = await client.sendMail({
    from: 'Bo <bo@example.test>',
    to: mail.replyTo!.value[0].address,
    subject: `Re: ${mail.subject}`,
    text: 'Can it come on Friday?',
    inReplyTo: mail.messageId,
    references: [mail.messageId!],
    headers: { 'Authentication-Results': 'mx.shop.test; dkim=pass header.d=example.test' },
  });
  assert.match(info.response, /^250/);

  for (const [who, r, words] of [
    ['Amy', amy, 'Great, what time?'],
    ['Bo', bo, 'Can it come on Friday?'],
  ] as const) {
    const view = await waitFor(`${who}'s reply stored`, async () => {
      const v = await t.store.view({ customerId: r.customerId, viewer: 'system' });
      return v.messages.some((m) => m.text?.trim() === words) ? v : undefined;
    }, 20_000, 100);
    const reply = view.messages.find((m) => m.text?.trim() === words)!;
    const ours = view.messages.find((m) => m.direction === 'out')!;
    assert.equal(reply.conversationId, `conversation:${r.conversationId}`, `${who}'s reply is in the campaign's conversation`);
    assert.equal(ours.conversationId, reply.conversationId);
    assert.equal(reply.channel, r.channel);
    // The reply opened the conversation for agents, with where answers go.
    const c = await waitFor(`${who}'s conversation queued`, async () => {
      const x = await conversationOf(t.actors, r.conversationId!);
      return x.value !== 'new' ? x : undefined;
    }, 10_000, 100);
    assert.equal(c.context.replyTo?.[r.channel!]?.handle, r.channel === 'sms' ? '+8613800000001' : 'bo@example.test');
  }
});

test('the same campaign again sends nothing twice', { timeout: 30_000 }, async () => {
  const [subs, mails] = [smsc.submits.length, relay.relayed.length];
  const again = await campaign();
  assert.deepEqual(again.results.map((r) => [r.status, r.repeat ?? false]), [['sent', true], ['sent', true], ['skipped', false], ['skipped', false]]);
  assert.deepEqual(again.results.slice(0, 2).map((r) => r.conversationId), first.results.slice(0, 2).map((r) => r.conversationId));
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(smsc.submits.length, subs);
  assert.equal(relay.relayed.length, mails);
});

test('an agent opens a conversation on the preferred channel; an opt-out is a 403 with the reason', { timeout: 30_000 }, async () => {
  const base = `http://127.0.0.1:${t.httpPort}`;
  const cookie = await loginCookie(base, 'admin', ADMIN_PASSWORD);
  const post = (body: Record<string, unknown>) => fetch(`${base}/api/outreach`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  const r = await post({ customerId: ids.bo, text: 'About your order 1002: Friday works.\nAnn' });
  assert.equal(r.status, 200, await r.clone().text());
  const opened = (await r.json()) as { conversationId: string; channel: string; why: string };
  assert.equal(opened.channel, 'email');
  const mail = await waitFor('the agent’s mail at the relay', () => relay.relayed.find((m) => m.text?.includes('Friday works')), 20_000, 100);
  assert.equal(mail.subject, 'About your order 1002: Friday works.');
  // Opened for agents at once, marked as ours.
  const c = await waitFor('queued for agents', async () => {
    const x = await conversationOf(t.actors, opened.conversationId);
    return x.value !== 'new' ? x : undefined;
  }, 10_000, 100);
  assert.equal(c.context.task?.attrs.outbound, true);

  // Chosen channel the customer opted out of, and no channel left at all: both refused with the opt-out.
  const chosen = await post({ customerId: ids.cy, channel: 'sms', text: 'hello' });
  assert.equal(chosen.status, 403);
  assert.match(((await chosen.json()) as { error: string }).error, /^outreach refused: opted out on sms at .* via sms STOP$/);
  const preferred = await post({ customerId: ids.cy, text: 'hello' });
  assert.equal(preferred.status, 403);
  assert.match(((await preferred.json()) as { error: string }).error, /every known channel is opted out/);
  assert.equal(smsc.submits.filter((p) => p.destination_addr === '8613800000003').length, 0);
  // A bad request names the field.
  const bad = await post({ customerId: 'nobody', text: 'x' });
  assert.equal(bad.status, 400);
});
