import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSurreal } from './surreal.ts';
import { MIGRATIONS, appliedMigrations, migrate, type Migration } from './migrations.ts';
import { exitWhenDone } from '../tests/support/store.ts';

exitWhenDone();

test('migrations apply once, re-run without error, record each version once', async () => {
  const h = await openSurreal('mem://');
  const first = await migrate(h.db);
  assert.deepEqual(first.applied, MIGRATIONS.map((m) => m.version));
  assert.equal(first.current, MIGRATIONS.length);
  const second = await migrate(h.db);
  assert.deepEqual(second.applied, []);
  assert.equal(second.current, MIGRATIONS.length);
  const rows = await appliedMigrations(h.db);
  assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version));
  // The schema is really there: SCHEMAFULL refuses an unknown channel, and the identity index is unique.
  await assert.rejects(h.db.query(`CREATE identity SET channel = 'fax', handle_hash = 'x', created_at = 0, last_seen_at = 0`).collect(), /channel/);
  await h.db.query(`CREATE identity SET channel = 'web', handle_hash = 'x', created_at = 0, last_seen_at = 0`).collect();
  await assert.rejects(h.db.query(`CREATE identity SET channel = 'web', handle_hash = 'x', created_at = 0, last_seen_at = 0`).collect(), /identity_handle/);
  await h.close();
});

test('a new version is applied after the old ones; two instances migrating at once both succeed', async () => {
  const h = await openSurreal('mem://');
  await migrate(h.db);
  const next: Migration[] = [...MIGRATIONS, { version: MIGRATIONS.length + 1, name: 'nickname', up: 'DEFINE FIELD IF NOT EXISTS nickname ON customer TYPE option<string>;' }];
  const [a, b] = await Promise.all([migrate(h.db, next), migrate(h.db, next)]);
  // Each call either applied the new version or found it applied by the other; nothing else ran again.
  const appliedNow = [...a.applied, ...b.applied];
  assert.ok(appliedNow.length >= 1 && appliedNow.every((v) => v === next.length), `applied: ${appliedNow}`);
  assert.equal(a.current, next.length);
  assert.equal(b.current, next.length);
  const rows = await appliedMigrations(h.db);
  assert.equal(rows.filter((r) => r.version === next.length).length, 1, 'version recorded once');
  const [[c]] = await h.db.query<[{ nickname: string }[]]>(`CREATE customer SET nickname = 'Lei', created_at = 0, updated_at = 0`).collect();
  assert.equal(c.nickname, 'Lei');
  await h.close();
});

test('a migration list out of order is refused', async () => {
  const h = await openSurreal('mem://');
  await assert.rejects(migrate(h.db, [{ version: 2, name: 'x', up: 'RETURN 1' }]), /versions must be 1, 2, 3/);
  await h.close();
});
