// The asks' request/reply against a real nats-server: replies find their request, and a missing
// responder, a deadline and a closed connection each end a request with their own error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { NoResponders, ReplyClosed, ReplyTimeout, Replies } from './replies.ts';
import { startTestNats, type TestNats } from '../tests/support/nats.ts';

let nats: TestNats;
let nc: NatsConnection;
const enc = new TextEncoder();
const dec = new TextDecoder();

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  // An echo that answers out of order: every third request waits before its answer.
  let n = 0;
  nc.subscribe('echo', {
    callback: (_e, m) => {
      const answer = () => m.respond(enc.encode(`${dec.decode(m.data)}:${m.headers?.get('Who')}`));
      if (n++ % 3 === 0) setTimeout(answer, 5);
      else answer();
    },
  });
  nc.subscribe('silent', { callback: () => undefined });
  await nc.flush();
});

after(async () => {
  await nats.stop();
});

const who = (name: string) => {
  const h = headers();
  h.set('Who', name);
  return h;
};

test('each reply reaches its own request, many at once and out of order', async () => {
  const other = await nats.connect();
  const replies = new Replies(other);
  const got = await Promise.all(Array.from({ length: 300 }, (_, i) => replies.request('echo', enc.encode(String(i)), 5_000, who(`w${i}`))));
  assert.deepEqual(
    got.map((m) => dec.decode(m.data)),
    Array.from({ length: 300 }, (_, i) => `${i}:w${i}`),
  );
  await other.close();
});

test('nobody listening: NoResponders at once, not a timeout', async () => {
  const replies = new Replies(nc);
  const t = performance.now();
  await assert.rejects(replies.request('nobody.here', enc.encode('x'), 5_000, who('a')), (e: unknown) => e instanceof NoResponders);
  assert.ok(performance.now() - t < 1_000);
});

test('no answer by the deadline: ReplyTimeout shortly after it', async () => {
  const replies = new Replies(nc);
  const t = performance.now();
  await assert.rejects(replies.request('silent', enc.encode('x'), 200, who('a')), (e: unknown) => e instanceof ReplyTimeout && /timed out/.test((e as Error).message));
  const took = performance.now() - t;
  assert.ok(took >= 190 && took < 1_000, `took ${took} ms`);
  // The next request still works.
  assert.equal(dec.decode((await replies.request('echo', enc.encode('again'), 5_000, who('b'))).data), 'again:b');
});

test('closing the connection ends the requests waiting on it', async () => {
  const other = await nats.connect();
  const replies = new Replies(other);
  const waiting = replies.request('silent', enc.encode('x'), 30_000, who('a'));
  await other.flush();
  await other.close();
  await assert.rejects(waiting, (e: unknown) => e instanceof ReplyClosed);
  await assert.rejects(replies.request('echo', enc.encode('x'), 1_000, who('a')), (e: unknown) => e instanceof ReplyClosed);
});
