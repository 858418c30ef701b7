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

test('a version 1 database migrates to version 2 (conversation status fields, backfilled); re-running is a no-op', async () => {
  const h = await openSurreal('mem://');
  assert.deepEqual((await migrate(h.db, MIGRATIONS.slice(0, 1))).applied, [1]);
  // A conversation as version 1 stored it: no status_at; version 1 refuses the new fields.
  await h.db.query(`CREATE customer:u1 SET created_at = 0, updated_at = 0; CREATE conversation:c1 SET customer = customer:u1, channel = 'webchat', status = 'open', started_at = 1000, last_at = 2000`).collect();
  await assert.rejects(h.db.query(`UPDATE conversation:c1 SET closed_at = 3000`).collect(), /closed_at/);

  const up = await migrate(h.db, MIGRATIONS.slice(0, 2));
  assert.deepEqual(up.applied, [2]);
  assert.equal(up.current, 2);
  const [[c]] = await h.db.query<[{ status_at: number; status: string }[]]>('SELECT status, status_at FROM conversation:c1').collect();
  assert.deepEqual(c, { status: 'open', status_at: 1000 }, 'status_at backfilled from started_at');
  await h.db.query(`UPDATE conversation:c1 SET status = 'closed', status_at = 3000, closed_at = 3000, closed_by = 'agent/ann', disposition = 'resolved'`).collect();

  const again = await migrate(h.db, MIGRATIONS.slice(0, 2));
  assert.deepEqual(again.applied, []);
  assert.equal(again.current, 2);
  const [[after]] = await h.db.query<[{ status_at: number; closed_at: number }[]]>('SELECT status_at, closed_at FROM conversation:c1').collect();
  assert.deepEqual(after, { status_at: 3000, closed_at: 3000 }, 'a re-run leaves the data alone');
  assert.deepEqual((await appliedMigrations(h.db)).map((r) => r.version), [1, 2]);
  await h.close();
});
