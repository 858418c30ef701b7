// The runtime's Prometheus figures count what happened, exactly: a node of its own on a nats-server of its
// own, so every value below comes from this test's actors alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { MAIL_STREAM, STATE_BUCKET } from '../actors/address.ts';
import { ActorNode } from '../actors/node.ts';
import { counterKind } from './support/counter.ts';
import { startTestNats, waitFor, type TestNats } from './support/nats.ts';

let nats: TestNats;
let nc: NatsConnection;
let node: ActorNode;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  node = await ActorNode.start({ nc, nodeId: 'm1', kinds: [counterKind], shards: 4, idleMs: 1000, leaseTtlMs: 2000, inspect: false });
  await waitFor('shards owned', () => node.status().shards_owned === 4);
});

after(async () => {
  await node?.stop();
  await nats?.stop();
});

/** The metric's value for the counter kind (and `via`, when given); a histogram's count of observations. */
async function value(name: string, via?: string): Promise<number> {
  const metric = node.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} exists`);
  const { values } = await metric.get();
  return values
    .filter((x) => x.labels.kind === 'counter' && (via === undefined || x.labels.via === via) && (!('metricName' in x) || x.metricName === `${name}_count`))
    .reduce((a, x) => a + x.value, 0);
}

test('activations, messages by way, batches, dead letters, passivations, timers and skipped redeliveries are counted exactly', async () => {
  let asks = 0;
  const count = async () => {
    asks++;
    return (await node.ask<{ count: number; fired: number }>('counter/meter', { type: 'get' })).count;
  };
  for (let i = 0; i < 3; i++) await node.tell('counter/meter', { type: 'inc' });
  await waitFor('three applied', async () => (await count()) === 3);
  assert.equal(await value('cc_actor_activations_total'), 1);
  assert.equal(await value('cc_actor_resident'), 1);
  assert.equal(await value('cc_actor_messages_total', 'mail'), 3);
  assert.equal(await value('cc_actor_messages_total', 'ask'), asks);
  const batches = await value('cc_actor_processing_seconds');
  assert.ok(batches >= 2 && batches <= 3 + asks, `processing observed once per batch: ${batches}`);
  assert.equal(await value('cc_shards_owned'), 4);

  // A poison message: tried 1 + 2 times, then one dead letter.
  await node.tell('counter/meter', { type: 'boom' });
  await waitFor('one dead letter', async () => (await value('cc_actor_dead_letters_total')) === 1);

  // Idle for a second: passivated, memory released.
  await waitFor('passivated', async () => (await value('cc_actor_passivations_total')) === 1, 8000);
  assert.equal(await value('cc_actor_resident'), 0);

  // Mail its stored record already covers (as after a lost acknowledgement) is skipped, counted, and not applied.
  const kv = await new Kvm(nc).open(STATE_BUCKET);
  const entry = (await kv.get('counter.meter'))!;
  const record = JSON.parse(new TextDecoder().decode(entry.value)) as { seq: number };
  const jsm = await jetstreamManager(nc);
  const last = (await jsm.streams.info(MAIL_STREAM)).state.last_seq;
  await kv.update('counter.meter', JSON.stringify({ ...record, seq: last + 2 }), entry.revision);
  await node.tell('counter/meter', { type: 'inc', by: 100 });
  await node.tell('counter/meter', { type: 'inc', by: 100 });
  await node.tell('counter/meter', { type: 'inc' });
  await waitFor('the third applied', async () => (await count()) === 4);
  assert.equal(await value('cc_actor_redeliveries_total'), 2);
  assert.equal(await value('cc_actor_activations_total'), 2);

  // A durable timer: fired once, applied as a timer message.
  await node.tell('counter/meter', { type: 'arm', ms: 100 });
  await waitFor('fired', async () => (await node.ask<{ fired: number }>('counter/meter', { type: 'get' })).fired === 1, 5000);
  assert.equal(await value('cc_actor_timers_fired_total'), 1);
  assert.equal(await value('cc_actor_messages_total', 'timer'), 1);
  assert.equal(await value('cc_actor_dead_letters_total'), 1, 'nothing else was dead-lettered');
});

test('a write by someone else while the actor is resident fences its next write: it reloads and applies on top, never over it', async () => {
  const kv = await new Kvm(nc).open(STATE_BUCKET);
  const count = async () => (await node.ask<{ count: number }>('counter/fence', { type: 'get' })).count;
  await node.tell('counter/fence', { type: 'inc', by: 5 });
  await waitFor('five', async () => (await count()) === 5);
  // Resident now (idle time 1 s). Another writer stores a newer state: count 1,000.
  const entry = (await kv.get('counter.fence'))!;
  const record = JSON.parse(new TextDecoder().decode(entry.value)) as { snapshot: { context: { count: number } } };
  record.snapshot.context.count = 1000;
  await kv.update('counter.fence', JSON.stringify(record), entry.revision);
  await node.tell('counter/fence', { type: 'inc', by: 1 });
  await waitFor('applied on top of the newer state', async () => (await count()) === 1001);
  assert.equal(await value('cc_actor_fenced_total'), 1);
});
