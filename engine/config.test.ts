import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from './config.ts';

test('defaults give the embedded set-up', () => {
  const c = loadConfig({});
  assert.equal(c.port, 3000);
  assert.equal(c.natsUrl, undefined);
  assert.equal(c.dataDir, './.data');
  assert.equal(c.surrealUrl, 'surrealkv://./.data/surreal');
  assert.equal(c.blobUrl, 'file://./.data/blobs');
  assert.deepEqual(c.roles, ['core', 'edge', 'media', 'store']);
  assert.equal(c.sipPort, 5060);
});

test('values are parsed', () => {
  const c = loadConfig({ PORT: '8080', NATS_URL: 'nats://127.0.0.1:4222, nats://127.0.0.1:4223', ROLE: 'core,edge', DATA_DIR: '/tmp/x/' });
  assert.equal(c.port, 8080);
  assert.deepEqual(c.natsUrl, ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']);
  assert.deepEqual(c.roles, ['core', 'edge']);
  assert.equal(c.surrealUrl, 'surrealkv:///tmp/x/surreal');
});

for (const [name, value, words] of [
  ['PORT', 'abc', /^config: PORT must be a whole number \(got "abc"\)$/],
  ['PORT', '70000', /^config: PORT must be from 1 to 65535/],
  ['NATS_URL', 'http://x', /^config: NATS_URL must be nats:\/\/host:port/],
  ['ROLE', 'boss', /^config: ROLE must be all or a comma-separated list/],
  ['SURREAL_URL', 'postgres://x', /^config: SURREAL_URL must be mem:\/\//],
  ['LEASE_TTL_MS', '10', /^config: LEASE_TTL_MS must be at least 1000 ms/],
] as const) {
  test(`bad ${name} names the variable in one line`, () => {
    assert.throws(() => loadConfig({ [name]: value }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, words);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  });
}
