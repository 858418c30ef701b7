// One engine (ROLE=all) on real parts: a customer writes by email and by web chat; each becomes a
// stored message in the identity graph and a conversation actor that queues, is offered to an agent and
// answered; the reply leaves through the right edge (an SMTP relay on loopback; the web chat socket)
// with its thread, and its delivery state comes back into the conversation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import nodemailer from 'nodemailer';
import { freePort } from '../engine/nats-server.ts';
import { agentOnDuty, answer as answerBy, chatSocket, conversationOf, startTestEngine, type TestEngine } from './support/engine.ts';
import { waitFor } from './support/nats.ts';

let t: TestEngine;
let relay: SMTPServer;
const relayed: ParsedMail[] = [];

before(async () => {
  const relayPort = await freePort();
  relay = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, done) {
      simpleParser(stream).then((m) => {
        relayed.push(m);
        done();
      }, done);
    },
  });
  await new Promise<void>((ok) => relay.listen(relayPort, '127.0.0.1', ok));
  t = await startTestEngine('channels', { EMAIL_ACCOUNTS: 'support@shop.test', SMTP_RELAY_URL: `smtp://127.0.0.1:${relayPort}`, WEBCHAT_SITES: 'shop:Shop' });
  // One agent who speaks both languages, on the default queue.
  await agentOnDuty(t.actors, 'ann');
});

after(async () => {
  await t?.stop();
  await new Promise<void>((ok) => relay?.close(() => ok()));
});

const conversation = (id: string) => conversationOf(t.actors, id);
const answer = (id: string) => answerBy(t.actors, 'ann', id);

test('an email becomes a conversation; the reply goes out threaded through the relay and is marked sent', { timeout: 60_000 }, async () => {
  const mailer = nodemailer.createTransport({ host: '127.0.0.1', port: t.smtpPort, secure: false, ignoreTLS: true });
  const sent = await mailer.sendMail({ from: 'Alice <alice@example.test>', to: 'support@shop.test', subject: 'Where is my parcel?', text: 'Order 1042 has not arrived.', messageId: '<m1@example.test>' });
  assert.match(sent.response, /^250/);
  // The same mail delivered again (an MTA retry) is stored once.
  await mailer.sendMail({ from: 'Alice <alice@example.test>', to: 'support@shop.test', subject: 'Where is my parcel?', text: 'Order 1042 has not arrived.', messageId: '<m1@example.test>' });

  const found = await waitFor('customer by email', async () => (await t.store.search({ email: 'alice@example.test', viewer: 'system' })).customers[0]);
  const view = await waitFor('message stored', async () => {
    const v = await t.store.view({ customerId: found.id, viewer: 'system' });
    return v.messages.length ? v : undefined;
  });
  assert.equal(view.messages.length, 1, 'the duplicate was stored once');
  const conversationId = view.messages[0].conversationId.split(':')[1];
  await answer(conversationId);

  await t.actors.tell(`conversation/${conversationId}`, { type: 'agent.reply', messageId: 'reply1', agent: 'ann', text: 'It ships tomorrow.' });
  const mail = await waitFor('reply at the relay', () => relayed.find((m) => m.text?.includes('It ships tomorrow.')), 20_000, 100);
  assert.equal(mail.inReplyTo, '<m1@example.test>');
  assert.equal(mail.subject, 'Re: Where is my parcel?');
  assert.equal((mail.to as { value: { address: string }[] }).value[0].address, 'alice@example.test');
  const state = await waitFor('delivery state', async () => (await conversation(conversationId)).context.deliveries?.reply1?.state === 'sent', 10_000, 100);
  assert.ok(state);
});

test('a web chat visitor is answered on the same socket', { timeout: 60_000 }, async () => {
  const { ws, frames } = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=shop`);
  ws.send(JSON.stringify({ type: 'message', clientMessageId: 'c1', text: '你好，我想退货' }));
  const ack = await waitFor('ack', () => frames.find((f) => f.type === 'ack'), 20_000);
  const conversationId = String(ack.conversationId);
  await answer(conversationId);
  const c = (await conversation(conversationId)).context;
  assert.equal(c.task?.language, 'zh', 'Chinese text asks for a Chinese-speaking agent');
  await t.actors.tell(`conversation/${conversationId}`, { type: 'agent.reply', messageId: 'reply2', agent: 'ann', text: '好的，请提供订单号。' });
  const reply = await waitFor('reply on the socket', () => frames.find((f) => f.type === 'message' && f.from === 'agent'), 20_000, 100);
  assert.equal(reply.text, '好的，请提供订单号。');
  await waitFor('sent', async () => (await conversation(conversationId)).context.deliveries?.reply2?.state === 'sent', 10_000, 100);
  // The customer reads it: the conversation learns it.
  ws.send(JSON.stringify({ type: 'read', seq: reply.seq }));
  await waitFor('read', async () => (await conversation(conversationId)).context.deliveries?.reply2?.state === 'read', 10_000, 100);
  ws.close();
});
