/// <reference path="./smpp.d.ts" />
// Delivery receipts survive a restart of the SMS edge: the SMSC ids of what was sent live in NATS KV, so
// a receipt that reaches a new edge (after a restart, or another node smsc.bound to the same SMSC) still
// moves the right conversation's delivery state. Real nats-server, a real conversation actor, the smpp
// package's server as the SMSC.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import pino from 'pino';
import { Registry } from 'prom-client';
import smpp from 'smpp';
import { ActorNode } from '../../actors/node.ts';
import { conversationKind, type ConversationContext } from '../../machines/conversation.ts';
import { StoreClient } from '../../storage/client.ts';
import { startTestNats, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { engineSink } from '../inbound.ts';
import { startSmsEdge, type SmsEdge } from './edge.ts';
import { DEFAULT_RECEIPT_TTL_MS, kvReceipts, RECEIPTS_BUCKET } from './receipts.ts';
import { startSmsc, type TestSmsc } from '../../tests/support/peers.ts';

let nats: TestNats;
let nc: NatsConnection;
let node: ActorNode;
let smsc: TestSmsc;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  node = await ActorNode.start({ nc, nodeId: 'core', kinds: [conversationKind], shards: 2, leaseTtlMs: 2000 });
  smsc = await startSmsc({ messageIdPrefix: '0A' });
});

after(async () => {
  await node?.stop();
  await smsc?.close();
  await nats?.stop();
});

/** An SMS edge as an engine node runs it: receipts in KV, delivery states told to the conversation actor. */
async function edgeOn(conn: NatsConnection, metrics: Registry): Promise<SmsEdge> {
  const log = pino({ level: 'silent' });
  const edge = await startSmsEdge({
    smsc: { host: '127.0.0.1', port: smsc.port, systemId: 'cc', password: 'secret', reconnectBaseMs: 50 },
    accounts: ['10690001'],
    sink: engineSink({ store: new StoreClient(conn), actors: node, log }),
    receipts: await kvReceipts(conn),
    metrics,
  });
  await edge.ready(5000);
  return edge;
}

/** The SMSC's receipt for one of its message ids, to whichever ESME is smsc.bound now. */
function receipt(id: string, stat: string): Promise<number> {
  const s = smsc.bound;
  assert.ok(s, 'an ESME is smsc.bound');
  const short_message = `id:${id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:${stat} err:000 text:`;
  return new Promise((ok) => s.send(new smpp.PDU('deliver_sm', { source_addr: '8613800138000', destination_addr: '10690001', esm_class: 0x04, short_message }), (r) => ok(r.command_status)));
}

const deliveryOf = async (conversation: string, messageId: string) =>
  (await node.ask<{ context: ConversationContext }>(`conversation/${conversation}`, { type: 'get' })).context.deliveries?.[messageId];

test('a receipt that arrives after the SMS edge restarted still reaches its conversation', { timeout: 30_000 }, async () => {
  await node.tell('conversation/c_restart', { type: 'open', customer: 'k1', channel: 'sms', queue: 'support' });
  const first = await edgeOn(nc, new Registry());
  // Two parts (UCS-2, 67 characters each), so the message is delivered only once both receipts came.
  const text = '您好，您的订单已经发货。'.repeat(8);
  const sent = await first.send({ channel: 'sms', account: '10690001', conversationId: 'c_restart', messageId: 'm_restart', to: { handle: '+8613800138000' }, text, attachments: [] });
  assert.equal(sent.state, 'sent');
  const ids = sent.channelMessageId!.split(',');
  assert.equal(ids.length, 2);
  await waitFor('sent at the conversation', async () => (await deliveryOf('c_restart', 'm_restart'))?.state === 'sent', 10_000);

  // Part 1's receipt reaches the first edge: not delivered yet (part 2 is still out).
  assert.equal(await receipt(ids[0], 'DELIVRD'), 0);
  await first.close();
  assert.equal((await deliveryOf('c_restart', 'm_restart'))?.state, 'sent');

  // A new edge on a new connection (nothing shared in memory) smsc.binds, and the SMSC sends part 2's receipt there.
  const nc2 = await nats.connect();
  const metrics = new Registry();
  const second = await edgeOn(nc2, metrics);
  try {
    assert.equal(smsc.binds, 2);
    assert.equal(await receipt(ids[1], 'DELIVRD'), 0);
    await waitFor('delivered at the conversation', async () => (await deliveryOf('c_restart', 'm_restart'))?.state === 'delivered', 10_000);
    // A resent receipt changes nothing and is not "unknown".
    assert.equal(await receipt(ids[1], 'DELIVRD'), 0);
    const rejected = (await metrics.getMetricsAsJSON()).find((m) => m.name === 'cc_edge_sms_rejected_total') as { values: { value: number }[] } | undefined;
    assert.equal(rejected?.values.reduce((n, x) => n + x.value, 0) ?? 0, 0);

    // The same holds for a failure: sent by the second edge, reported after a third one took over.
    const other = await second.send({ channel: 'sms', account: '10690001', conversationId: 'c_restart', messageId: 'm_fail', to: { handle: '+8613800138000' }, text: 'code 1234', attachments: [] });
    await second.close();
    const third = await edgeOn(nc2, metrics);
    try {
      assert.equal(await receipt(other.channelMessageId!, 'UNDELIV'), 0);
      const failed = await waitFor('failed at the conversation', async () => {
        const d = await deliveryOf('c_restart', 'm_fail');
        return d?.state === 'failed' ? d : undefined;
      }, 10_000);
      assert.equal(failed.permanent, true);
      assert.match(failed.reason ?? '', /UNDELIV/);
    } finally {
      await third.close();
    }
  } finally {
    await second.close().catch(() => undefined);
  }

  // Entries expire with the receipt TTL (72 h): the bucket's max age.
  const status = await (await new Kvm(nc).open(RECEIPTS_BUCKET)).status();
  assert.equal(status.ttl, DEFAULT_RECEIPT_TTL_MS);
});
