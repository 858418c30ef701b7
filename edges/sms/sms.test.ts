/// <reference path="./smpp.d.ts" />
// The SMS edge against a real SMPP peer on loopback: the smpp package's server plays the SMSC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import smpp from 'smpp';
import { Registry } from 'prom-client';
import { freePort } from '../../engine/nats-server.ts';
import type { DeliveryUpdate, InboundMessage, InboundSink } from '../message.ts';
import { startSmsEdge, type SmsEdge } from './edge.ts';

class RecordingSink implements InboundSink {
  messages: InboundMessage[] = [];
  updates: DeliveryUpdate[] = [];
  /** Ids offered while the engine was "down" (deliver threw). */
  refused: string[] = [];
  down = false;
  async deliver(msg: InboundMessage) {
    if (this.down) {
      this.refused.push(msg.channelMessageId);
      throw new Error('engine unavailable');
    }
    this.messages.push(msg);
    return { conversationId: `conv-${this.messages.length}`, duplicate: false };
  }
  async delivery(u: DeliveryUpdate) {
    this.updates.push(u);
  }
}

/** A small SMSC: checks the bind, records submit_sm, answers with ids (or queued error codes), sends deliver_sm. */
async function startSmsc() {
  const submits: smpp.PDU[] = [];
  const answers: number[] = [];
  let bound: smpp.Session | undefined;
  let n = 0;
  const server = smpp.createServer({}, (session) => {
    session.on('error', () => undefined);
    session.on('bind_transceiver', (pdu) => {
      if (pdu.system_id === 'cc' && pdu.password === 'secret') {
        session.send(pdu.response());
        bound = session;
      } else {
        session.send(pdu.response({ command_status: smpp.errors.ESME_RBINDFAIL }));
        session.close();
      }
    });
    session.on('enquire_link', (pdu) => session.send(pdu.response()));
    session.on('unbind', (pdu) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('submit_sm', (pdu) => {
      const code = answers.shift();
      if (code) return void session.send(pdu.response({ command_status: code }));
      submits.push(pdu);
      session.send(pdu.response({ message_id: `SM${++n}` }));
    });
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', () => ok()));
  return {
    port,
    submits,
    answers,
    /** Sends a deliver_sm to the bound ESME and resolves with the command_status it answered. */
    deliver(params: Record<string, unknown>): Promise<number> {
      const s = bound;
      assert.ok(s, 'an ESME is bound');
      return new Promise((ok) => s.send(new smpp.PDU('deliver_sm', params), (resp) => ok(resp.command_status)));
    },
    drop() {
      for (const s of [...server.sessions]) s.destroy();
      bound = undefined;
    },
    close: () =>
      new Promise<void>((ok) => {
        for (const s of [...server.sessions]) s.destroy();
        server.close(() => ok());
      }),
  };
}

/** What the SMSC would hand the handset: the parts of each concatenated message joined by UDH ref and seq. */
function reassembled(pdus: smpp.PDU[]): string[] {
  const groups = new Map<number, string[]>();
  const out: string[] = [];
  for (const p of pdus) {
    const sm = p.short_message as smpp.DecodedMessage;
    const ie = sm.udh?.find((x) => x[0] === 0x00);
    if (!ie) {
      out.push(String(sm.message));
      continue;
    }
    const [, , ref, total, seq] = ie;
    const g = groups.get(ref) ?? new Array<string>(total);
    g[seq - 1] = String(sm.message);
    groups.set(ref, g);
    if (g.filter((x) => x !== undefined).length === total) out.push(g.join(''));
  }
  return out;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let smsc: Awaited<ReturnType<typeof startSmsc>>;
let sink: RecordingSink;
let edge: SmsEdge;
let metrics: Registry;

before(async () => {
  smsc = await startSmsc();
  sink = new RecordingSink();
  metrics = new Registry();
  edge = await startSmsEdge({
    smsc: { host: '127.0.0.1', port: smsc.port, systemId: 'cc', password: 'secret', enquireLinkMs: 500, responseTimeoutMs: 2000, reconnectBaseMs: 50, reconnectMaxMs: 200 },
    accounts: ['10690001', { number: '+15550100' }],
    sink,
    metrics,
    partTimeoutMs: 400,
    retry: { tries: 3, baseMs: 30, maxMs: 100 },
  });
  await edge.ready(5000);
});

after(async () => {
  await edge.close();
  await smsc.close();
});

const zh = '您好！您的订单已经发货，预计三天内送达。如有任何问题，请随时回复本短信与我们的客服联系，我们将竭诚为您服务。感谢您选择我们的产品，祝您生活愉快，万事如意！再次感谢您的支持与信任，期待您的再次光临。';

test('bound with bind_transceiver; a single inbound SMS becomes a canonical message', async () => {
  assert.equal(edge.binds, 1);
  const status = await smsc.deliver({ source_addr: '8613800138000', source_addr_ton: 1, source_addr_npi: 1, destination_addr: '10690001', short_message: 'Hello, is my order shipped?' });
  assert.equal(status, 0);
  const m = sink.messages.at(-1);
  assert.ok(m);
  assert.equal(m.channel, 'sms');
  assert.equal(m.account, '10690001');
  assert.equal(m.from.handle, '+8613800138000');
  assert.equal(m.from.phone, '+8613800138000');
  assert.equal(m.text, 'Hello, is my order shipped?');
  assert.match(m.channelMessageId, /^sms:[0-9a-f]{32}\.\d+$/);
});

test('a concatenated UCS-2 Chinese message is reassembled from its parts, in any order', async () => {
  const n = sink.messages.length;
  const text = zh.slice(0, 100);
  const parts = [text.slice(0, 67), text.slice(67)];
  const common = { source_addr: '8613800138000', source_addr_ton: 1, destination_addr: '10690001', data_coding: 0x08 };
  assert.equal(await smsc.deliver({ ...common, short_message: { udh: Buffer.from([0x05, 0x00, 0x03, 0x42, 2, 2]), message: parts[1] } }), 0);
  assert.equal(sink.messages.length, n, 'held until the other part comes');
  assert.equal(await smsc.deliver({ ...common, short_message: { udh: Buffer.from([0x05, 0x00, 0x03, 0x42, 2, 1]), message: parts[0] } }), 0);
  const m = sink.messages.at(-1);
  assert.equal(sink.messages.length, n + 1);
  assert.equal(m?.text, text);
  assert.equal(m?.meta.parts, 2);
  assert.equal(m?.meta.dataCoding, 8);
});

test('a part that never comes: after the timeout the rest is delivered with the gap marked', async () => {
  const n = sink.messages.length;
  await smsc.deliver({ source_addr: '8613900000000', source_addr_ton: 1, destination_addr: '10690001', data_coding: 0x08, short_message: { udh: Buffer.from([0x05, 0x00, 0x03, 0x07, 2, 1]), message: '第一部分' } });
  await until('the partial message', () => sink.messages.length === n + 1, 3000);
  const m = sink.messages.at(-1);
  assert.equal(m?.text, '第一部分[…]');
  assert.equal(m?.meta.partsMissing, 1);
});

test('the engine failing: the SMSC is told to retry, and its redelivery carries the same id', async () => {
  const pdu = { source_addr: '8613700000000', source_addr_ton: 1, destination_addr: '10690001', short_message: 'yes' };
  sink.down = true;
  assert.equal(await smsc.deliver(pdu), smpp.errors.ESME_RX_T_APPN);
  sink.down = false;
  assert.equal(await smsc.deliver(pdu), 0);
  assert.equal(sink.messages.at(-1)?.channelMessageId, sink.refused[0]);
  // Acknowledged, the same words sent again later are a new message.
  assert.equal(await smsc.deliver(pdu), 0);
  assert.notEqual(sink.messages.at(-1)?.channelMessageId, sink.refused[0]);
});

test('a deliver_sm to a number that is not ours is refused with ESME_RINVDSTADR and counted', async () => {
  const n = sink.messages.length;
  const status = await smsc.deliver({ source_addr: '8613800138000', destination_addr: '999', short_message: 'hi' });
  assert.equal(status, smpp.errors.ESME_RINVDSTADR);
  assert.equal(sink.messages.length, n);
  const m = (await metrics.getMetricsAsJSON()).find((x) => x.name === 'cc_edge_sms_rejected_total') as { values: { value: number; labels: { reason?: string } }[] };
  assert.equal(m.values.find((x) => x.labels.reason === 'unknown_account')?.value, 1);
});

test('a long Chinese reply leaves as UCS-2 UDH parts the SMSC reassembles; receipts make it delivered', async () => {
  const before = smsc.submits.length;
  const u = await edge.send({ channel: 'sms', account: '10690001', conversationId: 'c1', messageId: 'm-zh', to: { handle: '+8613800138000' }, text: zh, attachments: [] });
  assert.equal(u.state, 'sent');
  const sent = smsc.submits.slice(before);
  assert.equal(sent.length, Math.ceil(zh.length / 67));
  for (const p of sent) {
    assert.equal(p.data_coding, 0x08);
    assert.equal(Number(p.esm_class) & 0x40, 0x40);
    assert.equal(p.registered_delivery, 1);
    assert.equal(p.destination_addr, '8613800138000');
    assert.equal(p.source_addr, '10690001');
  }
  assert.deepEqual(reassembled(sent), [zh]);
  assert.equal(u.channelMessageId?.split(',').length, sent.length);

  // One receipt per part; delivered once every part is.
  const ids = u.channelMessageId?.split(',') ?? [];
  for (const id of ids) {
    const status = await smsc.deliver({ source_addr: '8613800138000', destination_addr: '10690001', esm_class: 0x04, short_message: `id:${id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:` });
    assert.equal(status, 0);
  }
  const states = sink.updates.filter((x) => x.messageId === 'm-zh').map((x) => x.state);
  assert.deepEqual(states, ['queued', 'sent', 'delivered']);

  // A short GSM text: one part, default alphabet.
  const g = await edge.send({ channel: 'sms', account: '+15550100', conversationId: 'c2', messageId: 'm-en', to: { handle: '+15550199' }, text: 'Your code is 1234 [ok]', attachments: [] });
  assert.equal(g.state, 'sent');
  const last = smsc.submits.at(-1);
  assert.equal(last?.data_coding, 0);
  assert.equal(last?.source_addr_ton, 1);
  assert.equal((last?.short_message as smpp.DecodedMessage).message, 'Your code is 1234 [ok]');
  await smsc.deliver({ source_addr: '15550199', destination_addr: '15550100', esm_class: 0x04, short_message: `id:${g.channelMessageId} sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:UNDELIV err:011 text:` });
  const failed = sink.updates.filter((x) => x.messageId === 'm-en').at(-1);
  assert.equal(failed?.state, 'failed');
  assert.equal(failed?.permanent, true);
  assert.match(failed?.reason ?? '', /UNDELIV \(error 011\)/);
});

test('throttling is retried, a refused destination fails for good', async () => {
  smsc.answers.push(smpp.errors.ESME_RTHROTTLED);
  const ok = await edge.send({ channel: 'sms', account: '10690001', conversationId: 'c3', messageId: 'm-throttled', to: { handle: '+8613800138000' }, text: 'retry me', attachments: [] });
  assert.equal(ok.state, 'sent');
  smsc.answers.push(smpp.errors.ESME_RINVDSTADR);
  const bad = await edge.send({ channel: 'sms', account: '10690001', conversationId: 'c3', messageId: 'm-bad', to: { handle: '+8613800138001' }, text: 'nobody', attachments: [] });
  assert.equal(bad.state, 'failed');
  assert.equal(bad.permanent, true);
  assert.match(bad.reason ?? '', /0xb/);
  await assert.rejects(edge.send({ channel: 'sms', account: '10690001', conversationId: 'c3', messageId: 'm-x', to: { handle: 'ann@example.test' }, text: 'x', attachments: [] }), /not a phone number/);
});

test('the SMSC drops the link: the edge rebinds and sends again', async () => {
  smsc.drop();
  await until('a rebind', () => edge.binds === 2);
  const u = await edge.send({ channel: 'sms', account: '10690001', conversationId: 'c4', messageId: 'm-after', to: { handle: '+8613800138000' }, text: 'back again', attachments: [] });
  assert.equal(u.state, 'sent');
  assert.equal((smsc.submits.at(-1)?.short_message as smpp.DecodedMessage).message, 'back again');
  // Inbound works on the new link too.
  assert.equal(await smsc.deliver({ source_addr: '8613800138000', source_addr_ton: 1, destination_addr: '10690001', short_message: 'still here' }), 0);
  assert.equal(sink.messages.at(-1)?.text, 'still here');
});

test('a refused bind keeps retrying and is reported, never crashes', async () => {
  const wrong = await startSmsEdge({
    smsc: { host: '127.0.0.1', port: smsc.port, systemId: 'cc', password: 'wrong', reconnectBaseMs: 50, reconnectMaxMs: 100 },
    accounts: ['10690001'],
    sink,
  });
  try {
    await assert.rejects(wrong.ready(500), /not bound to the smsc within 500 ms/);
    assert.equal(wrong.binds, 0);
  } finally {
    await wrong.close();
  }
});
