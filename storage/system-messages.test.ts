// Messages the engine writes itself (direction 'system': a call's recording and its transcript), on the
// real embedded SurrealDB: they join the conversation's history with their attachment, and appending one
// to a closed conversation does not reopen it (a customer's message would).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';

exitWhenDone();

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

test("a recording and its transcript (direction 'system') join a closed call's history without reopening it", async () => {
  const { store, surreal } = await openTestStore();
  const { customerId, identityId } = await store.resolve({ channel: 'phone', handle: '+8613800138000', phone: '+8613800138000', verified: { phone: true } });
  const call = await store.append({ customerId, identityId, channel: 'voice', channelMessageId: 'call-1', direction: 'in', text: '', at: NOW });
  await store.conversationStatus({ conversationId: call.conversationId, status: 'closed', at: NOW + 60_000, by: 'agent/ann' });

  const recording = { objectKey: `recordings/${call.conversationId.slice(13)}/call-1.opus`, contentType: 'audio/ogg', size: 24_000, name: 'call-1.opus' };
  const rec = await store.append({ customerId, conversationId: call.conversationId, channel: 'voice', channelMessageId: 'recording:call-1', direction: 'system', author: 'recording', text: 'Call recording (58 s)', attachments: [recording], at: NOW + 61_000 });
  const tr = await store.append({ customerId, conversationId: call.conversationId, channel: 'voice', channelMessageId: 'transcript:call-1', direction: 'system', author: 'transcript', text: 'caller: call me back tomorrow', attachments: [recording], at: NOW + 62_000 });
  assert.equal(rec.conversationId, call.conversationId);
  assert.equal(tr.reopened, false);
  assert.equal(rec.reopened, false, 'a system message never reopens');
  // Repeated (the edge retried): stored once.
  assert.equal((await store.append({ customerId, conversationId: call.conversationId, channel: 'voice', channelMessageId: 'transcript:call-1', direction: 'system', text: 'again', at: NOW + 63_000 })).duplicate, true);

  const view = await store.view({ customerId, viewer: 'agent' });
  assert.equal(view.conversations[0].status, 'closed');
  const [t, r] = view.messages;
  assert.deepEqual([t.direction, t.author, t.text], ['system', 'transcript', 'caller: call me back tomorrow']);
  assert.deepEqual([r.direction, r.author], ['system', 'recording']);
  assert.deepEqual(r.attachments, [recording]);
  assert.deepEqual(t.attachments, [recording], 'the transcript links to the recording it came from');
  await assert.rejects(store.append({ customerId, channel: 'voice', channelMessageId: 'x', direction: 'sideways' as 'in', text: 'x', at: NOW }), /must be in, out or system/);
  await surreal.close();
});
