import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeyRing, type KeyLog } from './keys.ts';
import { FieldCipher } from './crypto.ts';

const root = join(import.meta.dirname, '..', '.test-data', `keys-${process.pid}`);
mkdirSync(root, { recursive: true });
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const freshDir = () => join(root, `d${++n}`);
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const random32 = () => crypto.getRandomValues(new Uint8Array(32));

function recorder() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const log: KeyLog = {
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
  };
  return { log, lines };
}

test('no configuration: generates keys.json once (mode 0600) and reuses it', async () => {
  const dir = freshDir();
  const first = recorder();
  const ring = loadKeyRing({}, dir, first.log);
  const path = join(dir, 'keys.json');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(Object.keys(ring.keys).length, 1);
  assert.equal(ring.keys[ring.activeId].length, 32);
  assert.equal(ring.indexKey.length, 32);
  assert.notDeepEqual(ring.indexKey, ring.keys[ring.activeId]);
  assert.match(first.lines.map((l) => l.msg).join('\n'), /generated a local key ring/);
  // The log names the file and key id, never key material.
  const logged = JSON.stringify(first.lines);
  assert.ok(logged.includes(path) && logged.includes(ring.activeId));
  for (const k of [ring.keys[ring.activeId], ring.indexKey]) {
    assert.ok(!logged.includes(b64(k)) && !logged.includes(Buffer.from(k).toString('base64url')));
  }
  assert.deepEqual(readdirSync(dir), ['keys.json'], 'no temporary file left behind');

  const second = recorder();
  const again = loadKeyRing({ FIELD_KEYS: '' }, dir, second.log);
  assert.deepEqual(again, ring, 'the next start reuses the same ring');
  assert.match(second.lines[0].msg, /using the local key ring/);

  // What one start sealed, the next start opens, and lookups match.
  const a = await FieldCipher.create(ring);
  const b = await FieldCipher.create(again);
  assert.equal(await b.open(await a.seal('13812345678')), '13812345678');
  assert.equal(await b.lookupHash('phone', '13812345678'), await a.lookupHash('phone', '+86 138 1234 5678'));
});

test('keys.json readable by others is tightened to 0600 with a warning', () => {
  const dir = freshDir();
  const ring = loadKeyRing({}, dir, recorder().log);
  const path = join(dir, 'keys.json');
  chmodSync(path, 0o644);
  const r = recorder();
  assert.deepEqual(loadKeyRing({}, dir, r.log), ring);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.ok(r.lines.some((l) => l.level === 'warn' && /0600/.test(l.msg)));
});

test('a damaged keys.json is refused with the reason, never replaced', () => {
  const dir = freshDir();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'keys.json');
  writeFileSync(path, '{ not json', { mode: 0o600 });
  assert.throws(() => loadKeyRing({}, dir, recorder().log), /keys\.json: .* is not valid JSON/);
  writeFileSync(path, JSON.stringify({ version: 1, activeId: 'a', keys: { a: b64(new Uint8Array(16)) }, indexKey: b64(random32()) }));
  assert.throws(() => loadKeyRing({}, dir, recorder().log), /keys\.json: key "a" must be 32 bytes of base64 \(got 16 bytes\)/);
  writeFileSync(path, JSON.stringify({ version: 1, activeId: 'b', keys: { a: b64(random32()) }, indexKey: b64(random32()) }));
  assert.throws(() => loadKeyRing({}, dir, recorder().log), /activeId "b" is not one of its keys/);
  writeFileSync(path, JSON.stringify({ version: 2 }));
  assert.throws(() => loadKeyRing({}, dir, recorder().log), /keys\.json: .* is malformed \(version/);
  assert.ok(readFileSync(path, 'utf8').includes('"version":2'), 'the file is left for the operator');
});

test('from the environment: FIELD_KEYS, FIELD_KEY_ACTIVE, FIELD_INDEX_KEY', async () => {
  const k1 = random32();
  const k2 = random32();
  const ix = random32();
  const dir = freshDir();
  const env = { FIELD_KEYS: `k1:${b64(k1)}, k2:${Buffer.from(k2).toString('base64url')}`, FIELD_INDEX_KEY: b64(ix) };
  const ring = loadKeyRing(env, dir, recorder().log);
  assert.equal(ring.activeId, 'k1', 'default: the first key');
  assert.deepEqual(ring.keys, { k1, k2 });
  assert.deepEqual(ring.indexKey, ix);
  assert.equal(loadKeyRing({ ...env, FIELD_KEY_ACTIVE: 'k2' }, dir).activeId, 'k2');
  assert.throws(() => statSync(join(dir, 'keys.json')), /ENOENT/, 'configured keys write no file');
  const cipher = await FieldCipher.create(ring);
  assert.equal(await cipher.open(await cipher.seal('x')), 'x');
});

test('bad environment values throw an Error naming the variable', () => {
  const good = b64(random32());
  const ix = b64(random32());
  const cases: [Record<string, string>, RegExp][] = [
    [{ FIELD_KEYS: 'k1', FIELD_INDEX_KEY: ix }, /^FIELD_KEYS must be kid:<base64 key> pairs/],
    [{ FIELD_KEYS: `k1:${b64(new Uint8Array(16))}`, FIELD_INDEX_KEY: ix }, /^FIELD_KEYS: key "k1" must be 32 bytes of base64 \(got 16 bytes\)/],
    [{ FIELD_KEYS: 'k1:not base64!!', FIELD_INDEX_KEY: ix }, /^FIELD_KEYS: key "k1" must be base64/],
    [{ FIELD_KEYS: `bad.id:${good}`, FIELD_INDEX_KEY: ix }, /^FIELD_KEYS: key id "bad\.id" must be/],
    [{ FIELD_KEYS: `k1:${good},k1:${good}`, FIELD_INDEX_KEY: ix }, /^FIELD_KEYS: key id "k1" appears twice/],
    [{ FIELD_KEYS: ' , ', FIELD_INDEX_KEY: ix }, /^FIELD_KEYS must name at least one/],
    [{ FIELD_KEYS: `k1:${good}`, FIELD_KEY_ACTIVE: 'k9', FIELD_INDEX_KEY: ix }, /^FIELD_KEY_ACTIVE "k9" is not a key id in FIELD_KEYS \(k1\)/],
    [{ FIELD_KEYS: `k1:${good}` }, /^FIELD_INDEX_KEY is required with FIELD_KEYS/],
    [{ FIELD_KEYS: `k1:${good}`, FIELD_INDEX_KEY: 'c2hvcnQ=' }, /^FIELD_INDEX_KEY must be 32 bytes of base64 \(got 5 bytes\)/],
    [{ FIELD_KEYS: `k1:${good}`, FIELD_INDEX_KEY: 'short' }, /^FIELD_INDEX_KEY must be base64/],
    [{ FIELD_KEYS: `k1:${good}`, FIELD_INDEX_KEY: good }, /^FIELD_INDEX_KEY must differ from every key in FIELD_KEYS/],
    [{ FIELD_KEY_ACTIVE: 'k1' }, /^FIELD_KEY_ACTIVE is set but FIELD_KEYS is not/],
    [{ FIELD_INDEX_KEY: ix }, /^FIELD_INDEX_KEY is set but FIELD_KEYS is not/],
  ];
  const dir = freshDir();
  for (const [env, re] of cases) {
    assert.throws(() => loadKeyRing(env, dir, recorder().log), (e: Error) => {
      assert.match(e.message, re, JSON.stringify(Object.keys(env)));
      assert.ok(!e.message.includes(good) && !e.message.includes(ix), 'the message never carries a key');
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  }
});

test('configured keys that drop a generated local ring are warned about', () => {
  const dir = freshDir();
  const local = loadKeyRing({}, dir, recorder().log);
  const localId = local.activeId;
  const b64url = (k: Uint8Array) => Buffer.from(k).toString('base64url');
  const kept = recorder();
  loadKeyRing({ FIELD_KEYS: `new:${b64(random32())},${localId}:${b64url(local.keys[localId])}`, FIELD_INDEX_KEY: b64(local.indexKey) }, dir, kept.log);
  assert.deepEqual(kept.lines, [], 'the local key and index key are carried over: nothing to say');
  const dropped = recorder();
  loadKeyRing({ FIELD_KEYS: `new:${b64(random32())}`, FIELD_INDEX_KEY: b64(random32()) }, dir, dropped.log);
  assert.equal(dropped.lines.length, 1);
  assert.equal(dropped.lines[0].level, 'warn');
  assert.deepEqual(dropped.lines[0].obj, { path: join(dir, 'keys.json'), missingKeyIds: [localId], indexKeyChanged: true });
});
