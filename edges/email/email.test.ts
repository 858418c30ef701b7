// The email edge against real SMTP peers on loopback: nodemailer sends to our listener, and an
// smtp-server plays the relay that receives what we send.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import { Registry } from 'prom-client';
import { openBlobStore } from '../../storage/blobs/open.ts';
import { tempDir } from '../../storage/blobs/testing.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { freePort } from '../../engine/nats-server.ts';
import type { DeliveryUpdate, InboundMessage, InboundSink } from '../message.ts';
import { startEmailEdge, type EmailEdge } from './edge.ts';
import { outboundMessageId } from './address.ts';

/** The engine's side, recorded: the real one resolves identities and conversations. */
class RecordingSink implements InboundSink {
  messages: InboundMessage[] = [];
  updates: DeliveryUpdate[] = [];
  seen = new Set<string>();
  async deliver(msg: InboundMessage) {
    const duplicate = this.seen.has(msg.channelMessageId);
    this.seen.add(msg.channelMessageId);
    this.messages.push(msg);
    return { conversationId: msg.thread?.conversationId ?? `conv-${this.messages.length}`, duplicate };
  }
  async delivery(u: DeliveryUpdate) {
    this.updates.push(u);
  }
}

/** A relay that records what it receives and answers as told (ok, or an error code per attempt). */
async function startRelay() {
  const received: ParsedMail[] = [];
  const answers: number[] = []; // queued error codes for the next DATA commands
  let attempts = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    disableReverseLookup: true,
    onData(stream, _s, cb) {
      attempts++;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const code = answers.shift();
        if (code) return cb(Object.assign(new Error(code >= 500 ? 'mailbox unavailable' : 'try again later'), { responseCode: code }));
        received.push(await simpleParser(Buffer.concat(chunks)));
        cb();
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', () => ok()));
  return { port, received, answers, attempts: () => attempts, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

let dir: string;
let blobs: BlobStore;
let sink: RecordingSink;
let relay: Awaited<ReturnType<typeof startRelay>>;
let edge: EmailEdge;
let metrics: Registry;
let client: ReturnType<typeof nodemailer.createTransport>;

before(async () => {
  dir = tempDir('email-edge');
  blobs = (await openBlobStore(`file://${dir}`, {})).store;
  sink = new RecordingSink();
  relay = await startRelay();
  metrics = new Registry();
  edge = await startEmailEdge({
    smtpPort: 0,
    accounts: ['support@example.test', { address: 'sales@example.test', name: 'Example Sales' }],
    relay: { host: '127.0.0.1', port: relay.port },
    sink,
    blobs,
    metrics,
    maxMessageBytes: 200_000,
    attachments: { maxBytes: 100_000 },
    retry: { tries: 3, baseMs: 50, maxMs: 200 },
  });
  client = nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, secure: false, ignoreTLS: true });
});

after(async () => {
  client.close();
  await edge.close();
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await metrics.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m as { values?: { value: number; labels: Record<string, string | number> }[] } | undefined)?.values ?? [];
  return values.filter((x) => Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val)).reduce((n, x) => n + x.value, 0);
}

function last(): InboundMessage {
  const m = sink.messages.at(-1);
  assert.ok(m, 'the sink received a message');
  return m;
}

async function smtpCode(p: Promise<unknown>): Promise<{ code?: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { responseCode?: number; message: string };
    return { code: err.responseCode, message: err.message };
  }
  assert.fail('the listener accepted what it should have refused');
}

test('a plain mail becomes one canonical inbound message', async () => {
  const before = await metric('cc_edge_email_received_total');
  const info = await client.sendMail({ from: 'Ann Lee <Ann@Customer.test>', to: 'support@example.test', subject: 'Where is my order?', text: 'Order 42 has not arrived.' });
  const m = last();
  assert.equal(m.channel, 'email');
  assert.equal(m.account, 'support@example.test');
  assert.equal(m.from.handle, 'ann@customer.test');
  assert.equal(m.from.email, 'ann@customer.test');
  assert.equal(m.from.displayName, 'Ann Lee');
  assert.equal(m.text?.trim(), 'Order 42 has not arrived.');
  assert.equal(m.channelMessageId, info.messageId);
  assert.equal(m.thread?.messageId, info.messageId);
  assert.equal(m.thread?.subject, 'Where is my order?');
  assert.equal(m.thread?.conversationId, undefined);
  assert.ok(Math.abs(m.sentAt - Date.now()) < 60_000);
  // The raw mail is kept in the object store.
  const raw = await blobs.head(String(m.meta.rawKey));
  assert.equal(raw.contentType, 'message/rfc822');
  assert.equal(await metric('cc_edge_email_received_total'), before + 1);
});

test('html and an attachment: html kept beside text, the file in the object store', async () => {
  const file = randomBytes(30_000);
  await client.sendMail({
    from: 'bob@customer.test',
    to: 'Sales <sales@example.test>',
    subject: 'Invoice',
    text: 'See attached.',
    html: '<p>See <b>attached</b>.</p>',
    attachments: [{ filename: 'invoice 2024.pdf', content: file, contentType: 'application/pdf' }],
  });
  const m = last();
  assert.equal(m.account, 'sales@example.test');
  assert.match(m.html ?? '', /<b>attached<\/b>/);
  assert.equal(m.text?.trim(), 'See attached.');
  assert.equal(m.attachments.length, 1);
  const a = m.attachments[0];
  const sha = createHash('sha256').update(file).digest('hex');
  assert.equal(a.name, 'invoice 2024.pdf');
  assert.equal(a.contentType, 'application/pdf');
  assert.equal(a.size, file.length);
  assert.equal(a.sha256, sha);
  assert.equal(a.key, `attachments/${sha}/invoice_2024.pdf`);
  const got = await blobs.get(a.key);
  assert.deepEqual(Buffer.from(await new Response(got.body).arrayBuffer()), file);
});

test('replies find their conversation by plus-address token and by In-Reply-To / References', async () => {
  await client.sendMail({ from: 'ann@customer.test', to: 'support+c-conv_7-A@example.test', subject: 'Re: order', text: 'thanks' });
  assert.equal(last().thread?.conversationId, 'conv_7-A');
  assert.equal(last().account, 'support@example.test');

  const ours = outboundMessageId('support@example.test', 'conv 9/ü', 'm1');
  await client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', subject: 'Re: hi', text: 'yes', inReplyTo: ours, references: [ours] });
  assert.equal(last().thread?.conversationId, 'conv 9/ü');
  assert.equal(last().thread?.inReplyTo, ours);
  assert.deepEqual(last().thread?.references, [ours]);

  // Only via References (some clients drop In-Reply-To); a Message-ID at a foreign domain names nothing.
  const foreign = '<c-evil.m1@attacker.test>';
  await client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', subject: 'Re: hi', text: 'again', references: [outboundMessageId('support@example.test', 'c42', 'm2'), foreign] });
  assert.equal(last().thread?.conversationId, 'c42');
});

test('unknown mailbox → 550 at RCPT TO, counted', async () => {
  const before = await metric('cc_edge_email_rejected_total', { reason: 'unknown_account' });
  const n = sink.messages.length;
  const r = await smtpCode(client.sendMail({ from: 'ann@customer.test', to: 'nobody@example.test', text: 'hello?' }));
  assert.equal(r.code, 550);
  assert.match(r.message, /no such mailbox/);
  assert.equal(sink.messages.length, n);
  assert.equal(await metric('cc_edge_email_rejected_total', { reason: 'unknown_account' }), before + 1);
});

test('oversized mail → 552; oversized or executable attachment → 552 / 554 with the reason', async () => {
  const n = sink.messages.length;
  const big = await smtpCode(client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', text: 'x'.repeat(300_000) }));
  assert.equal(big.code, 552);
  assert.match(big.message, /200000 byte limit/);

  const bigFile = await smtpCode(
    client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', text: 'file', attachments: [{ filename: 'scan.png', content: randomBytes(120_000), contentType: 'image/png' }] }),
  );
  assert.equal(bigFile.code, 552);
  assert.match(bigFile.message, /"scan.png" is 120000 bytes, over the 100000 byte limit/);

  const exe = await smtpCode(
    client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', text: 'run me', attachments: [{ filename: 'invoice.exe', content: randomBytes(100), contentType: 'application/octet-stream' }] }),
  );
  assert.equal(exe.code, 554);
  assert.match(exe.message, /\.exe files are not accepted/);
  assert.equal(sink.messages.length, n, 'nothing reached the engine');
  assert.ok((await metric('cc_edge_email_rejected_total', { reason: 'too_big' })) >= 2);
  assert.ok((await metric('cc_edge_email_rejected_total', { reason: 'not_acceptable' })) >= 1);
});

test('a mail without a From address → 550; the listener keeps serving', async () => {
  const raw = 'To: support@example.test\r\nSubject: no sender\r\n\r\nhello\r\n';
  const r = await smtpCode(client.sendMail({ envelope: { from: 'x@customer.test', to: ['support@example.test'] }, raw }));
  assert.equal(r.code, 550);
  assert.match(r.message, /no usable From address/);
  await client.sendMail({ from: 'ann@customer.test', to: 'support@example.test', text: 'still there?' });
  assert.equal(last().text?.trim(), 'still there?');
});

test('duplicate deliveries carry the same channel message id (Message-ID, or a hash of the bytes)', async () => {
  const mail = { from: 'ann@customer.test', to: 'support@example.test', subject: 'dup', text: 'once', messageId: '<dup-1@customer.test>' };
  await client.sendMail(mail);
  await client.sendMail(mail);
  const dups = sink.messages.filter((m) => m.channelMessageId === '<dup-1@customer.test>');
  assert.equal(dups.length, 2);

  const raw = 'From: ann@customer.test\r\nTo: support@example.test\r\nSubject: no id\r\n\r\nno message id here\r\n';
  const envelope = { from: 'ann@customer.test', to: ['support@example.test'] };
  await client.sendMail({ envelope, raw });
  const first = last().channelMessageId;
  await client.sendMail({ envelope, raw });
  assert.match(first, /^sha256:[0-9a-f]{64}$/);
  assert.equal(last().channelMessageId, first);
});

test('auth verdicts recorded by our MTA are kept in meta', async () => {
  const raw = [
    'Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=customer.test; dkim=fail header.d=customer.test; dmarc=none',
    'DKIM-Signature: v=1; a=rsa-sha256; d=customer.test; s=s1; b=abc',
    'From: ann@customer.test',
    'To: support@example.test',
    'Message-ID: <auth-1@customer.test>',
    '',
    'signed',
    '',
  ].join('\r\n');
  await client.sendMail({ envelope: { from: 'ann@customer.test', to: ['support@example.test'] }, raw });
  const m = last();
  assert.equal(m.meta.spf, 'pass');
  assert.equal(m.meta.dkim, 'fail');
  assert.equal(m.meta.dmarc, 'none');
  assert.equal(m.meta.dkimSigned, true);
});

test('outbound: threading headers, both parts, attachment bytes, conversation token; queued then sent', async () => {
  const file = randomBytes(5_000);
  const put = await blobs.put('attachments/out/label.png', file, { contentType: 'image/png' });
  const u = await edge.send({
    channel: 'email',
    account: 'sales@example.test',
    conversationId: 'c42',
    messageId: 'm-100',
    to: { handle: 'ann@customer.test', displayName: 'Ann Lee' },
    text: 'Your order ships today.',
    html: '<p>Your order <i>ships</i> today.</p>',
    attachments: [{ key: put.key, name: 'label.png', contentType: 'image/png', size: file.length }],
    thread: { inReplyTo: '<q1@customer.test>', references: ['<q0@customer.test>'], subject: 'Where is my order?' },
  });
  assert.equal(u.state, 'sent');
  assert.equal(u.channelMessageId, '<c-c42.m-100@example.test>');
  const got = relay.received.at(-1);
  assert.ok(got);
  assert.equal(got.messageId, '<c-c42.m-100@example.test>');
  assert.equal(got.inReplyTo, '<q1@customer.test>');
  assert.deepEqual(got.references, ['<q0@customer.test>', '<q1@customer.test>']);
  assert.equal(got.subject, 'Re: Where is my order?');
  assert.equal(got.from?.value[0].address, 'sales@example.test');
  assert.equal(got.from?.value[0].name, 'Example Sales');
  assert.equal(got.replyTo?.value[0].address, 'sales+c-c42@example.test');
  assert.equal(got.text?.trim(), 'Your order ships today.');
  assert.match(String(got.html), /<i>ships<\/i>/);
  assert.equal(got.attachments.length, 1);
  assert.deepEqual(got.attachments[0].content, file);
  assert.equal(got.attachments[0].filename, 'label.png');
  const states = sink.updates.filter((x) => x.messageId === 'm-100').map((x) => x.state);
  assert.deepEqual(states, ['queued', 'sent']);

  // The customer answers that mail: it lands in c42.
  await client.sendMail({ from: 'ann@customer.test', to: 'sales+c-c42@example.test', subject: got.subject, text: 'great', inReplyTo: got.messageId });
  assert.equal(last().thread?.conversationId, 'c42');
  assert.equal(last().account, 'sales@example.test');
});

test('outbound: a 451 from the relay is retried, a 550 fails for good, a dead relay gives up after the tries', async () => {
  const msg = { channel: 'email' as const, account: 'support@example.test', conversationId: 'c7', to: { handle: 'ann@customer.test' }, text: 'hi', attachments: [] };
  relay.answers.push(451);
  let n = relay.attempts();
  const ok = await edge.send({ ...msg, messageId: 'm-retry' });
  assert.equal(ok.state, 'sent');
  assert.equal(relay.attempts() - n, 2, 'one 451, then accepted');
  // Idempotent by messageId: the same reply again is not sent twice.
  n = relay.attempts();
  assert.equal((await edge.send({ ...msg, messageId: 'm-retry' })).state, 'sent');
  assert.equal(relay.attempts(), n);

  relay.answers.push(550);
  n = relay.attempts();
  const bad = await edge.send({ ...msg, messageId: 'm-perm' });
  assert.equal(bad.state, 'failed');
  assert.equal(bad.permanent, true);
  assert.match(bad.reason ?? '', /550/);
  assert.equal(relay.attempts() - n, 1, 'no retry after a 5xx');
  assert.deepEqual(sink.updates.filter((x) => x.messageId === 'm-perm').map((x) => x.state), ['queued', 'failed']);

  const dead = await startEmailEdge({
    smtpPort: 0,
    accounts: ['support@example.test'],
    relay: { host: '127.0.0.1', port: await freePort(), timeoutMs: 1000 },
    sink,
    blobs,
    retry: { tries: 2, baseMs: 20, maxMs: 50 },
  });
  try {
    const gaveUp = await dead.send({ ...msg, messageId: 'm-dead' });
    assert.equal(gaveUp.state, 'failed');
    assert.equal(gaveUp.permanent, false);
    assert.match(gaveUp.reason ?? '', /gave up after 2 tries/);
  } finally {
    await dead.close();
  }
  assert.ok((await metric('cc_edge_email_failed_total', { permanent: 'true' })) >= 1);
});

test('outbound input is checked: bad address or unknown account', async () => {
  await assert.rejects(
    edge.send({ channel: 'email', account: 'support@example.test', conversationId: 'c1', messageId: 'm-x', to: { handle: 'not an address' }, text: 'x', attachments: [] }),
    /not an email address/,
  );
  const u = await edge.send({ channel: 'email', account: 'billing@example.test', conversationId: 'c1', messageId: 'm-y', to: { handle: 'ann@customer.test' }, text: 'x', attachments: [] });
  assert.equal(u.state, 'failed');
  assert.equal(u.permanent, true);
  assert.match(u.reason ?? '', /no email account "billing@example.test"/);
});
