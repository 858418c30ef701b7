import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobError, checkKey, checkPrefix, checkPutOptions, keyProblem, MAX_KEY_LENGTH } from './store.ts';

test('keys: safe characters, segments, bounded length', () => {
  for (const good of ['a', 'recordings/2024/11/c42.wav', 'mail/01J9ZK/body.eml', 'x_y-z=1+2.txt', 'a'.repeat(200)]) {
    assert.equal(keyProblem(good), undefined, good);
  }
  const bad: [unknown, RegExp][] = [
    ['', /empty/],
    ['/abs', /start or end/],
    ['trailing/', /start or end/],
    ['a//b', /\/\//],
    ['a/../b', /"\.\."/],
    ['./a', /"\."/],
    ['.hidden', /starting with "\."/],
    ['a/.meta', /starting with "\."/],
    ['sp ace', /may only contain/],
    ['uni/ü', /may only contain/],
    ['back\\slash', /may only contain/],
    ['q?x', /may only contain/],
    ['a'.repeat(201), /segments of at most 200/],
    [`${'abcdefghij/'.repeat(50)}x`, new RegExp(`at most ${MAX_KEY_LENGTH}`)],
    [42, /must be a string/],
  ];
  for (const [key, why] of bad) {
    const err = (() => {
      try {
        checkKey(key);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof BlobError, `${String(key)} refused`);
    assert.equal(err.code, 'bad_key');
    assert.match(err.message, why);
  }
});

test('prefixes may end with "/" and be empty', () => {
  assert.equal(checkPrefix(undefined), '');
  assert.equal(checkPrefix('recordings/'), 'recordings/');
  assert.equal(checkPrefix('recordings/20'), 'recordings/20');
  assert.throws(() => checkPrefix('../'), (e: BlobError) => e.code === 'bad_key');
});

test('put options are validated with a reason', () => {
  assert.deepEqual(checkPutOptions({ contentType: 'audio/wav', size: 3, meta: { call: 'c42' } }), { contentType: 'audio/wav', size: 3, meta: { call: 'c42' } });
  assert.deepEqual(checkPutOptions({ contentType: 'text/plain; charset=utf-8' }).meta, {});
  const cases: [unknown, RegExp][] = [
    [{}, /contentType/],
    [{ contentType: 'wav' }, /type\/subtype/],
    [{ contentType: 'audio/wav', size: -1 }, /size must not be negative/],
    [{ contentType: 'audio/wav', size: 1.5 }, /whole number/],
    [{ contentType: 'audio/wav', meta: { Bad_Name: 'x' } }, /lower-case/],
    [{ contentType: 'audio/wav', meta: { ok: 'tab\there' } }, /printable ASCII/],
    [{ contentType: 'audio/wav', meta: Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`k${i}`, 'v'.repeat(1000)])) }, /1800/],
  ];
  for (const [opts, why] of cases) assert.throws(() => checkPutOptions(opts), (e: BlobError) => e.code === 'bad_input' && why.test(e.message), JSON.stringify(opts).slice(0, 60));
});
