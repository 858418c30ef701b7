import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { RecordId, type Surreal } from 'surrealdb';
import { openSurreal, type SurrealHandle } from './surreal.ts';
import { FieldCipher, type KeyRing } from './crypto.ts';
import { rotateKeys, startRotation } from './rotation.ts';

const random32 = () => crypto.getRandomValues(new Uint8Array(32));
const keys = { A: random32(), B: random32(), C: random32() };
const indexKey = random32();
const ringOf = (activeId: keyof typeof keys, ...ids: (keyof typeof keys)[]): KeyRing => ({
  activeId,
  keys: Object.fromEntries(ids.map((id) => [id, keys[id]])),
  indexKey,
});

const handles: SurrealHandle[] = [];
after(async () => {
  for (const h of handles) await h.close();
});

async function freshDb(): Promise<Surreal> {
  const h = await openSurreal('mem://');
  handles.push(h);
  await h.db
    .query(
      `DEFINE TABLE contact SCHEMAFULL;
       DEFINE FIELD phone ON contact TYPE option<string>;
       DEFINE FIELD phone_hash ON contact TYPE string;
       DEFINE FIELD email ON contact TYPE option<string>;
       DEFINE FIELD address ON contact TYPE option<object>;
       DEFINE FIELD address.line1 ON contact TYPE option<string>;
       DEFINE FIELD address.city ON contact TYPE option<string>;
       DEFINE FIELD n ON contact TYPE int;`,
    )
    .collect();
  return h.db;
}

const phoneOf = (i: number) => `138${String(10_000_000 + i).slice(-8)}`;

async function seed(db: Surreal, cipher: FieldCipher, count: number) {
  const rows = [];
  for (let i = 0; i < count; i++) {
    rows.push({
      id: new RecordId('contact', `c${String(i).padStart(5, '0')}`),
      n: i,
      phone: await cipher.seal(phoneOf(i)),
      phone_hash: await cipher.lookupHash('phone', phoneOf(i)),
      email: i % 3 === 0 ? undefined : await cipher.seal(`user${i}@example.com`), // some NONE
      address: { line1: await cipher.seal(`科苑路${i}号`), city: '深圳市' },
    });
  }
  for (let i = 0; i < rows.length; i += 500) await db.query('INSERT INTO contact $rows RETURN NONE', { rows: rows.slice(i, i + 500) }).collect();
}

type Contact = { id: RecordId; n: number; phone?: string; phone_hash: string; email?: string; address?: { line1?: string; city?: string } };
async function all(db: Surreal): Promise<Contact[]> {
  const [rows] = await db.query<[Contact[]]>('SELECT * FROM contact ORDER BY n').collect();
  return rows;
}

/** A real pino logger into memory; `onLine` sees each parsed line as it is written. */
function memoryLogger(onLine: (line: Record<string, unknown>) => void = () => {}) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) {
        const parsed = JSON.parse(l) as Record<string, unknown>;
        lines.push(parsed);
        onLine(parsed);
      }
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** The db, with a hook run just before each write transaction of the rotation: a concurrent writer. */
function withWriterBetweenReadAndWrite(db: Surreal, beforeWrite: (sql: string, vars: Record<string, unknown>) => Promise<void>): Surreal {
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return (sql: string, vars: Record<string, unknown> = {}) => ({
        collect: async () => {
          if (sql.startsWith('BEGIN;')) await beforeWrite(sql, vars);
          return target.query(sql, vars).collect();
        },
      });
    },
  });
}

test('2,000 rows sealed with key A rotate to key B: interrupted half-way, resumed, concurrent writes kept', async () => {
  const db = await freshDb();
  const cipherA = await FieldCipher.create(ringOf('A', 'A'));
  const cipherB = await FieldCipher.create(ringOf('B', 'A', 'B'));
  const t0 = performance.now();
  await seed(db, cipherA, 2000);
  const seedMs = performance.now() - t0;
  const targets = [{ table: 'contact', fields: ['phone', 'email', 'address.line1'] }];

  // First run: stop once 1,000 records are done (the signal is checked between batches).
  const ac = new AbortController();
  const first = memoryLogger((l) => {
    if (l.msg === 'key rotation: batch' && (l.scanned as number) >= 1000) ac.abort();
  });
  const t1 = performance.now();
  const r1 = await rotateKeys(db, cipherB, targets, { batch: 100, log: first.log, signal: ac.signal });
  assert.deepEqual(r1, { scanned: 1000, rewritten: 1000, conflicts: 0, unreadable: 0, aborted: true });
  let rows = await all(db);
  assert.equal(rows.filter((r) => cipherB.isCurrent(r.phone!)).length, 1000);
  assert.ok(rows.slice(0, 1000).every((r) => cipherB.isCurrent(r.phone!)) && rows.slice(1000).every((r) => cipherB.keyIdOf(r.phone!) === 'A'));
  const [progress] = await db.query<[{ key_id: string; after: RecordId; done: boolean }]>('SELECT * FROM ONLY rotation_progress:contact').collect();
  assert.equal(progress.key_id, 'B');
  assert.equal(progress.done, false);
  assert.equal(String(progress.after), String(new RecordId('contact', 'c00999')));
  assert.ok(first.lines.some((l) => l.msg === 'key rotation: stopped, will resume'));

  // Second run resumes after c00999. Just before its first write, two other writers change rows it
  // has already read: c01000 gets a new number sealed with B, c01001 one sealed with the old key A,
  // and c01002 is deleted.
  let raced = false;
  const racing = withWriterBetweenReadAndWrite(db, async () => {
    if (raced) return;
    raced = true;
    await db.query('UPDATE contact:c01000 SET phone = $p', { p: await cipherB.seal('13900000000') }).collect();
    await db.query('UPDATE contact:c01001 SET phone = $p', { p: await cipherA.seal('13900000001') }).collect();
    await db.query('DELETE contact:c01002').collect();
  });
  const second = memoryLogger();
  const r2 = await rotateKeys(racing, cipherB, targets, { batch: 100, log: second.log });
  const rotateMs = performance.now() - t1;
  assert.ok(raced);
  assert.equal(r2.aborted, false);
  assert.equal(r2.scanned, 1000, 'resumed where it stopped, not from the start');
  // c01000: its phone was current when retried, so only its other fields were rewritten; c01002 is gone.
  assert.equal(r2.rewritten, 999);
  assert.equal(r2.conflicts, 0);
  assert.ok(second.lines.some((l) => l.msg === 'key rotation: table started' && l.resumed === true));
  const retried = second.lines.filter((l) => l.msg === 'key rotation: records changed since read; reading them again');
  assert.deepEqual(retried.map((l) => l.ids), [['contact:c01000', 'contact:c01001', 'contact:c01002']], 'the raced rows were caught by the optimistic check');
  assert.ok(second.lines.some((l) => l.msg === 'key rotation: table done' && l.scanned === 2000));

  rows = await all(db);
  assert.equal(rows.length, 1999);
  assert.ok(!rows.some((r) => r.n === 1002), 'a deleted record is not brought back');
  for (const r of rows) {
    const i = r.n;
    for (const sealed of [r.phone, r.email, r.address?.line1]) if (sealed !== undefined) assert.ok(cipherB.isCurrent(sealed), `${String(r.id)} ${sealed}`);
    const expectedPhone = i === 1000 ? '13900000000' : i === 1001 ? '13900000001' : phoneOf(i);
    assert.equal(await cipherB.open(r.phone!), expectedPhone, 'concurrent writes are not overwritten with stale data');
    assert.equal(r.email === undefined ? undefined : await cipherB.open(r.email), i % 3 === 0 ? undefined : `user${i}@example.com`);
    assert.equal(await cipherB.open(r.address!.line1!), `科苑路${i}号`);
    assert.equal(r.address!.city, '深圳市');
    if (i !== 1000 && i !== 1001) assert.equal(r.phone_hash, await cipherB.lookupHash('phone', `+86 ${phoneOf(i)}`), 'lookups by hash unchanged');
  }
  // A lookup by phone through the stored hash still finds the row after rotation.
  const [found] = await db.query<[Contact[]]>('SELECT * FROM contact WHERE phone_hash = $h', { h: await cipherB.lookupHash('phone', phoneOf(1234)) }).collect();
  assert.equal(found.length, 1);
  assert.equal(await cipherB.open(found[0].phone!), phoneOf(1234));

  // A third run finds the table done and reads nothing.
  const r3 = await rotateKeys(db, cipherB, targets, { batch: 100 });
  assert.deepEqual(r3, { scanned: 0, rewritten: 0, conflicts: 0, unreadable: 0, aborted: false });
  console.log(`# seed 2000 rows ${seedMs.toFixed(0)} ms; rotate 2000 rows (two runs) ${rotateMs.toFixed(0)} ms`);
});

test('a new active key starts over; unreadable values are left and counted; startRotation stops cleanly', async () => {
  const db = await freshDb();
  const cipherA = await FieldCipher.create(ringOf('A', 'A'));
  await seed(db, cipherA, 300);
  // One value sealed with a key the ring will not have, one in plain text (never touched).
  const stranger = await FieldCipher.create({ activeId: 'Z', keys: { Z: random32() }, indexKey });
  await db.query('UPDATE contact:c00007 SET email = $e', { e: await stranger.seal('z@example.com') }).collect();
  await db.query('UPDATE contact:c00008 SET email = $e', { e: 'legacy@example.com' }).collect();

  const cipherB = await FieldCipher.create(ringOf('B', 'A', 'B'));
  const targets = [{ table: 'contact', fields: ['phone', 'email'] }, { table: 'missing_table', fields: ['phone'] }];
  const rB = await rotateKeys(db, cipherB, targets, { batch: 64 });
  assert.deepEqual(rB, { scanned: 300, rewritten: 300, conflicts: 0, unreadable: 1, aborted: false });
  const [[c7, c8]] = await db.query<[Contact[]]>('SELECT * FROM [contact:c00007, contact:c00008]').collect();
  assert.equal(cipherB.keyIdOf(c7.email!), 'Z');
  assert.equal(c8.email, 'legacy@example.com');

  // Rotating again to C: the stored progress names B, so the table is scanned from the start.
  const cipherC = await FieldCipher.create(ringOf('C', 'A', 'B', 'C'));
  const bg = startRotation(db, cipherC, targets, { batch: 50, pauseMs: 5 });
  const early = await bg.stop();
  assert.equal(early.aborted, true);
  assert.ok(early.scanned < 300, `stopped early (${early.scanned} scanned)`);
  const rest = await startRotation(db, cipherC, targets, { batch: 50 }).done;
  assert.equal(early.scanned + rest.scanned, 300);
  assert.equal(early.rewritten + rest.rewritten, 300);
  for (const r of await all(db)) assert.ok(cipherC.isCurrent(r.phone!) && (r.n === 7 || r.n === 8 || r.email === undefined || cipherC.isCurrent(r.email)));

  // restart: true rescans a finished table; everything is current, so nothing is rewritten.
  const again = await rotateKeys(db, cipherC, targets, { restart: true });
  assert.equal(again.scanned, 300);
  assert.equal(again.rewritten, 0);

  // A field added to the target later: the finished table is scanned again for it.
  const widened = await rotateKeys(db, cipherC, [{ table: 'contact', fields: ['phone', 'email', 'address.line1'] }]);
  assert.equal(widened.scanned, 300);
  assert.equal(widened.rewritten, 300, 'address.line1 was still sealed with A');
  for (const r of await all(db)) assert.equal(await cipherC.open(r.address!.line1!), `科苑路${r.n}号`);
});

test('a record that keeps changing is left for the next run, which picks it up', async () => {
  const db = await freshDb();
  const cipherA = await FieldCipher.create(ringOf('A', 'A'));
  const cipherB = await FieldCipher.create(ringOf('B', 'A', 'B'));
  await seed(db, cipherA, 50);
  let writes = 0;
  const busy = withWriterBetweenReadAndWrite(db, async () => {
    writes++; // an old-config writer rewrites c00003 with key A before every attempt
    await db.query('UPDATE contact:c00003 SET phone = $p', { p: await cipherA.seal(`1390000${String(writes).padStart(4, '0')}`) }).collect();
  });
  const { log, lines } = memoryLogger();
  const r1 = await rotateKeys(busy, cipherB, [{ table: 'contact', fields: ['phone'] }], { log });
  assert.deepEqual(r1, { scanned: 50, rewritten: 49, conflicts: 1, unreadable: 0, aborted: false });
  assert.equal(writes, 4, 'one write and three retries');
  assert.ok(lines.some((l) => l.msg === 'key rotation: records kept changing; left for the next run'));
  const [progress] = await db.query<[{ done: boolean }]>('SELECT * FROM ONLY rotation_progress:contact').collect();
  assert.equal(progress.done, false);
  const r2 = await rotateKeys(db, cipherB, [{ table: 'contact', fields: ['phone'] }]);
  assert.deepEqual(r2, { scanned: 50, rewritten: 1, conflicts: 0, unreadable: 0, aborted: false });
  const [c3] = await db.query<[Contact]>('SELECT * FROM ONLY contact:c00003').collect();
  assert.ok(cipherB.isCurrent(c3.phone!));
  assert.equal(await cipherB.open(c3.phone!), '13900000004', 'the latest write survives');
});

test('bad targets and options are refused before anything is read', async () => {
  const db = await freshDb();
  const cipher = await FieldCipher.create(ringOf('A', 'A'));
  await assert.rejects(rotateKeys(db, cipher, [{ table: 'contact; REMOVE TABLE contact', fields: ['phone'] }]), /bad target .* table must be a plain identifier/);
  await assert.rejects(rotateKeys(db, cipher, [{ table: 'contact', fields: ['phone = 1'] }]), /fields must be identifiers or dotted paths/);
  await assert.rejects(rotateKeys(db, cipher, [{ table: 'contact', fields: [] }]), /needs at least one field/);
  await assert.rejects(rotateKeys(db, cipher, [{ table: 'rotation_progress', fields: ['x'] }]), /cannot rotate rotation_progress/);
  await assert.rejects(rotateKeys(db, cipher, [{ table: 'contact', fields: ['phone'] }], { batch: 0 }), /batch must be a whole number/);
  const [info] = await db.query<[{ tables: Record<string, unknown> }]>('INFO FOR DB').collect();
  assert.ok('contact' in info.tables, 'the table is still there');
});
