// A queue far larger than one NATS message: its tasks and agents are stored as parts, so every step
// writes only what changed, and the queue comes back whole and in order after it passivates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kvm } from '@nats-io/kv';
import { ActorNode } from '../actors/node.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { DEAD_STREAM, HDR_ACTOR, MAIL_STREAM, PARTS_BUCKET, STATE_BUCKET } from '../actors/address.ts';
import { createActor } from 'xstate';
import { queueKind, queueMachine } from '../machines/queue.ts';
import pino from 'pino';
import { startTestNats, waitFor } from './support/nats.ts';

test('a queue of 8,000 waiting tasks stores small records, reminds every customer, and comes back in the same order', { timeout: 180_000 }, async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const activations: string[] = [];
  let node = await ActorNode.start({ nc, nodeId: 'q1', kinds: [queueKind], shards: 2, idleMs: 500, leaseTtlMs: 2000, onActivation: (ev) => activations.push(ev) });
  try {
    await waitFor('shards owned', () => node.status().shards_owned === 2);
    const TASKS = 8_000;
    // Position notices each conversation is sent (their mail, seen on core NATS: no conversation actors here).
    const heard = new Map<string, number>();
    const dec = new TextDecoder();
    const sub = nc.subscribe('cc.mail.conversation.>', {
      callback: (_e, m) => {
        if ((JSON.parse(dec.decode(m.data)) as { type: string }).type !== 'queue.position') return;
        const id = m.headers?.get(HDR_ACTOR) ?? '';
        heard.set(id, (heard.get(id) ?? 0) + 1);
      },
    });
    const at = 1_700_000_000_000;
    const pad = 'x'.repeat(60);
    for (let i = 0; i < TASKS; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, TASKS - i) }, (_, k) => {
          const n = i + k;
          const task = { id: `t${n}`, channel: n % 7 === 0 ? 'voice' : 'webchat', tier: n % 10 === 0 ? 'vip' : 'normal', enqueuedAt: at + n, attrs: { note: pad } };
          return node.tell('queue/big', { type: 'task.add', at: at + n, task }, { msgId: `add-${n}` });
        }),
      );
    }
    await node.tell('queue/big', { type: 'worker.update', at: at + TASKS, worker: { id: 'a1', available: false, skills: {}, capacity: { voice: 1, chat: 3, email: 5 }, load: { voice: 0, chat: 0, email: 0 }, idleSince: at } });
    const view = await waitFor('all tasks queued', async () => {
      const r = await node.ask<{ waiting: number; tasks: string[] }>('queue/big', { type: 'get', at: at + TASKS });
      return r.waiting === TASKS ? r : undefined;
    }, 120_000, 500);
    // VIP voice first, then VIP, then voice, then the rest, each by arrival.
    assert.equal(view.tasks[0], 't0');
    assert.equal(view.tasks.length, TASKS);

    // Told their place when queued, then reminded (their notices date from 2023, long past reminderSec):
    // eight thousand notices leave in bounded steps, not as one outbox larger than a NATS message.
    await waitFor('every customer reminded', () => heard.size === TASKS && [...heard.values()].every((n) => n >= 2), 60_000, 200);
    sub.unsubscribe();

    const kv = await new Kvm(nc).open(STATE_BUCKET);
    const record = (await kv.get('queue.big'))!;
    assert.ok(record.value.length < 64 * 1024, `the record holds the journal, not the queue: ${record.value.length} bytes`);
    // The tasks have been rewritten as a base (made in the background) at least once.
    const tasksMeta = (JSON.parse(record.string()) as { parts: { tasks: { base?: { id: string }; pending?: string } } }).parts.tasks;
    assert.ok(tasksMeta.base, 'the tasks part has a base');

    // Passivate, then restart the node: the queue is read back from its parts.
    await waitFor('passivated', () => activations.includes('passivate'), 10_000, 100);
    await node.stop();
    node = await ActorNode.start({ nc, nodeId: 'q2', kinds: [queueKind], shards: 2, idleMs: 60_000, leaseTtlMs: 2000 });
    await waitFor('shards owned again', () => node.status().shards_owned === 2);
    const again = await node.ask<{ waiting: number; tasks: string[]; agentsAvailable: number }>('queue/big', { type: 'get', at: at + TASKS });
    assert.deepEqual(again.tasks, view.tasks);
    // The agent comes back too, and a change after the restart is applied on top of the stored parts.
    await node.tell('queue/big', { type: 'task.cancel', at: at + TASKS + 1, taskId: 't0' });
    const after = await waitFor('cancel applied', async () => {
      const r = await node.ask<{ waiting: number; tasks: string[] }>('queue/big', { type: 'get', at: at + TASKS + 2 });
      return r.waiting === TASKS - 1 ? r : undefined;
    });
    assert.deepEqual(after.tasks, view.tasks.slice(1));
  } finally {
    await node.stop();
    await nats.stop();
  }
});

test('a queue stored before its tasks were a part (a plain array inline in the record) loads, routes and is then stored as parts', { timeout: 60_000 }, async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const kv = await new Kvm(nc).create(STATE_BUCKET, { history: 1 });
  const at = 1_700_000_000_000;
  // The record as an older node wrote it: the whole context inline, tasks as an array, no `parts`.
  const actor = createActor(queueMachine, { input: { id: 'old' } }).start();
  const snapshot = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as { value: unknown; context: Record<string, unknown> };
  actor.stop();
  snapshot.value = 'waiting';
  snapshot.context.tasks = ['t1', 't2', 't3'].map((id, i) => ({ id, channel: 'webchat', skills: [], excluded: [], tier: 'normal', urgent: false, enqueuedAt: at + i, attrs: {}, told: i + 1, toldAt: at + i }));
  await kv.put('queue.old', JSON.stringify({ machine: queueMachine.id, version: queueKind.version, seq: 0, snapshot, timers: [], outbox: [], steps: 0 }));
  const node = await ActorNode.start({ nc, nodeId: 'q1', kinds: [queueKind], shards: 2, idleMs: 60_000, leaseTtlMs: 2000 });
  try {
    await waitFor('shards owned', () => node.status().shards_owned === 2);
    const view = await node.ask<{ waiting: number; tasks: string[] }>('queue/old', { type: 'get', at: at + 10 });
    assert.deepEqual(view.tasks, ['t1', 't2', 't3']);
    // A free agent gets the first task; the list is now the machine's own again, and stored as a part.
    await node.tell('queue/old', { type: 'worker.update', at: at + 20, worker: { id: 'a1', available: true, skills: {}, capacity: { voice: 0, chat: 1, email: 0 }, load: { voice: 0, chat: 0, email: 0 }, idleSince: at } });
    await node.tell('queue/old', { type: 'task.cancel', at: at + 30, taskId: 't3' });
    const after = await waitFor('cancel applied', async () => {
      const r = await node.ask<{ waiting: number; offering: number; tasks: string[] }>('queue/old', { type: 'get', at: at + 40 });
      return r.waiting === 2 ? r : undefined;
    });
    assert.deepEqual([after.tasks, after.offering], [['t1', 't2'], 1]);
    const record = JSON.parse((await kv.get('queue.old'))!.string()) as { parts?: Record<string, unknown>; snapshot: { context: { tasks: unknown[] } } };
    assert.ok(record.parts?.tasks, 'the tasks are a part now');
    assert.deepEqual(record.snapshot.context.tasks, [], 'and no longer inline');
  } finally {
    await node.stop();
    await nats.stop();
  }
});

test('a part that is not there yet when the queue activates (a replica behind) is read again, and no mail is dead-lettered', { timeout: 60_000 }, async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const activations: string[] = [];
  const logs: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
  const node = await ActorNode.start({ nc, nodeId: 'p1', kinds: [queueKind], shards: 2, idleMs: 300, leaseTtlMs: 2000, log, onActivation: (ev) => activations.push(ev) });
  try {
    await waitFor('shards owned', () => node.status().shards_owned === 2);
    const at = 1_700_000_000_000;
    // Agents only, no customers waiting: an idle queue has no tick, so only mail wakes it.
    const AGENTS = 300;
    const worker = (n: number, available: boolean) => ({ id: `w${n}`, available, skills: { [`skill-${n}`]: 1 }, capacity: { voice: 1, chat: 3, email: 5 }, load: { voice: 0, chat: 0, email: 0 }, idleSince: at });
    await Promise.all(Array.from({ length: AGENTS }, (_, n) => node.tell('queue/late', { type: 'worker.update', at: at + n, worker: worker(n, false) }, { msgId: `late-${n}` })));
    const view = () => node.ask<{ agentsAvailable: number }>('queue/late', { type: 'get', at: at + AGENTS });
    const jsm = await jetstreamManager(nc);
    await waitFor('every update applied', async () => (await jsm.streams.info(MAIL_STREAM)).state.messages === 0, 30_000, 100);
    await waitFor('passivated', () => activations.includes('passivate'), 10_000, 50);
    // The record names stored pieces of the agents part: one of them goes missing for a moment.
    const parts = await new Kvm(nc).open(PARTS_BUCKET);
    const keys: string[] = [];
    for await (const k of await parts.keys('queue.late.workers.>')) keys.push(k);
    assert.ok(keys.length > 0, 'the agents part has stored pieces');
    const key = keys.sort()[0];
    const kept = (await parts.get(key))!.string();
    await parts.purge(key);
    await node.tell('queue/late', { type: 'worker.update', at: at + AGENTS + 1, worker: worker(0, true) });
    // Back once the node has looked for it and not found it.
    await waitFor('the node found the piece missing', () => logs.some((l) => l.includes(`part ${key} is missing`)), 10_000, 5);
    await parts.put(key, kept);
    await waitFor('the update applied on the whole queue', async () => ((await view()).agentsAvailable === 1 ? true : undefined), 20_000, 100);
    const dead = await jsm.streams.info(DEAD_STREAM);
    assert.equal(dead.state.messages, 0, 'nothing was dead-lettered');
  } finally {
    await node.stop();
    await nats.stop();
  }
});
