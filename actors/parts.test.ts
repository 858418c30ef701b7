// Parts of a context stored outside the snapshot: what is written, and that reading back gives the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kvm, type KV } from '@nats-io/kv';
import { startTestNats } from '../tests/support/nats.ts';
import { PartState, SharedMap, commitPart, diffPart, listPart, loadPart, mapPart, noteChanges, notedChanges, planPart, segmentCount, sharedMapPart, stripContext, writeBackground, type Change, type PartMeta, type PartPlan } from './parts.ts';

/** Runs `body` with a new KV bucket on a nats-server of its own. */
async function withBucket(name: string, body: (kv: KV) => Promise<void>): Promise<void> {
  const nats = await startTestNats();
  try {
    const nc = await nats.connect();
    await body(await new Kvm(nc).create(name, { history: 1 }));
  } finally {
    await nats.stop();
  }
}

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

test('thousands of steps: journal, sealed segments and new bases read back to the same list', () =>
  withBucket('parts_test', async (kv) => {
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
      await writeBackground(state, plan, (k, d) => kv.put(k, d));
      for (const k of plan.garbage) await kv.purge(k);
      garbage = garbage.concat(plan.garbage);
    };
    for (let step = 0; step < 6000; step++) {
      // Mostly adds, some changes and removals, like a busy queue.
      const r = step % 10;
      if (r < 6 || list.length < 10) list = [...list, { id: `t${next}`, n: next++, pad }];
      else if (r < 8) list = list.map((it, i) => (i === step % list.length ? { ...it, pad: `${pad}${step}` } : it));
      else list = list.filter((_, i) => i !== step % list.length);
      const before = { segs: segmentCount(state.meta), base: state.meta.base?.id };
      const plan = planPart('queue.q1', 'tasks', state, list, byN);
      if (segmentCount(plan.meta) > before.segs) segments++;
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
  }));

const rnd = (() => {
  let x = 7;
  return (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) % n);
})();

test('a SharedMap changes by copies that leave older versions as they were, and compares by bucket', () => {
  let m = SharedMap.from<number>();
  const versions: [SharedMap<number>, Record<string, number>][] = [];
  const plain: Record<string, number> = {};
  for (let step = 0; step < 3000; step++) {
    const k = `a${rnd(400)}`;
    const before = m;
    if (rnd(4) === 0) {
      m = m.delete(k);
      delete plain[k];
    } else {
      const n = rnd(1000);
      m = m.set(k, n);
      plain[k] = n;
    }
    if (step % 100 === 0) versions.push([m, { ...plain }]);
    // What changed is exactly what a comparison of the two as records finds.
    const s = new PartState();
    commitPart(s, planPart('k', 'm', s, before.toJSON(), mapPart()));
    assert.deepEqual(new Map(m.changesSince(before)), new Map(diffPart(s, m.toJSON(), mapPart())));
  }
  for (const [v, was] of versions) {
    assert.deepEqual(v.toJSON(), was);
    assert.equal(v.size, Object.keys(was).length);
    for (const [k, n] of Object.entries(was)) assert.equal(v.get(k), n);
  }
  const [k0, v0] = [...m][0];
  assert.equal(m.set(k0, v0), m, 'setting the same value keeps the version');
  assert.equal(m.delete('nobody'), m);
});

test('a SharedMap part stores only what changed and reads back as a SharedMap', () =>
  withBucket('parts_shared', async (kv) => {
    const c = sharedMapPart();
    const state = new PartState();
    let m = SharedMap.from<{ id: string; n: number }>();
    for (let step = 0; step < 2000; step++) {
      const id = `a${rnd(300)}`;
      const before = m;
      m = rnd(5) === 0 ? m.delete(id) : m.set(id, { id, n: step });
      const plan = planPart('queue.s', 'workers', state, m, c);
      assert.ok(plan.changes.length <= 1, 'one agent changed, one change stored');
      assert.equal(plan.changes.length, before === m ? 0 : 1);
      await Promise.all(plan.writes.map((w) => kv.put(w.key, w.data)));
      commitPart(state, plan);
    }
    const { value } = await loadPart(kv, 'queue.s', 'workers', state.meta, c, {});
    assert.ok(value instanceof SharedMap);
    assert.deepEqual((value as SharedMap<unknown>).toJSON(), m.toJSON());
  }));

test('noted changes are stored as a comparison would store them, also over several steps and past the notes kept', () => {
  let list: Item[] = [];
  const noted = new PartState();
  const compared = new PartState();
  let next = 0;
  for (let step = 0; step < 3000; step++) {
    // Now and then several steps go by before the part is stored (a batch of mail), sometimes more than the notes keep.
    const steps = step % 50 === 0 ? 12 : step % 7 === 0 ? 3 : 1;
    for (let k = 0; k < steps; k++) {
      let to: Item[];
      let changes: Change[];
      const r = rnd(10);
      if (r < 5 || list.length < 5) {
        const it = { id: `t${next}`, n: next++, pad: '' };
        to = [...list, it];
        changes = [[it.id, it]];
      } else if (r < 7) {
        const i = rnd(list.length);
        const it = { ...list[i], pad: `p${step}` };
        to = list.with(i, it);
        changes = [[it.id, it]];
      } else {
        const i = rnd(list.length);
        to = list.toSpliced(i, 1);
        changes = [[list[i].id, null]];
      }
      list = noteChanges(list, to, changes);
    }
    const a = planPart('q', 'tasks', noted, list, byN);
    commitPart(noted, a);
    // The same list without notes: compared with what was stored.
    const b = planPart('q', 'tasks', compared, [...list], byN);
    commitPart(compared, b);
    assert.deepEqual(new Map(a.changes), new Map(b.changes), `step ${step}`);
  }
  assert.deepEqual(new Map(noted.items), new Map(compared.items));
});

test('a batch of many noted steps still leads back to the stored version, until its changes pass the bound', () => {
  const stored: Item[] = Array.from({ length: 100 }, (_, n) => ({ id: `t${n}`, n, pad: '' }));
  let list = stored;
  const expected = new Map<string, unknown>();
  // 200 versions (a batch of mail), each changing one item and adding one: far more than the links kept.
  for (let k = 0; k < 200; k++) {
    const changed = { ...list[k % 100], pad: `p${k}` };
    const added = { id: `n${k}`, n: 1000 + k, pad: '' };
    const to = [...list.with(k % 100, changed), added];
    list = noteChanges(list, to, [[changed.id, changed], [added.id, added]]);
    expected.set(changed.id, changed).set(added.id, added);
  }
  const noted = notedChanges(stored, list);
  assert.ok(noted, 'the notes lead back to the stored version');
  assert.deepEqual(new Map(noted), expected);
  // Past MAX_MERGED (4,096) distinct changes the oldest link is let go: the part is compared instead.
  for (let k = 0; k < 5000; k++) {
    const added = { id: `m${k}`, n: 5000 + k, pad: '' };
    list = noteChanges(list, [...list.slice(-50), added], [[added.id, added]]);
  }
  assert.equal(notedChanges(stored, list), undefined);
});

test('a key added and removed in one noted step is not stored, and versions noted in a circle are compared instead', () => {
  const byId = listPart((i: Item) => i.id);
  const s = new PartState();
  commitPart(s, planPart('q', 'tasks', s, [], byId));
  const a = { id: 'a', n: 1, pad: '' };
  const b = { id: 'b', n: 2, pad: '' };
  const v1 = noteChanges(s.ref as object, [b], [['a', a], ['a', null], ['b', b]]);
  commitPart(s, planPart('q', 'tasks', s, v1, byId));
  assert.deepEqual([...s.items.keys()], ['b']);
  // A step back to an older version noted as its successor: the notes run in a circle.
  const x: Item[] = [a];
  const y: Item[] = [b];
  noteChanges(x, y, [['a', null], ['b', b]]);
  for (let k = 0; k < 20; k++) noteChanges(k % 2 ? x : y, k % 2 ? y : x, [['k', k]]);
  assert.equal(notedChanges([], y), undefined);
});

test('sealed segments take a few bytes of the record; a run read back is not extended by its reader', () =>
  withBucket('parts_runs', async (kv) => {
    let state = new PartState();
    let list: Item[] = [];
    const pad = 'y'.repeat(100);
    const run = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        list = [...list, { id: `t${i}`, n: i, pad }];
        const plan = planPart('queue.r', 'tasks', state, list, byN);
        await Promise.all(plan.writes.map((w) => kv.put(w.key, w.data)));
        commitPart(state, plan);
      }
    };
    await run(0, 3000);
    assert.ok(segmentCount(state.meta) > 20, `segments: ${segmentCount(state.meta)}`);
    assert.ok(JSON.stringify(state.meta.segs).length < 200, `segment list: ${JSON.stringify(state.meta.segs)}`);
    // Another activation reads the part back: its segments start a run of their own, under new keys.
    const loaded = await loadPart(kv, 'queue.r', 'tasks', state.meta, byN, {});
    assert.deepEqual(loaded.value, list);
    const stored = state.meta;
    state = loaded.state;
    let i = 3000;
    while (segmentCount(state.meta) === segmentCount(stored) && state.meta.base?.id === stored.base?.id) await run(i, ++i);
    if (state.meta.base?.id === stored.base?.id) {
      assert.equal(state.meta.segs.length, stored.segs.length + 1, 'a new entry, not the stored run extended');
      assert.ok(!stored.segs.some((seg) => seg.id === state.meta.segs.at(-1)!.id));
    }
    await run(i, i + 300);
    assert.deepEqual((await loadPart(kv, 'queue.r', 'tasks', state.meta, byN, {})).value, list);
  }));

test('a step too large for one chunk is a segment of its own between runs', () =>
  withBucket('parts_big', async (kv) => {
    const state = new PartState();
    const store = async (list: Item[]) => {
      const plan = planPart('queue.b', 'tasks', state, list, byN);
      await Promise.all(plan.writes.map((w) => kv.put(w.key, w.data)));
      commitPart(state, plan);
      await writeBackground(state, plan, (k, d) => kv.put(k, d));
    };
    const pad = 'z'.repeat(150);
    let list = Array.from({ length: 12_000 }, (_, n) => ({ id: `t${n}`, n, pad }));
    // The first step seals its journal and writes a new base in the background; the next points at it.
    await store(list);
    await store(list);
    assert.ok(state.meta.base && !state.meta.segs.length);
    for (let i = 0; i < 40; i++) await store((list = list.map((it, k) => (k === i ? { ...it, pad: `${pad}${i}` } : it))));
    const run = state.meta.segs.at(-1)!;
    assert.ok(run.n! > 1, 'small segments form a run');
    // 4,000 changes at once: more than one chunk.
    await store((list = list.map((it, k) => (k < 4000 ? { ...it, pad: `${pad}!` } : it))));
    assert.equal(state.meta.segs.length, 2);
    assert.deepEqual(state.meta.segs[0], run, 'the run before it is kept whole');
    assert.ok(state.meta.segs[1].chunks > 1 && state.meta.segs[1].n === undefined);
    for (let i = 0; i < 40; i++) await store((list = list.map((it, k) => (k === 5000 + i ? { ...it, pad: `${pad}${i}` } : it))));
    assert.equal(state.meta.segs.length, 3, 'and a new run follows it');
    assert.deepEqual((await loadPart(kv, 'queue.b', 'tasks', state.meta, byN, {})).value, list);
  }));

test('segments listed one by one (as stored before runs) still read back', () =>
  withBucket('parts_legacy', async (kv) => {
    const a = { id: 'a', n: 1, pad: '' };
    const b = { id: 'b', n: 2, pad: '' };
    await kv.put('queue.l.tasks.base1.0', JSON.stringify([['a', a]]));
    await kv.put('queue.l.tasks.seg1.0', JSON.stringify([['b', b]]));
    await kv.put('queue.l.tasks.seg2.0', JSON.stringify([['a', null]]));
    const meta = { base: { id: 'base1', chunks: 1 }, segs: [{ id: 'seg1', chunks: 1 }, { id: 'seg2', chunks: 1 }], journal: [], bytes: 0, baseBytes: 0, segBytes: 0 };
    assert.deepEqual((await loadPart(kv, 'queue.l', 'tasks', meta, byN, {})).value, [b]);
  }));

test('a new base is written in the background: steps go on sealing meanwhile and read back whole; the next step after it points at it', () =>
  withBucket('parts_background', async (kv) => {
    const state = new PartState();
    const pad = 'q'.repeat(150);
    let list = Array.from({ length: 12_000 }, (_, n) => ({ id: `t${n}`, n, pad }));
    const step = async () => {
      const plan = planPart('queue.g', 'tasks', state, list, byN);
      await Promise.all(plan.writes.map((w) => kv.put(w.key, w.data)));
      commitPart(state, plan);
      for (const k of plan.garbage) await kv.purge(k);
      assert.deepEqual((await loadPart(kv, 'queue.g', 'tasks', state.meta, byN, {})).value, list, 'every step reads back whole');
      return plan;
    };
    const first = await step();
    assert.ok(first.background && state.meta.pending && !state.meta.base, 'the step names a new base and does not wait for it');
    assert.equal(first.writes.length > 0, true, 'its journal is sealed as a segment as usual');
    // Thirty more steps while the base is still on its way: they seal segments and never point at it.
    for (let i = 0; i < 30; i++) {
      list = list.map((it, k) => (k === i ? { ...it, pad: `${pad}${i}` } : it));
      const p = await step();
      assert.ok(!p.background && !p.settles && state.meta.base === undefined);
    }
    const covered = first.background!.covers;
    const after = state.meta.segs.slice(covered);
    assert.ok(after.length >= 1, 'segments sealed after the new base was named');
    await writeBackground(state, first, (k, d) => kv.put(k, d));
    list = list.map((it, k) => (k === 100 ? { ...it, pad: `${pad}!` } : it));
    const switching = await step();
    assert.ok(switching.settles);
    const now: PartMeta = state.meta;
    assert.equal(now.base?.id, first.background!.id);
    assert.ok(now.base!.chunks > 1, 'megabytes of items, in chunks');
    assert.deepEqual(state.meta.segs.slice(0, after.length), after, 'the segments written after it stay');
    assert.equal(state.meta.pending, undefined);
    const oldKeys = switching.garbage;
    assert.ok(oldKeys.length >= covered, 'the covered segments are dropped');
    for (const k of oldKeys) assert.notEqual((await kv.get(k))?.operation, 'PUT');
  }));

test('a new base that failed or was cut off is purged by the next step and never read; one written to the end is taken over', () =>
  withBucket('parts_left', async (kv) => {
    const pad = 'w'.repeat(150);
    let list = Array.from({ length: 12_000 }, (_, n) => ({ id: `t${n}`, n, pad }));
    const put = (k: string, d: string) => kv.put(k, d);
    const commit = async (state: PartState) => {
      const plan = planPart('queue.l', 'tasks', state, list, byN);
      await Promise.all(plan.writes.map((w) => put(w.key, w.data)));
      commitPart(state, plan);
      return plan;
    };
    // A write that fails: the next step drops the base and goes on without it.
    const a = new PartState();
    const first = await commit(a);
    await writeBackground(a, first, async () => {
      throw new Error('stream unavailable');
    });
    list = list.map((it, k) => (k === 0 ? { ...it, pad: `${pad}0` } : it));
    const dropped = await commit(a);
    assert.ok(dropped.settles && a.meta.pending === undefined && a.meta.base === undefined);
    assert.deepEqual(dropped.garbage, [`queue.l.tasks.${first.background!.id}.0`], 'what of it was written goes');

    // Written, but its activation passivated or died before a record pointed at it: the next
    // activation finds its `done` key, takes it over and points at it with its first step.
    const b = new PartState();
    const named = await commit(b);
    await writeBackground(b, named, put);
    const loaded = await loadPart(kv, 'queue.l', 'tasks', b.meta, byN, {});
    assert.deepEqual(loaded.value, list);
    assert.equal(loaded.state.next?.state, 'written');
    // The context holds what was read back, so the next step changes that.
    list = (loaded.value as Item[]).map((it, k) => (k === 1 ? { ...it, pad: `${pad}1` } : it));
    const over = await commit(loaded.state);
    assert.ok(over.settles && loaded.state.meta.pending === undefined);
    assert.equal(loaded.state.meta.base?.id, named.background!.id);
    for (const k of over.garbage) await kv.purge(k);
    assert.deepEqual((await loadPart(kv, 'queue.l', 'tasks', loaded.state.meta, byN, {})).value, list);

    // Cut off mid-way (no `done` key): the next activation reads the part without it and purges every key under it.
    const c = new PartState();
    const cut = await commit(c);
    let puts = 0;
    await writeBackground(c, cut, async (k, d) => {
      if (++puts > 2) throw new Error('process killed');
      await put(k, d);
    });
    const again = await loadPart(kv, 'queue.l', 'tasks', c.meta, byN, {});
    assert.deepEqual(again.value, list);
    assert.equal(again.state.next, undefined);
    list = (again.value as Item[]).map((it, k) => (k === 2 ? { ...it, pad: `${pad}2` } : it));
    const purge = await commit(again.state);
    assert.ok(purge.settles && again.state.meta.pending === undefined);
    // Its keys are not known here: every key under it goes.
    const piece = `queue.l.tasks.${cut.background!.id}`;
    assert.deepEqual(purge.dropPieces, [piece]);
    const left: string[] = [];
    for await (const k of await kv.keys(`${piece}.*`)) left.push(k);
    assert.equal(left.length, 2, `the chunks written before the cut: ${left}`);
    for (const k of left) await kv.purge(k);
    assert.equal((await Promise.all(left.map((k) => kv.get(k)))).filter((e) => e?.operation === 'PUT').length, 0);
    assert.deepEqual((await loadPart(kv, 'queue.l', 'tasks', again.state.meta, byN, {})).value, list);
  }));
