// Finding the nats-server binary for embedded defaults, and the one line a user gets when it is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NatsServerMissing, findNatsServer } from './nats-server.ts';
import { tempDir } from '../tests/support/nats.ts';

test('nats-server is taken from PATH first, then from the usual places; missing, one line says how to get it', () => {
  const root = tempDir('find-nats');
  const onPath = join(root, 'bin');
  const usual = join(root, 'sbin', 'nats-server');
  mkdirSync(onPath, { recursive: true });
  mkdirSync(join(root, 'sbin'));
  writeFileSync(join(onPath, 'nats-server'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(usual, '#!/bin/sh\n', { mode: 0o755 });
  assert.equal(findNatsServer(`/nowhere:${onPath}`, [usual]), join(onPath, 'nats-server'));
  assert.equal(findNatsServer('/nowhere', [join(root, 'missing'), usual]), usual);
  assert.throws(
    () => findNatsServer('/nowhere', [join(root, 'missing')]),
    (e: unknown) => e instanceof NatsServerMissing && !e.message.includes('\n') && /apt-get install nats-server/.test(e.message) && /NATS_URL/.test(e.message),
  );
});
