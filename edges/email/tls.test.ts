// STARTTLS on the SMTP listener, with real peers on loopback: nodemailer upgrades the connection and
// verifies our certificate (the one generated at start-up, or the operator's PEM files); a listener that
// requires TLS refuses a plaintext MAIL FROM; bad certificate settings are clear errors naming the variable.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { channelConfig } from '../../engine/channels.ts';
import { openBlobStore } from '../../storage/blobs/open.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { tempDir } from '../../storage/blobs/testing.ts';
import type { DeliveryUpdate, InboundMessage, InboundSink } from '../message.ts';
import { startEmailEdge, type EmailEdge } from './edge.ts';
import { selfSignedCert, smtpTls } from './tls.ts';

class RecordingSink implements InboundSink {
  messages: InboundMessage[] = [];
  async deliver(msg: InboundMessage) {
    this.messages.push(msg);
    return { conversationId: `conv-${this.messages.length}`, duplicate: false };
  }
  async delivery(_u: DeliveryUpdate) {}
}

const HOST = 'mx.example.test';
let dir: string;
let blobs: BlobStore;
const edges: EmailEdge[] = [];

before(async () => {
  dir = tempDir('email-tls');
  blobs = (await openBlobStore(`file://${join(dir, 'blobs')}`, {})).store;
});
after(async () => {
  for (const e of edges) await e.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listener(tls: { key: string; cert: string }, requireTLS = false) {
  const sink = new RecordingSink();
  const edge = await startEmailEdge({ smtpPort: 0, accounts: ['support@example.test'], relay: { host: '127.0.0.1', port: 9 }, sink, blobs, tls, requireTLS, serverName: HOST });
  edges.push(edge);
  return { edge, sink };
}

const mail = (text: string) => ({ from: 'ann@customer.test', to: 'support@example.test', subject: 'over TLS', text });

test('by default a certificate is made at start-up and STARTTLS is offered: a client that verifies it delivers the mail', async () => {
  const tls = await smtpTls({ hostname: HOST });
  assert.equal(tls.source, 'self-signed');
  const x509 = new X509Certificate(tls.cert);
  assert.equal(x509.checkHost(HOST), HOST);
  assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
  assert.ok(x509.verify(x509.publicKey), 'self-signed');
  assert.ok(new Date(x509.validTo).getTime() > Date.now() + 700 * 86_400_000);

  const { edge, sink } = await listener(tls);
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, secure: false, requireTLS: true, tls: { ca: tls.cert, servername: HOST } });
  const info = await client.sendMail(mail('sealed in transit'));
  assert.match(info.response, /^250/);
  assert.equal(sink.messages.at(-1)?.text?.trim(), 'sealed in transit');

  // A client that does not trust it stops at the handshake: the certificate is really checked.
  const strict = nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, secure: false, requireTLS: true, tls: { servername: HOST } });
  await assert.rejects(strict.sendMail(mail('not sent')), /self[- ]signed certificate/);
  assert.equal(sink.messages.length, 1);
});

test("the operator's PEM files are the certificate served", async () => {
  const theirs = selfSignedCert([HOST]);
  writeFileSync(join(dir, 'cert.pem'), theirs.cert);
  writeFileSync(join(dir, 'key.pem'), theirs.key, { mode: 0o600 });
  const tls = await smtpTls({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), hostname: 'ignored.example' });
  assert.equal(tls.source, 'files');
  const { edge, sink } = await listener(tls);
  await nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, requireTLS: true, tls: { ca: theirs.cert, servername: HOST } }).sendMail(mail('with their certificate'));
  assert.equal(sink.messages.length, 1);
  // Trusting another certificate instead fails: the one served is theirs.
  const other = selfSignedCert([HOST]);
  await assert.rejects(nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, requireTLS: true, tls: { ca: other.cert, servername: HOST } }).sendMail(mail('no')));
});

test('SMTP_REQUIRE_TLS: a plaintext MAIL FROM is refused with 530, the same client upgraded is accepted', async () => {
  const tls = await smtpTls({ hostname: HOST });
  const { edge, sink } = await listener(tls, true);
  const plain = nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, ignoreTLS: true });
  await assert.rejects(plain.sendMail(mail('in the clear')), (e: { responseCode?: number; message: string }) => e.responseCode === 530 && /STARTTLS/.test(e.message));
  assert.equal(sink.messages.length, 0);
  await nodemailer.createTransport({ host: '127.0.0.1', port: edge.port, tls: { ca: tls.cert, servername: HOST } }).sendMail(mail('upgraded'));
  assert.equal(sink.messages.at(-1)?.text?.trim(), 'upgraded');
  await assert.rejects(startEmailEdge({ smtpPort: 0, accounts: ['support@example.test'], relay: { host: '127.0.0.1', port: 9 }, sink, blobs, requireTLS: true }), /requireTLS needs a STARTTLS certificate/);
});

test('bad certificate settings are errors naming the variable', async () => {
  const a = selfSignedCert([HOST]);
  const b = selfSignedCert([HOST]);
  writeFileSync(join(dir, 'a.pem'), a.cert);
  writeFileSync(join(dir, 'b-key.pem'), b.key);
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
  await assert.rejects(smtpTls({ certFile: join(dir, 'a.pem'), keyFile: join(dir, 'b-key.pem'), hostname: HOST }), /^Error: SMTP_TLS_KEY is not the key of the certificate in SMTP_TLS_CERT$/);
  await assert.rejects(smtpTls({ certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'b-key.pem'), hostname: HOST }), /SMTP_TLS_CERT cannot be read \(ENOENT\)/);
  await assert.rejects(smtpTls({ certFile: join(dir, 'junk.pem'), keyFile: join(dir, 'b-key.pem'), hostname: HOST }), /SMTP_TLS_CERT is not a PEM certificate/);
  await assert.rejects(smtpTls({ certFile: join(dir, 'a.pem'), hostname: HOST }), /SMTP_TLS_CERT and SMTP_TLS_KEY go together/);
  assert.throws(() => channelConfig({ SMTP_TLS_KEY: '/etc/key.pem' }), /^Error: config: SMTP_TLS_CERT and SMTP_TLS_KEY go together$/);
  assert.throws(() => channelConfig({ SMTP_REQUIRE_TLS: 'yes' }), /^Error: config: SMTP_REQUIRE_TLS must be 1 or 0$/);
  assert.throws(() => channelConfig({ SMTP_HOSTNAME: 'mx_1..example' }), /config: SMTP_HOSTNAME must be a host name/);
  assert.equal(channelConfig({ SMTP_REQUIRE_TLS: '1' }).SMTP_REQUIRE_TLS, true);
});
