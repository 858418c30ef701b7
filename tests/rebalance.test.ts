// Nodes join and leave gracefully under load: shards move so the spread stays even, each moved shard's
// mail is drained and handed over without waiting for a lease to expire, and every actor ends with
// exactly the messages sent to it, applied in order, never live on two nodes at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActorClient } from '../actors/client.ts';
import { ActorNode } from '../actors/node.ts';
import { activationIntervals, overlaps } from './support/cluster.ts';
import { counterKind } from './support/counter.ts';
import { startTestNats, tempDir, waitFor } from './support/nats.ts';

const SHARDS = 12;
const LEASE_TTL_MS = 5000;
const ACTORS = 120;

test('nodes joining and leaving under load: even spread, graceful handover, every actor exact and in order, never live twice', { timeout: 180_000 }, async () => {
  const nats = await startTestNats();
  const dir = tempDir('rebalance');
  const nodes = new Map<string, ActorNode>();
  const start = async (id: string) => {
    const node = await ActorNode.start({
      nc: await nats.connect(),
      controlNc: await nats.connect(),
      nodeId: id,
      kinds: [counterKind],
      shards: SHARDS,
      leaseTtlMs: LEASE_TTL_MS,
      inspect: false,
      onActivation: (ev, kind, actor) => appendFileSync(join(dir, `activations-${id}.log`), `${Date.now()} ${id} ${ev} ${kind}/${actor}\n`),
    });
    nodes.set(id, node);
    return node;
  };
  // Shards each node hosts, once every shard is hosted exactly once.
  const spread = () => {
    const owned = [...nodes.values()].map((n) => n.status().shards_owned);
    return owned.reduce((a, b) => a + b, 0) === SHARDS ? owned : undefined;
  };
  const balanced = async (what: string, want: number[]) => {
    const t0 = Date.now();
    const got = await waitFor(what, () => ((s) => (s && s.join('/') === want.join('/') ? s : undefined))(spread()), 30_000, 20);
    return { spread: got.join('/'), ms: Date.now() - t0 };
  };
  const client = new ActorClient(await nats.connect(), SHARDS);
  try {
    await start('a');
    await balanced('a alone', [SHARDS]);

    // Each actor gets a sequence of order-sensitive `mix` values, one at a time, for as long as the nodes move.
    const want = new Array<number>(ACTORS).fill(0);
    const sent = new Array<number>(ACTORS).fill(0);
    let loading = true;
    const load = Promise.all(
      Array.from({ length: ACTORS }, async (_, i) => {
        for (let k = 0; loading; k++) {
          const by = (i * 7919 + k * 104729) % 1000;
          await client.tell(`counter/r${i}`, { type: 'mix', by }, { msgId: `r${i}-${k}` });
          want[i] = (want[i] * 31 + by) % 1_000_003;
          sent[i]++;
          await new Promise((r) => setTimeout(r, 2));
        }
      }),
    );
    const pause = () => new Promise((r) => setTimeout(r, 1500));
    await pause();
    await start('b');
    const joinB = await balanced('b joined', [6, 6]);
    await pause();
    await start('c');
    const joinC = await balanced('c joined', [4, 4, 4]);
    await pause();
    const t0 = Date.now();
    await nodes.get('a')!.stop();
    nodes.delete('a');
    const leaveA = await balanced('a left', [6, 6]);
    const leaveMs = Date.now() - t0;
    await pause();
    loading = false;
    await load;

    // Every actor holds exactly its sequence: nothing lost or applied twice, nothing reordered by a move.
    await waitFor('every actor applied its whole sequence', async () => {
      const got = await Promise.all(Array.from({ length: ACTORS }, (_, i) => client.ask<{ count: number }>(`counter/r${i}`, { type: 'get' })));
      return got.every((g, i) => g.count === want[i]);
    }, 30_000, 200);
    const intervals = activationIntervals(dir, [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    const bad = overlaps(intervals);
    const moved = [...intervals.values()].filter((l) => new Set(l.map((i) => i.node)).size > 1).length;
    const messages = sent.reduce((a, b) => a + b, 0);
    console.log(JSON.stringify({ actors: ACTORS, messages, join_b_ms: joinB.ms, join_c_ms: joinC.ms, leave_a_ms: leaveMs, rebalance_after_leave_ms: leaveA.ms, moved_actors: moved, overlaps: bad.length }));
    assert.deepEqual(bad.slice(0, 5), [], 'an actor was live on two nodes at once');
    assert.ok(moved >= ACTORS / 2, `actors moved between nodes: ${moved}`);
    // A graceful leave hands shards over at once; waiting out the lease would take the TTL.
    assert.ok(leaveMs < LEASE_TTL_MS, `a's shards were handed over in ${leaveMs} ms`);
  } finally {
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await nats.stop();
  }
});
