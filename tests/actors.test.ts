// The actor runtime on one node against a real nats-server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { ActorNode } from '../actors/node.ts';
import { AskError } from '../actors/client.ts';
import { DEAD_STREAM, HDR_ACTOR, HDR_REASON, STATE_BUCKET, TIMER_BUCKET, keys, refString, shardOf } from '../actors/address.ts';
import { defineKind } from '../actors/kind.ts';
import { watchInspection } from '../actors/inspection.ts';
import { counterKind, poison } from './support/counter.ts';
import { startTestNats, waitFor, type TestNats } from './support/nats.ts';

type Count = { count: number; fired: number };

describe('actor runtime, one node', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let node: ActorNode;
  const activations: string[] = [];

  before(async () => {
    nats = await startTestNats();
    nc = await nats.connect();
    node = await ActorNode.start({
      nc,
      nodeId: 'n1',
      kinds: [counterKind],
      shards: 4,
      idleMs: 400,
      leaseTtlMs: 2000,
      onActivation: (ev, kind, id) => activations.push(`${ev} ${kind}/${id}`),
    });
    await waitFor('shards owned', () => node.status().shards_owned === 4);
  });

  after(async () => {
    await node?.stop();
    await nats?.stop();
  });

  test('tell is durable and ask sees its effect; a new actor starts from its initial state', async () => {
    await node.tell('counter/a1', { type: 'inc', by: 2 });
    await node.tell('counter/a1', { type: 'inc' });
    const r = await waitFor('count 3', async () => {
      const c = await node.ask<Count>('counter/a1', { type: 'get' });
      return c.count === 3 ? c : undefined;
    });
    assert.equal(r.fired, 0);
    const fresh = await node.ask<Count>('counter/never-seen', { type: 'get' });
    assert.deepEqual(fresh, { count: 0, fired: 0 });
  });

  test('messages to one actor apply one at a time and in order; many actors run in parallel', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `p${i}`);
    await Promise.all(ids.flatMap((id) => Array.from({ length: 20 }, (_, k) => node.tell(`counter/${id}`, { type: 'inc', by: k }))));
    for (const id of ids) {
      await waitFor(`count of ${id}`, async () => (await node.ask<Count>(`counter/${id}`, { type: 'get' })).count === 190);
    }
  });

  test('the same message id is applied once', async () => {
    for (let i = 0; i < 3; i++) await node.tell('counter/dedup', { type: 'inc' }, { msgId: 'same-id' });
    await node.tell('counter/dedup', { type: 'inc', by: 100 });
    await waitFor('count 101', async () => (await node.ask<Count>('counter/dedup', { type: 'get' })).count === 101);
  });

  test('ask without a reply effect answers with the snapshot view', async () => {
    const v = await node.ask<{ value: string; context: { count: number } }>('counter/view', { type: 'inc', by: 5 });
    assert.equal(v.value, 'idle');
    assert.equal(v.context.count, 5);
  });

  test('asks are answered with the state right after them, and an ask that changes the actor is stored', async () => {
    await node.tell('counter/quick', { type: 'inc', by: 2 });
    await waitFor('count 2', async () => (await node.ask<Count>('counter/quick', { type: 'get' })).count === 2);
    const seen = await Promise.all(Array.from({ length: 20 }, () => node.ask<Count>('counter/quick', { type: 'get' })));
    assert.ok(seen.every((c) => c.count === 2));
    // Asks that change the actor, sent together: each applied once, in order, and stored.
    const views = await Promise.all([1, 2, 3].map((by) => node.ask<{ context: { count: number } }>('counter/quick', { type: 'inc', by })));
    assert.deepEqual(views.map((v) => v.context.count), [3, 5, 8]);
    const kv = await new Kvm(nc).open(STATE_BUCKET);
    assert.equal((await kv.get('counter.quick'))!.json<{ snapshot: { context: { count: number } } }>().snapshot.context.count, 8);
    assert.equal((await node.ask<Count>('counter/quick', { type: 'get' })).count, 8);
  });

  test('bad input is rejected with a reason', async () => {
    await assert.rejects(node.tell('counter/has.dot', { type: 'inc' }), /actor id must be/);
    // Order itself: each actor's values go in one after another while 20 actors interleave; the count is a
    // hash of the values in the order applied, so a reordered or repeated message changes it.
    const mixed = Array.from({ length: 20 }, (_, i) => `o${i}`);
    await Promise.all(
      mixed.map(async (id, i) => {
        for (let k = 0; k < 30; k++) await node.tell(`counter/${id}`, { type: 'mix', by: i * 100 + k });
      }),
    );
    for (const [i, id] of mixed.entries()) {
      let want = 0;
      for (let k = 0; k < 30; k++) want = (want * 31 + i * 100 + k) % 1_000_003;
      await waitFor(`order of ${id}`, async () => (await node.ask<Count>(`counter/${id}`, { type: 'get' })).count === want);
    }
    await assert.rejects(node.tell('nokind', { type: 'inc' }), /actor address must be kind\/id/);
    await assert.rejects(node.ask('counter/x', { type: '' }), (e: unknown) => e instanceof AskError && /event type must not be empty/.test(e.message));
    await assert.rejects(node.ask('counter/x', { type: 'boom' }), (e: unknown) => e instanceof AskError && e.code === 'rejected' && /boom is poison/.test(e.message));
    // An address given as an object is checked as a string one is: its id becomes a subject token.
    await assert.rejects(node.ask({ kind: 'counter', id: 'a.b' }, { type: 'get' }), /actor id must be 1 to 200 letters/);
    await assert.rejects(node.tell({ kind: 'counter', id: '>' }, { type: 'inc' }), /actor id must be 1 to 200 letters/);
    // Asks sent by hand to the shard's subject (the id is its last token) get the reason back.
    const raw = async (subject: string, body: string) => (await nc.request(subject, body, { timeout: 5000 })).json<{ ok: boolean; error?: string }>();
    const shard = shardOf('x', 4);
    const notJson = await raw(`cc.ask.counter.${shard}.x`, 'not json');
    assert.equal(notJson.ok, false);
    assert.match(notJson.error!, /^invalid event: .*JSON/);
    const bad = 'a+b';
    assert.deepEqual(await raw(`cc.ask.counter.${shardOf(bad, 4)}.${bad}`, '{"type":"get"}'), { ok: false, error: 'invalid actor id in the subject: "a+b"' });
  });

  test('ask: a typed reply is checked, and with no node hosting the kind it times out within its budget', async () => {
    const Reply = v.object({ count: v.number(), fired: v.number() });
    assert.deepEqual(await node.ask('counter/typed', { type: 'get' }, { reply: Reply }), { count: 0, fired: 0 });
    await assert.rejects(
      node.ask('counter/typed', { type: 'get' }, { reply: v.object({ count: v.string() }) }),
      (e: unknown) => e instanceof AskError && e.code === 'invalid' && /ask counter\/typed get: unexpected reply: .*string/.test(e.message),
    );
    // No node hosts `nobody`: the ask retries while no one answers (a shard between owners), then gives up.
    const started = Date.now();
    await assert.rejects(node.ask('nobody/x', { type: 'get' }, { timeoutMs: 600 }), (e: unknown) => e instanceof AskError && e.code === 'timeout' && /ask nobody\/x get: timed out after 600 ms/.test(e.message));
    const took = Date.now() - started;
    assert.ok(took >= 550 && took < 2_000, `gave up after ${took} ms`);
  });

  test('a poison message is dead-lettered with its reason after bounded retries, and the actor goes on', async () => {
    const tried = poison.attempts;
    await node.tell('counter/poison', { type: 'inc' });
    await node.tell('counter/poison', { type: 'boom' });
    await node.tell('counter/poison', { type: 'inc' });
    await waitFor('count 2', async () => (await node.ask<Count>('counter/poison', { type: 'get' })).count === 2);
    assert.equal(poison.attempts - tried, 3, 'one try and the two retries the node allows, no more');
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(DEAD_STREAM);
    assert.ok(info.state.messages >= 1);
    const msg = await jsm.streams.getMessage(DEAD_STREAM, { last_by_subj: 'cc.dead.counter' });
    assert.match(msg!.header!.get(HDR_REASON), /boom is poison/);
    assert.equal(msg!.json<{ type: string }>().type, 'boom');
    // A malformed event in the stream is dead-lettered too, not crashed on.
    const h = natsHeaders();
    h.set('Cc-Actor', 'poison');
    await node.client.js.publish('cc.mail.counter.0', 'not json', { headers: h });
    await node.client.js.publish('cc.mail.counter.0', JSON.stringify({ type: 'inc' }));
    await waitFor('two more dead letters', async () => (await jsm.streams.info(DEAD_STREAM)).state.messages >= 3);
    const last = await jsm.streams.getMessage(DEAD_STREAM, { last_by_subj: 'cc.dead.counter' });
    assert.match(last!.header!.get(HDR_REASON), /missing or invalid Cc-Actor header|invalid event/);
  });

  test('a timer whose event throws is dead-lettered with the reason, and the actor goes on', async () => {
    const jsm = await jetstreamManager(nc);
    await node.tell('counter/doomed', { type: 'doom', ms: 300 });
    const dead = await waitFor('the timer dead-lettered', async () => {
      const m = await jsm.streams.getMessage(DEAD_STREAM, { last_by_subj: 'cc.dead.counter' });
      return m?.header?.get('Cc-Source') === 'timer' && m.header.get(HDR_ACTOR) === 'doomed' ? m : undefined;
    });
    assert.match(dead.header!.get(HDR_REASON), /the timer is poison/);
    // The letter is the timer's own event, with the time it was due.
    const letter = dead.json<{ type: string; at: number }>();
    assert.match(letter.type, /^xstate\.after\./);
    assert.ok(letter.at > 0);
    await node.tell('counter/doomed', { type: 'inc' });
    await waitFor('count 1', async () => (await node.ask<Count>('counter/doomed', { type: 'get' })).count === 1);
  });

  test('publish effects are sent once stored; one no stream takes is dead-lettered with the reason after bounded tries, and the actor goes on', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'TEST_ANNOUNCE', subjects: ['test.announce.>'] });
    await node.tell('counter/loud', { type: 'inc' });
    await node.tell('counter/loud', { type: 'announce', subject: 'test.announce.loud' });
    await node.tell('counter/loud', { type: 'announce', subject: 'cc.nowhere.loud' });
    await node.tell('counter/loud', { type: 'inc' });
    await waitFor('count 2', async () => (await node.ask<Count>('counter/loud', { type: 'get' })).count === 2, 20_000);
    const sent = await jsm.streams.getMessage('TEST_ANNOUNCE', { last_by_subj: 'test.announce.loud' });
    assert.deepEqual(sent!.json(), { count: 1 });
    const dead = await jsm.streams.getMessage(DEAD_STREAM, { last_by_subj: 'cc.dead.counter' });
    assert.equal(dead!.header!.get('Cc-Subject'), 'cc.nowhere.loud');
    assert.match(dead!.header!.get(HDR_REASON), /^effect to cc\.nowhere\.loud not sent after 5 attempts: /);
    assert.deepEqual(dead!.json(), { count: 1 });
    // Nothing is left to send: the stored outbox was cleared once the effect was dead-lettered.
    const kv = await new Kvm(nc).open(STATE_BUCKET);
    await waitFor('outbox cleared', async () => JSON.parse(new TextDecoder().decode((await kv.get('counter.loud'))!.value)).outbox.length === 0);
  });

  test('mailbox lag shows a backlog while it lasts and goes back to 0 once the shard is quiet', async () => {
    const lag = async () => (await node.registry.getSingleMetric('cc_actor_mailbox_lag')!.get()).values.map((x) => x.value);
    let most = 0;
    let burst = true;
    const watch = (async () => {
      while (burst) {
        most = Math.max(most, ...(await lag()));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const ids = Array.from({ length: 40 }, (_, i) => `lag${i}`);
    await Promise.all(Array.from({ length: 4000 }, (_, i) => node.tell(`counter/${ids[i % ids.length]}`, { type: 'inc' })));
    for (const id of ids) await waitFor(`count of ${id}`, async () => (await node.ask<Count>(`counter/${id}`, { type: 'get' })).count === 100);
    burst = false;
    await watch;
    assert.ok(most > 0, 'the burst was seen as a backlog');
    await waitFor('lag 0 on every shard', async () => (await lag()).every((n) => n === 0), 10_000);
  });

  test('a state too large for NATS is refused with the reason; the actor keeps its stored state', async () => {
    await node.tell('counter/big', { type: 'inc', by: 1 });
    await node.tell('counter/big', { type: 'grow', kb: 2048 });
    await node.tell('counter/big', { type: 'inc', by: 1 });
    await waitFor('count 2', async () => (await node.ask<Count>('counter/big', { type: 'get' })).count === 2);
    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage(DEAD_STREAM, { last_by_subj: 'cc.dead.counter' });
    assert.match(dead!.header!.get(HDR_REASON), /snapshot of \d+ bytes would exceed the server's \d+-byte message limit/);
    await assert.rejects(node.ask('counter/big', { type: 'grow', kb: 2048 }), /would exceed/);
  });

  test('durable timers fire, and survive passivation', async () => {
    await node.tell('counter/t1', { type: 'arm', ms: 1200 });
    await waitFor('armed', async () => (await node.ask<{ value: string }>('counter/t1', { type: 'noop' })).value === 'armed');
    // Idle time is 400 ms: the actor passivates before its timer is due; the shard's clock wakes it.
    await waitFor('passivated', () => activations.includes('passivate counter/t1'), 3000);
    await waitFor('fired', async () => (await node.ask<Count>('counter/t1', { type: 'get' })).fired === 1, 5000);
  });

  test('cancelled timers do not fire', async () => {
    await node.tell('counter/t2', { type: 'arm', ms: 500 });
    await node.tell('counter/t2', { type: 'disarm' });
    await new Promise((r) => setTimeout(r, 900));
    assert.equal((await node.ask<Count>('counter/t2', { type: 'get' })).fired, 0);
  });

  test('effects leave through the outbox: a tell to another actor arrives once', async () => {
    await node.tell('counter/src', { type: 'forward', to: 'counter/dst' });
    await waitFor('forwarded', async () => (await node.ask<Count>('counter/dst', { type: 'get' })).count === 10);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await node.ask<Count>('counter/dst', { type: 'get' })).count, 10);
    // Sent, and the sender's mailbox is empty: its stored outbox is cleared, so that an activation long
    // after the dedup window sends nothing again.
    const kv = await new Kvm(nc).open(STATE_BUCKET);
    await waitFor('outbox cleared', async () => (await kv.get('counter.src'))!.json<{ outbox: unknown[] }>().outbox.length === 0);
  });

  test('idle actors passivate and come back from their snapshot', async () => {
    await node.tell('counter/idle', { type: 'inc', by: 7 });
    await waitFor('seven', async () => (await node.ask<Count>('counter/idle', { type: 'get' })).count === 7);
    await waitFor('passivated', () => activations.includes('passivate counter/idle'), 3000);
    assert.equal((await node.ask<Count>('counter/idle', { type: 'get' })).count, 7);
    assert.equal(activations.filter((a) => a === 'activate counter/idle').length, 2);
  });

  test('inspection events are published per actor', async () => {
    const sub = nc.subscribe('cc.inspect.counter.watched', { max: 1 });
    const got = (async () => {
      for await (const m of sub) return m.json<{ type: string; actorRef: string; snapshot: { context: { count: number } } }>();
    })();
    await node.tell('counter/watched', { type: 'inc', by: 4 });
    const ev = await got;
    assert.equal(ev?.type, '@xstate.snapshot');
    assert.equal(ev?.actorRef, 'counter/watched');
    assert.equal(ev?.snapshot.context.count, 4);
  });

  test('a watched actor: its activation, each event applied (with the actor that sent it) and each change are inspected, in that order', async () => {
    const seen: { subject: string; type: string; sourceRef?: string; event?: { type: string } }[] = [];
    const sub = nc.subscribe('cc.inspect.counter.>', {
      callback: (_e, m) => {
        const d = m.json<{ type: string; actorRef: string; sourceRef?: string; event?: { type: string } }>();
        if (d.actorRef === 'counter/insp') seen.push({ subject: m.subject, type: d.type, sourceRef: d.sourceRef, event: d.event && { type: d.event.type } });
      },
    });
    const watch = await watchInspection(nc, { kind: 'counter', id: 'insp' });
    await waitFor('the node knows of the watch', () => node.inspects('counter', 'insp'));
    assert.equal(node.inspects('counter', 'other'), false, 'a watch of one actor is of that actor only');
    await node.tell('counter/insp-src', { type: 'forward', to: 'counter/insp' });
    await waitFor('the forwarded tell inspected', () => seen.some((x) => x.type === '@xstate.snapshot'));
    assert.equal((await node.ask<Count>('counter/insp', { type: 'get' })).count, 10);
    await waitFor('the ask inspected', () => seen.length >= 4);
    assert.deepEqual(seen.slice(0, 4), [
      { subject: 'cc.inspect.counter.insp.actor', type: '@xstate.actor', sourceRef: undefined, event: undefined },
      { subject: 'cc.inspect.counter.insp.event', type: '@xstate.event', sourceRef: 'counter/insp-src', event: { type: 'inc' } },
      { subject: 'cc.inspect.counter.insp', type: '@xstate.snapshot', sourceRef: undefined, event: { type: 'inc' } },
      // An ask changes nothing here: its event is inspected, with no snapshot after it.
      { subject: 'cc.inspect.counter.insp.event', type: '@xstate.event', sourceRef: undefined, event: { type: 'get' } },
    ]);

    // Unwatched again: changes still show as snapshots (the workspace follows those); events no longer go out.
    await watch.stop();
    await waitFor('the node knows the watch ended', () => !node.inspects('counter', 'insp'));
    seen.length = 0;
    await node.tell('counter/insp', { type: 'inc', by: 1 });
    await waitFor('the change inspected', () => seen.some((x) => x.type === '@xstate.snapshot'));
    await node.ask<Count>('counter/insp', { type: 'get' });
    await nc.flush();
    // The ask's answer and any inspection of it leave the node together: a round trip later, nothing more came.
    await node.ask<Count>('counter/insp', { type: 'get' });
    sub.unsubscribe();
    assert.deepEqual(seen.map((x) => x.type), ['@xstate.snapshot']);
  });

  test('a watch of a kind covers all its actors; a dead watcher\'s key holds until its time, then lapses', async () => {
    const watch = await watchInspection(nc, { kind: 'counter' });
    await waitFor('the node knows of the watch', () => node.inspects('counter', 'any-1') && node.inspects('counter', 'any-2'));
    await watch.stop();
    await waitFor('the node knows it ended', () => !node.inspects('counter', 'any-1'));
    // A watcher that died leaves its key, which no renewal or stop will touch: it counts until the time it set.
    const bucket = await new Kvm(nc).open('cc_inspect_watch');
    await bucket.put('counter.gone-watcher', new TextEncoder().encode(JSON.stringify({ until: Date.now() + 1500 })));
    await waitFor('held by the dead watcher\'s key', () => node.inspects('counter', 'any-1'));
    await waitFor('lapsed at its time', () => !node.inspects('counter', 'any-1'), 5000, 100);
    await assert.rejects(watchInspection(nc, { kind: 'Counter' }), /actor kind must be lower-case/);
  });

  test('a snapshot of an unknown machine version fails loudly and is never reset', async () => {
    await node.tell('counter/old', { type: 'inc', by: 3 });
    await waitFor('three', async () => (await node.ask<Count>('counter/old', { type: 'get' })).count === 3);
    // A node that runs version 2 without a migration from 1 refuses the snapshot.
    const v2 = defineKind({ ...counterKind, version: 2 });
    const nc2 = await nats.connect();
    await node.stop();
    const node2 = await ActorNode.start({ nc: nc2, nodeId: 'n2', kinds: [v2], shards: 4, leaseTtlMs: 2000 });
    try {
      await waitFor('shards owned', () => node2.status().shards_owned === 4);
      await assert.rejects(node2.ask('counter/old', { type: 'get' }), /version 1 of machine "counter" but this node runs version 2 and has no migration from 1 \(counter\/old\)/);
      const kv = await new Kvm(nc).open(STATE_BUCKET);
      const stored = (await kv.get('counter.old'))!.json<{ version: number; snapshot: { context: { count: number } } }>();
      assert.equal(stored.version, 1);
      assert.equal(stored.snapshot.context.count, 3);
    } finally {
      await node2.stop();
      node = await ActorNode.start({ nc, nodeId: 'n1', kinds: [counterKind], shards: 4, leaseTtlMs: 2000 });
    }
  });

  test('with a migration the old snapshot loads', async () => {
    await node.stop();
    const v2 = defineKind({ ...counterKind, version: 2, migrations: { 1: (s) => s } });
    node = await ActorNode.start({ nc, nodeId: 'n3', kinds: [v2], shards: 4, leaseTtlMs: 2000 });
    await waitFor('shards owned', () => node.status().shards_owned === 4);
    assert.equal((await node.ask<Count>('counter/old', { type: 'get' })).count, 3);
    assert.equal(refString({ kind: 'counter', id: 'old' }), 'counter/old');
  });

});

test("a deadline the timer index's first listing missed (a stream still settling after a restart) is armed by a later reading", async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const opts = { nc, kinds: [counterKind], shards: 1, leaseTtlMs: 2000 };
  let node = await ActorNode.start({ ...opts, nodeId: 'm1' });
  try {
    await waitFor('shard owned', () => node.status().shards_owned === 1);
    await node.tell('counter/late', { type: 'arm', ms: 1000 });
    await waitFor('armed', async () => (await node.ask<{ value: string }>('counter/late', { type: 'noop' })).value === 'armed');
    await node.stop();
    // The index entry is away while the next node's shard starts, and comes back after (as a lagging
    // replica catches up): only a later reading of the index can arm it.
    const timers = await new Kvm(nc).open(TIMER_BUCKET);
    const key = keys.timer('counter', 0, 'late');
    const due = (await timers.get(key))!.string();
    await timers.delete(key);
    node = await ActorNode.start({ ...opts, nodeId: 'm2' });
    await waitFor('shard owned', () => node.status().shards_owned === 1);
    const startedAt = Date.now();
    await timers.put(key, due);
    // Read from the store, not asked: an ask would activate the actor, which arms its timers itself.
    const state = await new Kvm(nc).open(STATE_BUCKET);
    const fired = async () => (await state.get('counter.late'))!.json<{ snapshot: { context: { fired: number } } }>().snapshot.context.fired === 1;
    assert.equal(await fired(), false, 'overdue, yet not armed by the start');
    await waitFor('fired after the index was read again', fired, 15_000, 100);
    assert.ok(Date.now() - startedAt >= 3000, 'by the rescan a few seconds after the start');
    // Fired and stored: its index entry is gone, so later readings do not wake it again.
    await waitFor('index entry removed', async () => (await timers.get(key))?.operation !== 'PUT');
  } finally {
    await node.stop();
    await nats.stop();
  }
});
