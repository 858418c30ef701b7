// Parts of a context stored outside the snapshot: what is written, and that reading back gives the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kvm } from '@nats-io/kv';
import { startTestNats } from '../tests/support/nats.ts';
import { PartState, commitPart, diffPart, listPart, loadPart, mapPart, planPart, stripContext, type PartPlan } from './parts.ts';

interface Item {
  id: string;
  n: number;
  pad: string;
}
const byN = listPart((i: Item) => i.id, (items: Item[]) => [...items].sort((a, b) => a.n - b.n));

test('diff finds upserts by reference and removals, and nothing when the value is the stored one', () => {
  const s = new PartState();
  const a = { id: 'a', n: 1, pad: '' };
  const b = { id: 'b', n: 2, pad: '' };
  const first = planPart('k.x', 'f', s, [a, b], byN);
  assert.deepEqual(first.changes.map(([k]) => k), ['a', 'b']);
  commitPart(s, first);
  assert.deepEqual(diffPart(s, s.ref, byN), []);
  const b2 = { ...b, n: 3 };
  assert.deepEqual(diffPart(s, [b2], byN), [
    ['b', b2],
    ['a', null],
  ]);
  const m = new PartState();
  const p = planPart('k.x', 'm', m, { x: 1, y: 2 }, mapPart());
  commitPart(m, p);
  assert.deepEqual(diffPart(m, { y: 2, z: 3 }, mapPart()), [
    ['z', 3],
    ['x', null],
  ]);
});

test('the context stored in the record has its parts emptied', () => {
  assert.deepEqual(stripContext({ id: 'q', tasks: [1, 2], workers: { a: 1 } }, { tasks: byN, workers: mapPart() }), { id: 'q', tasks: [], workers: {} });
});

test('thousands of steps: journal, sealed segments and new bases read back to the same list', async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  try {
    const kv = await new Kvm(nc).create('parts_test', { history: 1 });
    const state = new PartState();
    let list: Item[] = [];
    let next = 0;
    let segments = 0;
    let bases = 0;
    let garbage: string[] = [];
    const pad = 'x'.repeat(150);
    const store = async (plan: PartPlan) => {
      await Promise.all(plan.writes.map((w) => kv.put(w.key, w.data)));
      commitPart(state, plan);
      for (const k of plan.garbage) await kv.purge(k);
      garbage = garbage.concat(plan.garbage);
    };
    for (let step = 0; step < 6000; step++) {
      // Mostly adds, some changes and removals, like a busy queue.
      const r = step % 10;
      if (r < 6 || list.length < 10) list = [...list, { id: `t${next}`, n: next++, pad }];
      else if (r < 8) list = list.map((it, i) => (i === step % list.length ? { ...it, pad: `${pad}${step}` } : it));
      else list = list.filter((_, i) => i !== step % list.length);
      const before = { segs: state.meta.segs.length, base: state.meta.base?.id };
      const plan = planPart('queue.q1', 'tasks', state, list, byN);
      if (plan.meta.segs.length > before.segs) segments++;
      if (plan.meta.base?.id !== before.base) bases++;
      await store(plan);
    }
    assert.ok(segments > 10, `segments sealed: ${segments}`);
    assert.ok(bases >= 1, `bases written: ${bases}`);
    const { value, state: loaded } = await loadPart(kv, 'queue.q1', 'tasks', state.meta, byN, {});
    assert.deepEqual(value, [...list].sort((a, b) => a.n - b.n));
    assert.equal(loaded.items.size, list.length);
    for (const k of garbage) assert.notEqual((await kv.get(k))?.operation, 'PUT', `old piece ${k} was removed`);
    // A piece the record points at must exist: a missing one is an error, never a silent empty list.
    const lost = state.meta.base ?? state.meta.segs[0];
    await kv.purge(`queue.q1.tasks.${lost.id}.0`);
    await assert.rejects(loadPart(kv, 'queue.q1', 'tasks', state.meta, byN, {}), /is missing/);
  } finally {
    await nats.stop();
  }
});
