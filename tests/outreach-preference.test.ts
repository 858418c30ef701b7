// Answers to our outreach teach the customer's channel preference, on a real engine (nats-server, SMSC and
// SMTP relay on loopback): a customer who answers a campaign's SMS, and one who answers an agent's mail,
// each count one answer to outreach (`replies`) for the first message in that conversation and ordinary
// use (`inbound`) for the rest; a web chat the visitor starts themselves counts only as inbound.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from '@nats-io/nats-core';
import nodemailer from 'nodemailer';
import smpp from 'smpp';
import { OutreachClient } from '../edges/outreach-api.ts';
import type { CustomerContext, Preference } from '../machines/customer.ts';
import { chatSocket, conversationOf, startEngineWithPeers, type EngineWithPeers, type TestEngine } from './support/engine.ts';
import { waitFor } from './support/nats.ts';
import type { TestRelay, TestSmsc } from './support/peers.ts';

let t: TestEngine;
let nc: NatsConnection;
let outreach: OutreachClient;
let relay: TestRelay;
let smsc: TestSmsc;
let peers: EngineWithPeers;

before(async () => {
  peers = await startEngineWithPeers('outreach-preference', { WEBCHAT_SITES: 'shop:Shop' });
  ({ t, relay, smsc } = peers);
  nc = await t.nats.connect();
  outreach = new OutreachClient(nc);
});

after(async () => {
  await nc?.close();
  await peers?.stop();
});

type Uses = Partial<Record<string, { inbound: number; replies: number }>>;
const customerOf = (key: string) => t.actors.ask<CustomerContext>(`customer/${key}`, { type: 'get' });
/** The customer's counts per channel, once they match `want`. */
async function usesBecome(key: string, want: Uses): Promise<Uses> {
  const uses = async () => Object.fromEntries(Object.entries((await customerOf(key)).channelStats).map(([ch, s]) => [ch, { inbound: s.inbound, replies: s.replies }]));
  await waitFor(`customer ${key} uses ${JSON.stringify(want)}`, async () => JSON.stringify(await uses()) === JSON.stringify(want), 20_000, 100).catch(async (e: Error) => {
    throw new Error(`${e.message}; has ${JSON.stringify(await uses())}`);
  });
  return uses();
}
const sms = (from: string, text: string) =>
  new Promise<number>((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: from, source_addr_ton: 1, destination_addr: '10690001', short_message: text }), (r) => ok(r.command_status)));

test("a campaign's SMS answered: the first answer counts as a reply to outreach, the next as inbound", { timeout: 60_000 }, async (ctx) => {
  const amy = await t.store.resolve({ channel: 'phone', handle: '+8613800000021', displayName: 'Amy', phone: '+8613800000021', verified: { phone: true }, at: Date.now() });
  const key = amy.customerId.split(':')[1];
  const run = await outreach.campaign({ campaignId: 'spring', channel: 'sms', template: { text: 'Hi {{name}}, spring sale starts today. Reply to ask us anything.' }, recipients: [{ customerId: amy.customerId }] });
  const [sent] = run.results;
  assert.equal(sent.status, 'sent', sent.reason);
  assert.equal(sent.channel, 'sms');
  // She answers once our SMS has left (the edge reports it sent as the SMSC takes it, before any phone has it).
  await waitFor('SMS at the SMSC', () => smsc.submits.find((p) => p.destination_addr === '8613800000021'), 20_000, 100);
  await waitFor('SMS sent', async () => (await conversationOf(t.actors, sent.conversationId!)).context.deliveries?.[sent.messageId!]?.state === 'sent', 10_000, 100);
  assert.equal(await sms('8613800000021', 'Is the blue coat in the sale?'), 0);
  // Her answer opened the campaign's conversation, and it knows it was ours.
  const c = await waitFor('campaign conversation opened by the answer', async () => {
    const x = await conversationOf(t.actors, sent.conversationId!);
    return x.value !== 'new' ? x : undefined;
  }, 20_000, 100);
  assert.equal(c.context.outreach, true);
  assert.deepEqual(await usesBecome(key, { sms: { inbound: 0, replies: 1 } }), { sms: { inbound: 0, replies: 1 } });
  // A second message in the same conversation is her own use, not a second answer.
  assert.equal(await sms('8613800000021', 'Size M please.'), 0);
  await usesBecome(key, { sms: { inbound: 1, replies: 1 } });
  const me = await customerOf(key);
  assert.deepEqual(me.firstMessages, [{ conversationId: sent.conversationId, channel: 'sms', counted: 'replies' }]);
  assert.equal(me.channelStats.sms?.hours.reduce((a, b) => a + b, 0), 2, 'two messages, two uses');
  const pref = await t.actors.ask<Preference>(`customer/${key}`, { type: 'preference.query', at: Date.now() });
  assert.equal(pref.channel, 'sms');
  assert.match(pref.reason, /^most used around \d\d:00 UTC \(2 within ±2h\)$/);
  ctx.diagnostic(`amy: sms ${JSON.stringify(me.channelStats.sms && { inbound: me.channelStats.sms.inbound, replies: me.channelStats.sms.replies })}; preference: ${pref.channel} (${pref.reason})`);
});

test("an agent's mail answered: one answer to outreach on email", { timeout: 60_000 }, async () => {
  const bo = await t.store.resolve({ channel: 'email', handle: 'bo@example.test', displayName: 'Bo', email: 'bo@example.test', verified: { email: true }, at: Date.now() });
  const key = bo.customerId.split(':')[1];
  const opened = await outreach.open({ customerId: bo.customerId, channel: 'email', text: 'About your return: the courier comes on Friday.', subject: 'Your return', by: 'ann' });
  assert.equal(opened.channel, 'email');
  // The conversation opened at once (queued for agents) and told the customer it awaits their answer.
  await waitFor('customer knows the outreach', async () => (await customerOf(key)).openConversations.find((o) => o.id === opened.conversationId)?.outreach, 10_000, 100);
  const mail = await waitFor('our mail at the relay', () => relay.relayed.find((m) => m.text?.includes('courier comes on Friday')), 20_000, 100);
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: t.smtpPort, secure: false, ignoreTLS: true });
  for (const text of ['Friday is fine.', 'After 2 pm, please.']) {
    const info = await client.sendMail({ from: 'Bo <bo@example.test>', to: mail.replyTo!.value[0].address, subject: `Re: ${mail.subject}`, text, inReplyTo: mail.messageId, references: [mail.messageId!] });
    assert.match(info.response, /^250/);
  }
  await usesBecome(key, { email: { inbound: 1, replies: 1 } });
  const view = await t.store.view({ customerId: bo.customerId, viewer: 'system' });
  assert.deepEqual(new Set(view.messages.map((m) => m.conversationId)), new Set([`conversation:${opened.conversationId}`]), 'both answers are in the conversation we opened');
  assert.equal((await customerOf(key)).openConversations.find((o) => o.id === opened.conversationId)?.outreach, undefined, 'answered');
});

test('a web chat the visitor starts counts as inbound only', { timeout: 60_000 }, async () => {
  const { ws, frames } = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=shop`);
  ws.send(JSON.stringify({ type: 'message', clientMessageId: 'w1', text: 'Do you ship to Macau?' }));
  const ack = await waitFor('ack', () => frames.find((f) => f.type === 'ack'), 20_000);
  ws.send(JSON.stringify({ type: 'message', clientMessageId: 'w2', text: 'And how long does it take?' }));
  await waitFor('second ack', () => frames.filter((f) => f.type === 'ack').length === 2, 20_000);
  const c = await conversationOf(t.actors, String(ack.conversationId));
  assert.equal(c.context.outreach, undefined);
  await usesBecome(c.context.customer, { webchat: { inbound: 2, replies: 0 } });
  ws.close();
});
