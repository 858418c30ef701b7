// The agent's call ringing the widget over NATS (ring.ts + call.ts WidgetVoice), on a real nats-server:
// a conversation without a connected widget falls back (no reply), an unanswered ring ends as "no answer"
// on every socket, a declined one tells the agent. The browser flow is in web/widget-call.e2e.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { NatsConnection } from '@nats-io/nats-core';
import { ActorClient } from '../../actors/client.ts';
import { startTestNats, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { WidgetVoice } from './call.ts';
import type { CallServerFrame } from './protocol.ts';
import { ringWidget } from './ring.ts';

let nats: TestNats;
let nc: NatsConnection;
let voice: WidgetVoice;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  voice = new WidgetVoice({ nc, actors: new ActorClient(nc, 4), logger: pino({ level: 'silent' }), ringMs: 300 });
});
after(async () => {
  await voice?.stop();
  await nc?.close();
  await nats?.stop();
});

test('no widget of the conversation is connected: nobody answers the ring, the caller dials the phone instead', async () => {
  const started = Date.now();
  assert.equal(await ringWidget(nc, { conversationId: 'c1', agent: 'ann' }, { answerMs: 300 }), undefined);
  assert.ok(Date.now() - started < 2000);
});

test('an unanswered ring ends as no answer on every socket of the conversation; a declined one says so', async () => {
  const a: CallServerFrame[] = [];
  const b: CallServerFrame[] = [];
  const offA = voice.listen('c2', (f) => a.push(f));
  const offB = voice.listen('c2', (f) => b.push(f));
  const other: CallServerFrame[] = [];
  const offOther = voice.listen('c3', (f) => other.push(f));
  assert.deepEqual(await ringWidget(nc, { conversationId: 'c2', agent: 'ann' }, { waitMs: 300 }), { outcome: 'no-answer', reason: 'the visitor did not answer' });
  for (const frames of [a, b]) {
    assert.equal(frames[0].type, 'call.incoming');
    assert.deepEqual(frames[1], { type: 'call.incoming.ended', invite: frames[0].type === 'call.incoming' ? frames[0].invite : '', outcome: 'no-answer' });
  }
  assert.deepEqual(other, [], "another conversation's widget does not ring");

  // Declined from one socket: the agent hears it, the other socket stops ringing, a second decline is refused.
  a.length = b.length = 0;
  const outcome = ringWidget(nc, { conversationId: 'c2', agent: 'ann' });
  await waitFor('the ring', () => a.length > 0, 2000, 10);
  const ring = a[0];
  assert.ok(ring.type === 'call.incoming' && ring.expiresInMs === 300);
  voice.decline('c2', ring.invite);
  assert.deepEqual(await outcome, { outcome: 'declined', reason: 'the visitor declined the call' });
  assert.deepEqual(b.at(-1), { type: 'call.incoming.ended', invite: ring.invite, outcome: 'declined' });
  assert.throws(() => voice.decline('c2', ring.invite), /no longer ringing/);
  assert.throws(() => voice.decline('c3', ring.invite), /no longer ringing/);
  offA();
  offB();
  offOther();
  assert.equal(await ringWidget(nc, { conversationId: 'c2', agent: 'ann' }, { answerMs: 300 }), undefined, 'closed sockets no longer ring');
});
