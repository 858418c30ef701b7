/// <reference path="./smpp.d.ts" />
// Parts of a long inbound SMS survive a restart of the SMS edge: they wait in NATS KV, so the edge that
// smsc.binds next completes the message, or, when the rest never comes, its sweep delivers what came with
// the gap marked. Real nats-server, embedded SurrealDB behind the storage service, real conversation
// actors, the smpp package's server as the SMSC.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import pino from 'pino';
import smpp from 'smpp';
import { ActorNode } from '../../actors/node.ts';
import { conversationKind, type ConversationContext } from '../../machines/conversation.ts';
import { customerKind } from '../../machines/customer.ts';
import { StoreClient } from '../../storage/client.ts';
import { startStoreService, type StoreService } from '../../storage/service.ts';
import { startTestNats, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { exitWhenDone, openTestStore } from '../../tests/support/store.ts';
import { engineSink } from '../inbound.ts';
import type { InboundMessage, InboundSink } from '../message.ts';
import { startSmsEdge, type SmsEdge } from './edge.ts';
import { kvParts, partTtlMs, PARTS_BUCKET } from './reassembly.ts';
import { startSmsc, type TestSmsc } from '../../tests/support/peers.ts';

exitWhenDone();

let nats: TestNats;
let nc: NatsConnection;
let node: ActorNode;
let storeService: StoreService;
let store: StoreClient;
let smsc: TestSmsc;
/** What the engine's inbound sink took, with the conversation it answered. */
const taken: { msg: InboundMessage; conversationId: string }[] = [];

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  const { store: db } = await openTestStore();
  storeService = await startStoreService(await nats.connect(), db);
  store = new StoreClient(nc);
  node = await ActorNode.start({ nc, nodeId: 'core', kinds: [conversationKind, customerKind], shards: 2, leaseTtlMs: 2000 });
  smsc = await startSmsc();
});

after(async () => {
  await node?.stop();
  await storeService?.stop();
  await smsc?.close();
  await nats?.stop();
});

/** An SMS edge as an engine node runs it, on its own connection: held parts in KV, messages into the engine. */
async function edgeOn(conn: NatsConnection, partTimeoutMs: number): Promise<SmsEdge> {
  const log = pino({ level: 'silent' });
  const sink = engineSink({ store: new StoreClient(conn), actors: node, log });
  const recording: InboundSink = {
    async deliver(msg) {
      const r = await sink.deliver(msg);
      taken.push({ msg, conversationId: r.conversationId });
      return r;
    },
    delivery: (u) => sink.delivery(u),
  };
  const edge = await startSmsEdge({
    smsc: { host: '127.0.0.1', port: smsc.port, systemId: 'cc', password: 'secret', reconnectBaseMs: 50 },
    accounts: ['10690001'],
    sink: recording,
    parts: await kvParts(conn, { timeoutMs: partTimeoutMs }),
    partTimeoutMs,
  });
  await edge.ready(5000);
  return edge;
}

/** The SMSC sends part seq of total (UCS-2, UDH reference ref) to whichever ESME is smsc.bound now. */
function part(from: string, ref: number, total: number, seq: number, message: string): Promise<number> {
  const s = smsc.bound;
  assert.ok(s, 'an ESME is smsc.bound');
  const pdu = new smpp.PDU('deliver_sm', {
    source_addr: from,
    source_addr_ton: 1,
    destination_addr: '10690001',
    data_coding: 0x08,
    short_message: { udh: Buffer.from([0x05, 0x00, 0x03, ref, total, seq]), message },
  });
  return new Promise((ok) => s.send(pdu, (r) => ok(r.command_status)));
}

const conversationOf = async (id: string) => (await node.ask<{ context: ConversationContext }>(`conversation/${id}`, { type: 'get' })).context;

/** The texts the store holds for the conversation's customer in that conversation. */
async function storedTexts(conversationId: string): Promise<(string | undefined)[]> {
  const ctx = await conversationOf(conversationId);
  const view = await store.view({ customerId: `customer:${ctx.customer}`, viewer: 'system' });
  return view.messages.filter((m) => m.conversationId.endsWith(`:${conversationId}`)).map((m) => m.text);
}

const zh = '您好！您的订单已经发货，预计三天内送达。如有任何问题，请随时回复本短信与我们的客服联系，我们将竭诚为您服务。感谢您选择我们的产品，祝您生活愉快，万事如意！再次感谢您的支持与信任，期待您的再次光临。我们的客服热线全天候为您服务，欢迎随时来电咨询。如需修改收货地址或退换货，请在签收前回复本短信，我们会尽快为您处理。';

test('part 1 reaches one edge, parts 2 and 3 the edge that smsc.binds after it stopped: one whole message reaches the conversation', { timeout: 30_000 }, async () => {
  assert.ok(zh.length > 134 && zh.length <= 201, 'three UCS-2 parts of 67');
  const parts = [zh.slice(0, 67), zh.slice(67, 134), zh.slice(134)];
  const first = await edgeOn(nc, 10_000);
  assert.equal(await part('8613800138000', 0x51, 3, 1, parts[0]), 0);
  await first.close();
  assert.equal(taken.length, 0, 'held, not delivered');

  const nc2 = await nats.connect();
  const second = await edgeOn(nc2, 10_000);
  try {
    assert.equal(smsc.binds, 2);
    assert.equal(await part('8613800138000', 0x51, 3, 3, parts[2]), 0);
    assert.equal(taken.length, 0, 'part 2 is still missing');
    assert.equal(await part('8613800138000', 0x51, 3, 2, parts[1]), 0);
    assert.equal(taken.length, 1);
    const { msg, conversationId } = taken[0];
    assert.equal(msg.text, zh);
    assert.equal(msg.meta.parts, 3);
    assert.equal(msg.meta.partsMissing, undefined);
    assert.equal(msg.meta.dataCoding, 8);
    assert.equal(msg.from.phone, '+8613800138000');
    await waitFor('the message at the conversation', async () => (await conversationOf(conversationId)).inbound === 1, 10_000);
    assert.deepEqual(await storedTexts(conversationId), [zh]);
    // Nothing is left held: no later sweep hands it over again.
    assert.equal((await (await kvParts(nc2)).groups()).size, 0);
  } finally {
    await second.close();
  }
});

test('a group whose last part never comes is delivered, gap marked, by the edge that smsc.binds after a restart', { timeout: 30_000 }, async () => {
  const before = taken.length;
  // The first edge would wait a minute; it stops holding parts 1 and 2 of 3.
  const first = await edgeOn(nc, 60_000);
  assert.equal(await part('8613900000000', 0x07, 3, 1, '第一部分，'), 0);
  assert.equal(await part('8613900000000', 0x07, 3, 2, '第二部分。'), 0);
  await first.close();

  // The next edge (half a second to wait) smsc.binds; part 3 never comes: its sweep delivers what came.
  const nc2 = await nats.connect();
  const second = await edgeOn(nc2, 500);
  try {
    const late = await waitFor('the partial message', () => taken[before], 5000);
    assert.equal(late.msg.text, '第一部分，第二部分。[…]');
    assert.equal(late.msg.meta.parts, 3);
    assert.equal(late.msg.meta.partsMissing, 1);
    await waitFor('the message at the conversation', async () => (await conversationOf(late.conversationId)).inbound === 1, 10_000);
    assert.deepEqual(await storedTexts(late.conversationId), ['第一部分，第二部分。[…]']);
    // Handed over once: later sweeps find nothing.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(taken.length, before + 1);
    assert.equal((await (await kvParts(nc2)).groups()).size, 0);
  } finally {
    await second.close();
  }
  // Stored parts expire a little after the part timeout of the node that made the bucket (the first, 10 s).
  const status = await (await new Kvm(nc).open(PARTS_BUCKET)).status();
  assert.equal(status.ttl, partTtlMs(10_000));
});
