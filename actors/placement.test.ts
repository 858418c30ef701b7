import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignShards } from './placement.ts';

const slots = Array.from({ length: 32 }, (_, i) => `counter.${i}`);

test('shards spread evenly over the members', () => {
  const a = assignShards(slots, ['n1', 'n2', 'n3']);
  const counts = ['n1', 'n2', 'n3'].map((n) => [...a.values()].filter((x) => x === n).length);
  assert.equal(counts.reduce((x, y) => x + y), 32);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `uneven: ${counts}`);
});

test('every node computes the same placement whatever order it lists members in', () => {
  assert.deepEqual([...assignShards(slots, ['n3', 'n1', 'n2'])], [...assignShards(slots, ['n1', 'n2', 'n3'])]);
});

test('a node leaving moves only its own shards', () => {
  const before = assignShards(slots, ['n1', 'n2', 'n3', 'n4']);
  const after = assignShards(slots, ['n1', 'n2', 'n3']);
  const moved = slots.filter((s) => before.get(s) !== after.get(s));
  const owned = slots.filter((s) => before.get(s) === 'n4');
  // Its own shards must move; the cap may move a few more to keep the spread even.
  assert.ok(owned.every((s) => moved.includes(s)));
  assert.ok(moved.length <= owned.length + 4, `moved ${moved.length} for ${owned.length} orphaned`);
});

test('no members, no placement', () => {
  assert.equal(assignShards(slots, []).size, 0);
});
