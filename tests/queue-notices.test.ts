// Customers on channels without a live screen learn their place in the queue by message: an SMS sender
// gets a text at the SMSC, a mail sender one reply in their thread at the relay, each tracked like a
// reply. On a real engine (NATS, runtime, edges) with a real SMPP peer and SMTP relay.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import smpp from 'smpp';
import { agentOnDuty, answer, conversationOf, startEngineWithPeers, type EngineWithPeers } from './support/engine.ts';
import { waitFor } from './support/nats.ts';
import { submittedText } from './support/peers.ts';

let peers: EngineWithPeers;

before(async () => {
  peers = await startEngineWithPeers('queue-notices');
});

after(() => peers?.stop());


test('with nobody free, an SMS sender is texted their place and a mail sender gets it in the thread; both as tracked replies', { timeout: 90_000 }, async () => {
  const { t, smsc, relay } = peers;
  // Nobody is on duty yet: both customers wait.
  assert.equal(await new Promise((ok) => smsc.bound!.send(new smpp.PDU('deliver_sm', { source_addr: '8613700001111', destination_addr: '10690001', short_message: '我的包裹到哪了？' }), (r) => ok(r.command_status))), 0);
  const mailer = nodemailer.createTransport({ host: '127.0.0.1', port: t.smtpPort, secure: false, ignoreTLS: true });
  await mailer.sendMail({ from: 'Bob <bob@example.test>', to: 'support@shop.test', subject: 'Parcel', text: 'Where is my parcel?', messageId: '<parcel@example.test>' });

  const sms = await waitFor('the position SMS at the SMSC', () => smsc.submits.find((p) => p.destination_addr === '8613700001111'), 20_000, 100);
  assert.match(submittedText(sms), /^您目前排在第 [12] 位，客服人员会尽快回复您。$/, 'in the language the customer wrote in; no wait figure with nobody on duty');
  const mail = await waitFor('the position mail at the relay', () => relay.relayed.find((m) => m.inReplyTo === '<parcel@example.test>'), 20_000, 100);
  assert.match(mail.text ?? '', /^You are number [12] in the queue; an agent will reply as soon as possible\.\s*$/);
  assert.match(mail.to && 'text' in mail.to ? mail.to.text : '', /<bob@example\.test>$/);

  // Each is a reply of its conversation: delivery states come back as for an agent's.
  const ofCustomer = async (q: { phone?: string; email?: string }) => {
    const [c] = (await t.store.search({ ...q, viewer: 'system' })).customers;
    const view = await t.store.view({ customerId: c.id, viewer: 'system' });
    return view.messages[0].conversationId.split(':')[1];
  };
  const smsConversation = await ofCustomer({ phone: '+8613700001111' });
  const mailConversation = await ofCustomer({ email: 'bob@example.test' });
  for (const id of [smsConversation, mailConversation]) {
    await waitFor(`${id}'s notice sent`, async () => (await conversationOf(t.actors, id)).context.deliveries?.[`${id}:position:1`]?.state === 'sent', 10_000, 100);
  }

  // An agent comes on duty and takes both: one notice each was all they were sent.
  await agentOnDuty(t.actors, 'zoe');
  await answer(t.actors, 'zoe', smsConversation);
  await answer(t.actors, 'zoe', mailConversation);
  assert.equal(smsc.submits.filter((p) => p.destination_addr === '8613700001111').length, 1);
  assert.equal(relay.relayed.filter((m) => m.inReplyTo === '<parcel@example.test>').length, 1);
});
