import { test, before, after } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openBlobStore } from './open.ts';
import { BlobError, BlobNotFound } from './store.ts';
import { hashStream } from './digest.ts';
import { blobContract, T0, type Opened } from './contract.ts';
import { startTestS3, generatedStream, type TestS3 } from './testing.ts';

let s3: TestS3;
let n = 0;
before(async () => {
  s3 = await startTestS3();
});
after(() => s3?.stop());

/** The engine's garbage collector, without --expose-gc on the command line. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const env = () => ({ S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, BLOB_STORAGE_CLASSES: 'STANDARD,STANDARD_IA,GLACIER' });
const url = (prefix: string, bucket = s3.bucket) => `s3://${bucket}/${prefix}?endpoint=${s3.endpoint}&region=${s3.region}`;

// Each case works under its own prefix of the one bucket.
async function open(): Promise<Opened> {
  const clock = { now: T0 };
  const svc = await openBlobStore(url(`case${++n}`), env(), { now: () => clock.now });
  return { svc, clock };
}

blobContract('s3', { open, storageClasses: { hot: 'STANDARD', warm: 'STANDARD_IA', cold: 'GLACIER' }, crashEvery: 2 });

test('s3: a 50 MB recording is streamed up in parts and read back with the same sha256', async () => {
  const SIZE = 50 * 1024 * 1024;
  const PART = 5 * 1024 * 1024;
  const seen: string[] = [];
  // How far the upload has read the recording when each part starts: streaming means it reads
  // only about a part ahead, never the whole recording first.
  let pulled = 0;
  const readAhead: number[] = [];
  const svc = await openBlobStore(url('big'), env(), {
    partSize: PART,
    onRequest: (r) => {
      seen.push(`${r.method} ${r.query}`);
      const part = /^partNumber=(\d+)&/.exec(r.query);
      if (part) readAhead.push(pulled - Number(part[1]) * PART);
    },
  });
  const counted = generatedStream(SIZE, 7).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        pulled += chunk.byteLength;
        ctl.enqueue(chunk);
      },
    }),
  );
  const expected = await hashStream(generatedStream(SIZE, 7));

  // Live memory (after a collection) sampled during the upload.
  const gc = collector();
  gc();
  const base = process.memoryUsage();
  let peak = 0;
  const sampler = setInterval(() => {
    gc();
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
  }, 25);
  const started = Date.now();
  const from = s3.requests.length;
  const put = await svc.store.put('recordings/c42.wav', counted, { contentType: 'audio/wav', size: SIZE, meta: { call: 'c42' } });
  clearInterval(sampler);
  const upMs = Date.now() - started;

  assert.deepEqual(put, { key: 'recordings/c42.wav', tier: 'hot', size: SIZE, sha256: expected.sha256 });
  // The server's own log shows a multipart upload: initiate, ten part PUTs, complete.
  const log = s3.requests.slice(from);
  const parts = log.filter((l) => /^PUT \S+_incoming\/\S+\?partNumber=\d+&uploadId=\S+ 200$/.test(l));
  assert.equal(parts.length, SIZE / PART, log.join('\n'));
  assert.equal(log.filter((l) => /^POST \S+_incoming\/\S+\?uploads 200$/.test(l)).length, 1, log.join('\n'));
  assert.equal(log.filter((l) => /^POST \S+_incoming\/\S+\?uploadId=\S+ 200$/.test(l)).length, 1, log.join('\n'));
  assert.equal(seen.filter((r) => r.startsWith('PUT partNumber=')).length, SIZE / PART);
  assert.equal(readAhead.length, SIZE / PART);
  assert.ok(Math.max(...readAhead) <= 2 * PART, `read ahead of the parts started: ${readAhead.map((b) => (b / 1048576).toFixed(1)).join(', ')} MB`);
  // Live memory while uploading, for the record (noisy; four parts in flight, each also copied by
  // the request signer and fetch).
  const head = await svc.store.head('recordings/c42.wav');
  assert.equal(head.size, SIZE);
  assert.equal(head.sha256, expected.sha256);
  const got = await svc.store.get('recordings/c42.wav');
  const back = await hashStream(got.body);
  assert.deepEqual(back, expected);
  assert.equal(got.contentType, 'audio/wav');
  const incoming = [];
  for await (const e of svc.store.shelf.list('_incoming/')) incoming.push(e.path);
  assert.deepEqual(incoming, [], 'the temporary upload is gone');
  console.log(`# 50 MB multipart: ${parts.length} parts, upload ${upMs} ms, read ahead at most ${(Math.max(...readAhead) / 1048576).toFixed(1)} MB, peak live memory ${(peak / 1048576).toFixed(1)} MB`);
});

test('s3: wrong or missing credentials and a missing bucket are clear errors that never show the secret', async () => {
  const refused = async (e: Record<string, string>, re: RegExp, check = true) => {
    const err = await openBlobStore(url('creds'), e, { check }).then(
      (svc) => svc.store.get('x').then(() => undefined, (x: unknown) => x),
      (x: unknown) => x,
    );
    assert.ok(err instanceof BlobError, String(err));
    assert.equal(err.code, 'access_denied', err.message);
    assert.match(err.message, re);
    assert.ok(!err.message.includes(s3.secretKey) && !err.message.includes('wrong-secret'));
  };
  await refused({ S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: 'wrong-secret' }, /SignatureDoesNotMatch.*S3_SECRET_KEY/);
  await refused({ S3_ACCESS_KEY: 'AKNOBODY', S3_SECRET_KEY: s3.secretKey }, /InvalidAccessKeyId/);
  await refused({}, /AccessDenied/);
  await refused({ S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: 'wrong-secret' }, /SignatureDoesNotMatch/, false);

  await assert.rejects(openBlobStore(url('x', 'no-such-bucket'), env()), (e: unknown) => e instanceof BlobError && e.code === 'unavailable' && /bucket "no-such-bucket" does not exist/.test(e.message));
  await assert.rejects(openBlobStore('s3://cc-x?endpoint=http://127.0.0.1:1&region=test-1', env()), (e: unknown) => e instanceof BlobError && e.code === 'unavailable' && /failed/.test(e.message));
  const svc = await openBlobStore(url('creds'), env());
  await assert.rejects(svc.store.get('nothing/here'), (e: unknown) => e instanceof BlobNotFound && e.key === 'nothing/here');
  await assert.rejects(svc.store.head('nothing/here'), BlobNotFound);
});

test('s3: BLOB_URL and S3 settings are validated', async () => {
  const bad: [string, Record<string, string>, RegExp][] = [
    [`s3://AK:SK@${s3.bucket}?endpoint=${s3.endpoint}`, {}, /must not hold credentials/],
    [`s3://${s3.bucket}?endpoint=${s3.endpoint}&secret=x`, {}, /unknown parameter "secret"/],
    [`s3://Bad_Bucket?endpoint=${s3.endpoint}`, {}, /bucket must be/],
    [`s3://${s3.bucket}?endpoint=ftp://x`, {}, /endpoint must be an http\(s\) URL/],
    [`s3://${s3.bucket}/a//b?endpoint=${s3.endpoint}`, {}, /path \(the key prefix\)/],
    [url('x'), { S3_ACCESS_KEY: 'only-one' }, /S3_ACCESS_KEY and S3_SECRET_KEY must be set together/],
    [url('x'), { ...env(), BLOB_STORAGE_CLASSES: 'STANDARD' }, /three S3 storage classes/],
  ];
  for (const [u, e, re] of bad) await assert.rejects(openBlobStore(u, e, { check: false }), (err: unknown) => err instanceof BlobError && err.code === 'bad_input' && re.test(err.message), u);
  const svc = await openBlobStore(url('loc'), env());
  assert.ok(!svc.location.includes(s3.secretKey) && !svc.location.includes(s3.accessKey));
  assert.equal(svc.store.kind, 's3');
});

test('s3: a body read after its HTTP response was garbage-collected arrives whole', async () => {
  // Node's fetch cancels the body of a Response that is collected unread; the store must hand out a
  // stream that does not depend on the caller keeping anything else alive.
  const collect = collector();
  const { svc } = await open();
  const text = 'recording '.repeat(500);
  await svc.store.put('gc/a', new TextEncoder().encode(text), { contentType: 'text/plain' });
  const g = await svc.store.get('gc/a');
  for (let i = 0; i < 5; i++) {
    collect();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await new Response(g.body).text(), text);
});

/**
 * A loopback front for the test S3 that forwards requests as they are (their signatures name the
 * front's host, which it passes on) but leaves unanswered those `hold` picks, as a stuck server would,
 * and passes on those `slow` picks only after that many milliseconds.
 */
async function withholdingFront(hold: (req: IncomingMessage) => boolean, slow: (req: IncomingMessage) => number = () => 0) {
  const target = new URL(s3.endpoint);
  const held: ServerResponse[] = [];
  const seen: string[] = [];
  const server = createServer(async (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (hold(req)) {
      held.push(res);
      req.resume();
      return;
    }
    const ms = slow(req);
    if (ms) await new Promise((r) => setTimeout(r, ms));
    const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    held,
    seen,
    close: () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('s3: a read the server never answers is sent again, a slow write is waited for and never sent twice, and a server that answers nothing is a clear error in bounded time', async () => {
  const text = 'a voicemail '.repeat(40);
  const seen = new Map<string, number>();
  // Each object's first GET is left unanswered; PUTs are passed on after 700 ms.
  const front = await withholdingFront(
    (req) => {
      if (req.method !== 'GET' || !req.url?.includes('/stuck/')) return false;
      const n = (seen.get(req.url) ?? 0) + 1;
      seen.set(req.url, n);
      return n === 1;
    },
    (req) => (req.method === 'PUT' ? 700 : 0),
  );
  try {
    const frontUrl = `s3://${s3.bucket}/stuck${++n}?endpoint=${front.endpoint}&region=${s3.region}`;
    const svc = await openBlobStore(frontUrl, env(), { timeoutMs: 300 });
    await svc.store.put('stuck/a', new TextEncoder().encode(text), { contentType: 'text/plain' });
    // A write sent twice could be overtaken by its late first copy: it waits instead.
    assert.equal(front.seen.filter((r) => r.startsWith('PUT ') && r.includes('/hot/stuck/a')).length, 1, front.seen.join('\n'));
    const started = Date.now();
    const g = await svc.store.get('stuck/a');
    assert.equal(await new Response(g.body).text(), text);
    assert.ok(front.held.length >= 1, 'the first GET was held');
    assert.ok(Date.now() - started < 5_000, `read in ${Date.now() - started} ms`);
  } finally {
    await front.close();
  }

  // A server that takes requests and never answers any: the store says so, it does not wait minutes.
  const dead = await withholdingFront(() => true);
  try {
    const started = Date.now();
    const err = await openBlobStore(`s3://${s3.bucket}/dead?endpoint=${dead.endpoint}&region=${s3.region}`, env(), { timeoutMs: 200 }).catch((e: unknown) => e);
    assert.ok(err instanceof BlobError && err.code === 'unavailable', String(err));
    assert.match(err.message, /did not answer GET .* within 200 ms \(3 tries\)/);
    assert.equal(dead.held.length, 3, 'sent three times');
    assert.ok(Date.now() - started < 5_000, `failed after ${Date.now() - started} ms`);
  } finally {
    await dead.close();
  }
});
