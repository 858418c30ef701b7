// Test-only: the behaviour every backend must show, run by files.test.ts and s3.test.ts against
// the real files and S3 backends. Each case gets a fresh store whose clock the case controls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobError, BlobNotFound, TIERS, type BlobStore, type Tier } from './store.ts';
import { sha256Hex } from './digest.ts';
import { tieredStore, tierPath, type Logger, type TieredStore } from './tiered.ts';
import { moveTiers, type TierPolicy } from './tiers.ts';
import type { BlobService } from './open.ts';
import { crashingShelf } from './testing.ts';

export const DAY = 86_400_000;
export const T0 = Date.UTC(2025, 0, 1);
const enc = (s: string) => new TextEncoder().encode(s);
const text = async (s: ReadableStream<Uint8Array>) => new Response(s).text();
const streamOf = (...parts: string[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(enc(p));
      c.close();
    },
  });

export interface Opened {
  svc: BlobService;
  clock: { now: number };
}

export interface ContractOptions {
  open(): Promise<Opened>;
  /** Storage class expected per tier when the backend has them. */
  storageClasses?: Record<Tier, string>;
  /** Check crash points 1, 1 + every, …; 1 checks every point. */
  crashEvery?: number;
}

export function memoryLog(): Logger & { lines: { level: string; obj: Record<string, unknown>; msg?: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

async function tiersOf(store: TieredStore, key: string): Promise<Tier[]> {
  const found: Tier[] = [];
  for (const t of TIERS) if (await store.shelf.stat(tierPath(t, key))) found.push(t);
  return found;
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp) {
  await assert.rejects(p, (e: unknown) => e instanceof BlobError && e.code === code && (!re || re.test(e.message)));
}

export function blobContract(name: string, c: ContractOptions): void {
  const policy: TierPolicy = { warmAfterDays: 30, coldAfterDays: 180, verify: 'sha256' };

  test(`${name}: put, get, head, delete, from bytes and from a stream`, async () => {
    const { svc } = await c.open();
    const s = svc.store;
    const r1 = await s.put('mail/m1/body.eml', enc('Subject: hi\r\n\r\nhello'), { contentType: 'message/rfc822', meta: { conversation: 'c42' } });
    assert.deepEqual(r1, { key: 'mail/m1/body.eml', tier: 'hot', size: 20, sha256: sha256Hex(enc('Subject: hi\r\n\r\nhello')) });
    const r2 = await s.put('att/a1.txt', streamOf('one ', 'two ', 'three'), { contentType: 'text/plain', size: 13 });
    assert.equal(r2.sha256, sha256Hex(enc('one two three')));
    assert.equal(r2.size, 13);

    const g = await s.get('mail/m1/body.eml');
    assert.equal(await text(g.body), 'Subject: hi\r\n\r\nhello');
    assert.equal(g.contentType, 'message/rfc822');
    assert.equal(g.tier, 'hot');
    assert.equal(g.size, 20);
    assert.deepEqual(g.meta, { conversation: 'c42' });
    const h = await s.head('att/a1.txt');
    assert.equal(h.sha256, r2.sha256);
    assert.equal(h.contentType, 'text/plain');

    // Overwrite replaces.
    await s.put('att/a1.txt', enc('four'), { contentType: 'text/plain' });
    assert.equal(await text((await s.get('att/a1.txt')).body), 'four');

    await s.delete('att/a1.txt');
    await assert.rejects(s.get('att/a1.txt'), (e: unknown) => e instanceof BlobNotFound && e.code === 'not_found' && e.key === 'att/a1.txt');
    await assert.rejects(s.head('att/a1.txt'), BlobNotFound);
    await s.delete('att/a1.txt'); // deleting twice is fine
    const empty = await s.put('empty', new Uint8Array(0), { contentType: 'application/octet-stream' });
    assert.equal(empty.size, 0);
    assert.equal(await text((await s.get('empty')).body), '');
  });

  test(`${name}: bad input is refused with a reason and stores nothing`, async () => {
    const { svc } = await c.open();
    const s = svc.store;
    await rejectsWith(s.put('../etc/passwd', enc('x'), { contentType: 'text/plain' }), 'bad_key', /"\.\."/);
    await rejectsWith(s.get('a//b'), 'bad_key');
    await rejectsWith(s.head(''), 'bad_key');
    await rejectsWith(s.delete('.x'), 'bad_key');
    await rejectsWith((async () => { for await (const _ of s.list('a b')) void _; })(), 'bad_key');
    await rejectsWith(s.put('ok', enc('x'), { contentType: 'nope' }), 'bad_input', /type\/subtype/);
    await rejectsWith(s.put('ok', 'a string' as unknown as Uint8Array, { contentType: 'text/plain' }), 'bad_input', /Uint8Array/);
    await rejectsWith(s.put('short', enc('abc'), { contentType: 'text/plain', size: 4 }), 'bad_input', /3 bytes, not the declared 4/);
    await rejectsWith(s.put('long', streamOf('abc', 'def'), { contentType: 'text/plain', size: 4 }), 'bad_input', /longer than the declared size 4/);
    await rejectsWith(s.put('short2', streamOf('ab'), { contentType: 'text/plain', size: 4 }), 'bad_input', /2 bytes, not the declared 4/);
    await rejectsWith(
      s.put('chunks', new ReadableStream({ start: (ctl) => { ctl.enqueue('text' as unknown as Uint8Array); ctl.close(); } }), { contentType: 'text/plain' }),
      'bad_input',
      /Uint8Array/,
    );
    for (const k of ['short', 'long', 'short2', 'chunks', 'ok']) await assert.rejects(s.head(k), BlobNotFound);
    const all = [];
    for await (const { path } of svc.store.shelf.list('')) all.push(path);
    assert.deepEqual(all, [], 'no temporary or partial objects left behind');
  });

  test(`${name}: list is in key order, by prefix, each key once whatever its tier`, async () => {
    const { svc, clock } = await c.open();
    const s = svc.store;
    const keys = ['rec/2025/b.wav', 'rec/2025/a.wav', 'rec/2024/z.wav', 'rec-x', 'mail/1', 'rec/2025-01/q'];
    for (const k of keys) await s.put(k, enc(k), { contentType: 'application/octet-stream' });
    const listed = async (p?: string) => {
      const out = [];
      for await (const e of s.list(p)) out.push(e);
      return out;
    };
    assert.deepEqual((await listed()).map((e) => e.key), [...keys].sort());
    assert.deepEqual((await listed('rec/')).map((e) => e.key), ['rec/2024/z.wav', 'rec/2025-01/q', 'rec/2025/a.wav', 'rec/2025/b.wav']);
    assert.deepEqual((await listed('rec/2025')).map((e) => e.key), ['rec/2025-01/q', 'rec/2025/a.wav', 'rec/2025/b.wav']);
    assert.deepEqual((await listed('nothing/')), []);
    // An object that is in two tiers for a moment (a move between copy and delete) is listed once.
    await s.shelf.copy(tierPath('hot', 'rec/2024/z.wav'), tierPath('warm', 'rec/2024/z.wav'));
    clock.now += 40 * DAY;
    await s.get('mail/1').then((g) => g.body.cancel());
    await moveTiers(s, policy, { now: clock.now });
    const after = await listed();
    assert.deepEqual(after.map((e) => e.key), [...keys].sort());
    assert.equal(after.find((e) => e.key === 'mail/1')?.tier, 'hot');
    assert.equal(after.find((e) => e.key === 'rec/2024/z.wav')?.tier, 'warm');
    assert.equal(after.find((e) => e.key === 'rec/2025/a.wav')?.size, 'rec/2025/a.wav'.length);
  });

  test(`${name}: objects age to warm and cold, reads keep them hot, reads work from every tier`, async () => {
    const { svc, clock } = await c.open();
    const s = svc.store;
    const log = memoryLog();
    await s.put('r/old', enc('old recording'), { contentType: 'audio/wav', meta: { call: 'c1' } });
    await s.put('r/used', enc('used recording'), { contentType: 'audio/wav' });
    clock.now += 10 * DAY;
    await s.put('r/new', enc('new recording'), { contentType: 'audio/wav' });

    clock.now += 25 * DAY; // old and used: 35 days; new: 25 days
    await s.get('r/used').then((g) => g.body.cancel());
    let rep = await moveTiers(s, policy, { now: clock.now, log });
    assert.deepEqual([rep.moved, rep.toWarm, rep.toCold, rep.failed], [1, 1, 0, 0]);
    assert.deepEqual(await tiersOf(s, 'r/old'), ['warm']);
    assert.deepEqual(await tiersOf(s, 'r/used'), ['hot'], 'a read counts as use');
    assert.deepEqual(await tiersOf(s, 'r/new'), ['hot']);
    const moved = log.lines.find((l) => l.msg === 'blob moved to a colder tier');
    assert.deepEqual({ key: moved?.obj.key, from: moved?.obj.from, to: moved?.obj.to }, { key: 'r/old', from: 'hot', to: 'warm' });

    const w = await s.get('r/old');
    assert.equal(w.tier, 'warm');
    assert.equal(await text(w.body), 'old recording');
    assert.deepEqual(w.meta, { call: 'c1' }, 'metadata travels with the object');
    assert.equal(w.createdAt, T0, 'creation time is kept through moves');

    clock.now += 200 * DAY; // nothing read since
    rep = await moveTiers(s, policy, { now: clock.now, log });
    assert.deepEqual([rep.moved, rep.toWarm, rep.toCold], [3, 0, 3], 'warm → cold and straight from hot to cold');
    for (const k of ['r/old', 'r/used', 'r/new']) {
      assert.deepEqual(await tiersOf(s, k), ['cold']);
      const g = await s.get(k);
      assert.equal(g.tier, 'cold');
      assert.equal(await text(g.body), k.replace('r/', '') + ' recording');
    }
    if (c.storageClasses) {
      assert.equal((await s.shelf.stat(tierPath('cold', 'r/old')))?.storageClass, c.storageClasses.cold);
      await s.put('r/fresh', enc('x'), { contentType: 'audio/wav' });
      assert.equal((await s.shelf.stat(tierPath('hot', 'r/fresh')))?.storageClass, c.storageClasses.hot);
    }
    // Writing a key again puts it back in hot and leaves no older copy in a colder tier.
    await s.put('r/old', enc('re-recorded'), { contentType: 'audio/wav' });
    assert.deepEqual(await tiersOf(s, 'r/old'), ['hot']);
    await s.delete('r/new');
    assert.deepEqual(await tiersOf(s, 'r/new'), []);
    await assert.rejects(s.get('r/new'), BlobNotFound);
  });

  test(`${name}: reads during a move always find the object`, async () => {
    const { svc, clock } = await c.open();
    const s = svc.store;
    const keys = Array.from({ length: 12 }, (_, i) => `m/${String(i).padStart(2, '0')}`);
    for (const k of keys) await s.put(k, enc(`body of ${k}`.repeat(50)), { contentType: 'text/plain' });
    clock.now += 400 * DAY;
    let done = false;
    let reads = 0;
    const tiersSeen = new Set<Tier>();
    // The reader records its reads as made at T0, so they do not keep the objects hot.
    const readerStore = tieredStore(s.shelf, { now: () => T0 });
    const reader = (async () => {
      while (!done) {
        for (const k of keys) {
          const g = await readerStore.get(k);
          tiersSeen.add(g.tier);
          assert.equal(await text(g.body), `body of ${k}`.repeat(50));
          reads++;
        }
      }
    })();
    const rep = await moveTiers(s, policy, { now: clock.now }).finally(() => (done = true));
    await reader;
    assert.equal(rep.moved, keys.length);
    assert.ok(reads >= keys.length, `reads made: ${reads}`);
    assert.ok(tiersSeen.has('cold'), `tiers read from: ${[...tiersSeen]}`);
  });

  test(`${name}: a move that crashes at any step is finished or undone by the next run, each object exactly once`, async () => {
    const { svc, clock } = await c.open();
    const base = svc.store;
    const seed = async (prefix: string) => {
      const keys = [`${prefix}/a`, `${prefix}/b`, `${prefix}/c`];
      for (const k of keys) await base.put(k, enc(`content of ${k}`), { contentType: 'text/plain' });
      return keys;
    };
    // Count the operations of one whole run, so every crash point can be tried.
    const counting = crashingShelf(base.shelf);
    const probeKeys = await seed('probe');
    clock.now += 40 * DAY;
    await moveTiers(tieredStore(counting, { now: () => clock.now }), policy, { now: clock.now });
    const total = counting.ops();
    for (const k of probeKeys) await base.delete(k);
    assert.ok(total > 10, `a run takes ${total} operations`);

    const every = c.crashEvery ?? 1;
    let crashes = 0;
    let finished = 0;
    let rolledBack = 0;
    for (let at = 1; at < total; at += every) {
      const start = clock.now;
      const keys = await seed(`p${at}`);
      clock.now += 40 * DAY;
      const dying = tieredStore(crashingShelf(base.shelf, at), { now: () => clock.now });
      const first = await moveTiers(dying, policy, { now: clock.now }).catch((e: Error) => e);
      if (first instanceof Error) crashes++;
      const log = memoryLog();
      const second = await moveTiers(base, policy, { now: clock.now, log });
      finished += second.finished;
      rolledBack += second.rolledBack;
      assert.equal(second.failed, 0, `crash at ${at}: ${JSON.stringify(log.lines)}`);
      for (const k of keys) {
        assert.deepEqual(await tiersOf(base, k), ['warm'], `crash at ${at}: ${k} is in exactly one tier`);
        const g = await base.get(k);
        assert.equal(await text(g.body), `content of ${k}`);
      }
      const journals = [];
      for await (const j of base.shelf.list('_moves/')) journals.push(j.path);
      assert.deepEqual(journals, [], `crash at ${at}: no journal left`);
      for (const k of keys) await base.delete(k);
      clock.now = start + DAY;
    }
    assert.ok(crashes > 0 && finished > 0 && rolledBack > 0, `crashes ${crashes}, finished ${finished}, rolled back ${rolledBack}`);
  });

  test(`${name}: an aborted run stops between objects and the next run goes on`, async () => {
    const { svc, clock } = await c.open();
    const s = svc.store;
    const keys = ['q/1', 'q/2', 'q/3', 'q/4'];
    for (const k of keys) await s.put(k, enc(k), { contentType: 'text/plain' });
    clock.now += 40 * DAY;
    const ac = new AbortController();
    const log: Logger = { ...memoryLog(), info: (obj) => { if ((obj as { key?: string }).key === 'q/2') ac.abort(); } };
    const first = await moveTiers(s, policy, { now: clock.now, log, signal: ac.signal });
    assert.equal(first.aborted, true);
    assert.equal(first.moved, 2);
    const second = await moveTiers(s, policy, { now: clock.now });
    assert.equal(second.moved, 2);
    for (const k of keys) assert.deepEqual(await tiersOf(s, k), ['warm']);
  });

  test(`${name}: health`, async () => {
    const { svc } = await c.open();
    assert.deepEqual(await svc.health(), { state: 'ok' });
  });
}

export type { BlobStore };
