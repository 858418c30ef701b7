// The shared list against a plain array fed the same changes, and that versions share what did not change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedList } from './shared-list.ts';

/** A small seeded generator, so that a failure can be run again. */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

test('every change gives the same items as an array, through growth, splits, merges and back to empty', () => {
  for (const seed of [1, 2, 3]) {
    const rnd = random(seed);
    let list = SharedList.from<number>([]);
    let model: number[] = [];
    const versions: [SharedList<number>, number[]][] = [];
    let next = 0;
    for (let round = 0; round < 6_000; round++) {
      // Grows for the first half, shrinks in the second, so chunks both split and merge.
      const grow = round < 3_000 ? rnd(10) < 7 : rnd(10) < 3;
      const op = model.length === 0 || grow ? 'insert' : rnd(3) === 0 ? 'with' : 'remove';
      if (op === 'insert') {
        const i = rnd(model.length + 1);
        list = list.insert(i, next);
        model = model.toSpliced(i, 0, next++);
      } else if (op === 'remove') {
        const i = rnd(model.length);
        list = list.remove(i);
        model = model.toSpliced(i, 1);
      } else {
        const picks: [number, number][] = Array.from({ length: 1 + rnd(4) }, () => [rnd(model.length), next++]);
        list = list.withAll(picks);
        for (const [i, n] of picks) model[i] = n;
      }
      assert.equal(list.length, model.length);
      if (round % 97 === 0) {
        assert.deepEqual([...list], model, `seed ${seed} round ${round}`);
        versions.push([list, [...model]]);
        const from = rnd(model.length + 1);
        const walked: number[] = [];
        list.someFrom(from, (n, i) => (walked.push(n), assert.equal(i, from + walked.length - 1), false));
        assert.deepEqual(walked, model.slice(from));
      }
      const probe = rnd(model.length + 1);
      assert.equal(list.at(probe), model[probe]);
    }
    while (model.length) {
      list = list.remove(0);
      model.shift();
    }
    assert.equal(list.length, 0);
    assert.deepEqual(list.toArray(), []);
    // Older versions are untouched by later changes.
    for (const [v, items] of versions) assert.deepEqual(v.toArray(), items);
  }
});

test('reads: at, indexOf, find, filter, map, someFrom an index, and JSON as a plain array', () => {
  const items = Array.from({ length: 1_000 }, (_, i) => ({ id: `t${i}` }));
  const list = SharedList.from(items);
  assert.equal(list.at(-1), items[999], 'from the end, as an array');
  assert.equal(list.at(-1_001), undefined);
  assert.equal(list.at(1_000), undefined);
  assert.equal(list.at(1.5), undefined, 'no item at a fraction');
  assert.throws(() => list.with(1.5, { id: 'x' }), RangeError);
  assert.throws(() => list.remove(0.5), RangeError);
  assert.throws(() => list.someFrom(Number.NaN, () => true), RangeError);
  assert.equal(list.at(777), items[777]);
  assert.equal(list.indexOf(items[500]), 500);
  assert.equal(list.indexOf({ id: 't500' }), -1, 'by identity, as an array');
  assert.equal(list.find((t) => t.id === 't999'), items[999]);
  assert.deepEqual(list.filter(() => true).toArray(), items);
  assert.equal(list.filter((t) => t.id.endsWith('7')).length, 100);
  assert.deepEqual(list.map((t, i) => `${t.id}@${i}`).slice(0, 2), ['t0@0', 't1@1']);
  const seen: [number, string][] = [];
  assert.equal(list.someFrom(997, (t, i) => (seen.push([i, t.id]), i === 998)), true, 'stops where the test says');
  assert.deepEqual(seen, [[997, 't997'], [998, 't998']]);
  assert.equal(list.someFrom(1_000, () => true), false);
  assert.equal(list.someFrom(0, () => false), false);
  assert.equal(JSON.stringify({ tasks: list }), JSON.stringify({ tasks: items }));
  assert.throws(() => list.remove(1_000), /index 1000 is outside a list of 1000/);
  assert.throws(() => list.insert(-1, { id: 'x' }), RangeError);
  assert.equal(list.withAll([]), list, 'no change, the same version');
});

test('a change copies one chunk, not the list: the items of other chunks are shared by both versions', () => {
  const list = SharedList.from(Array.from({ length: 10_000 }, (_, i) => i));
  const next = list.remove(5_000).with(100, -1);
  // Sharing shows in memory: ten thousand versions, each one change apart, stay far below ten thousand copies.
  const before = process.memoryUsage().heapUsed;
  const kept: SharedList<number>[] = [];
  let v = next;
  for (let i = 0; i < 10_000; i++) kept.push((v = i % 2 ? v.insert(i % v.length, i) : v.remove(i % v.length)));
  const perVersion = (process.memoryUsage().heapUsed - before) / kept.length;
  // A copied array of 10,000 is 80 KB; a version here is a chunk and its index (a few KB).
  assert.ok(perVersion < 8_000, `${Math.round(perVersion)} bytes per version`);
  assert.equal(next.at(100), -1);
  assert.equal(next.at(5_000), 5_001);
  assert.equal(list.at(5_000), 5_000);
});
