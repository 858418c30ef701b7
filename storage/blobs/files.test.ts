import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openBlobStore } from './open.ts';
import { BlobError } from './store.ts';
import { blobContract, T0, type Opened } from './contract.ts';
import { tempDir } from './testing.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function open(): Promise<Opened & { dir: string }> {
  const dir = tempDir('blobs-files');
  dirs.push(dir);
  const clock = { now: T0 };
  const svc = await openBlobStore(`file://${dir}`, {}, { now: () => clock.now });
  return { svc, clock, dir };
}

blobContract('files', { open });

test('files: objects are plain files per tier with a JSON sidecar; no temp files stay', async () => {
  const { svc, dir } = await open();
  await svc.store.put('rec/c42.wav', new TextEncoder().encode('RIFF....'), { contentType: 'audio/wav', meta: { call: 'c42' } });
  assert.equal(readFileSync(join(dir, 'hot/rec/c42.wav'), 'utf8'), 'RIFF....');
  const side = JSON.parse(readFileSync(join(dir, 'hot/rec/.c42.wav.meta.json'), 'utf8'));
  assert.equal(side.contentType, 'audio/wav');
  assert.equal(side.size, 8);
  assert.deepEqual(side.meta, { call: 'c42' });
  assert.deepEqual(readdirSync(join(dir, 'hot/rec')).sort(), ['.c42.wav.meta.json', 'c42.wav']);
});

test('files: a key that is a folder of another is a clear conflict; deletes free the name again', async () => {
  const { svc } = await open();
  const s = svc.store;
  await s.put('a/b', new Uint8Array([1]), { contentType: 'application/octet-stream' });
  await assert.rejects(s.put('a', new Uint8Array([2]), { contentType: 'application/octet-stream' }), (e: unknown) => e instanceof BlobError && e.code === 'conflict' && /clashes/.test(e.message));
  await assert.rejects(s.put('a/b/c', new Uint8Array([2]), { contentType: 'application/octet-stream' }), (e: unknown) => e instanceof BlobError && e.code === 'conflict');
  await s.delete('a/b');
  await s.put('a', new Uint8Array([3]), { contentType: 'application/octet-stream' });
  assert.equal((await s.head('a')).size, 1);
});

test('files: bad BLOB_URL and policy values are refused naming the variable', async () => {
  await assert.rejects(openBlobStore('file://', {}), /BLOB_URL file:\/\/ needs a path/);
  await assert.rejects(openBlobStore('ftp://x', {}), /BLOB_URL must be file:\/\/path or s3:\/\//);
  await assert.rejects(openBlobStore('file:///tmp/x', { BLOB_WARM_AFTER_DAYS: 'soon' }), /BLOB_WARM_AFTER_DAYS must be a number of days \(got "soon"\)/);
  await assert.rejects(openBlobStore('file:///tmp/x', { BLOB_WARM_AFTER_DAYS: '40', BLOB_COLD_AFTER_DAYS: '10' }), /BLOB_COLD_AFTER_DAYS must not be less than BLOB_WARM_AFTER_DAYS/);
  await assert.rejects(openBlobStore('file:///tmp/x', { BLOB_VERIFY: 'md5' }), /BLOB_VERIFY must be sha256 or size/);
  const { svc } = await open();
  assert.deepEqual(svc.policy, { warmAfterDays: 30, coldAfterDays: 180, verify: 'sha256' });
  const dir = tempDir('blobs-files');
  dirs.push(dir);
  const custom = await openBlobStore(`file://${dir}`, { BLOB_WARM_AFTER_DAYS: '7', BLOB_COLD_AFTER_DAYS: '90.5', BLOB_VERIFY: 'size' });
  assert.deepEqual(custom.policy, { warmAfterDays: 7, coldAfterDays: 90.5, verify: 'size' });
});
