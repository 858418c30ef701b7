// Unread counts agree across workspace nodes: a whole engine (its workspace is node A) and a second
// workspace started later on the same NATS (node B). The conversation actor counts the customer's
// messages; what the agent has read is kept in KV, so node B shows what node A marked read.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { freePort } from '../../engine/nats-server.ts';
import { serve, type HttpServer } from '../../platform/serve.ts';
import { StoreClient } from '../../storage/client.ts';
import { answer, chatSocket, startTestEngine, type TestEngine } from '../../tests/support/engine.ts';
import { tempDir, waitFor } from '../../tests/support/nats.ts';
import { apiSession } from '../browser.testing.ts';
import { workspace, type Workspace } from './routes.ts';

const adminPassword = crypto.randomUUID();
let t: TestEngine;
let b: Workspace;
let bHttp: HttpServer;

before(async () => {
  t = await startTestEngine('unread', { ADMIN_PASSWORD: adminPassword });
  const nc = await t.nats.connect();
  b = await workspace({ nc, actors: t.actors, store: new StoreClient(nc), log: pino({ level: 'silent' }), dataDir: tempDir('unread-b'), env: { ADMIN_PASSWORD: adminPassword }, blobs: t.engine.blobs!.store });
  bHttp = await serve(b.app.fetch, await freePort(), '127.0.0.1');
});

after(async () => {
  await bHttp?.close();
  await b?.stop();
  await t?.stop();
});

type Inbox = { conversations: { id: string; unread: number }[] };

test('unread counts survive a move to another workspace node', async () => {
  const nodeA = `http://127.0.0.1:${t.httpPort}`;
  const nodeB = `http://127.0.0.1:${bHttp.port}`;
  const admin = await apiSession(nodeA, 'admin', adminPassword);
  await admin('/api/users', { id: 'una', name: 'Una', role: 'agent', password: 'una-password-1', queues: ['support'] });
  const una = await apiSession(nodeA, 'una', 'una-password-1');
  await una('/api/presence', { presence: 'available' });

  const visitor = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`);
  visitor.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm1', text: 'Hello?' }));
  visitor.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm2', text: 'Anyone there?' }));
  const id = String((await waitFor('both acked', () => (visitor.frames.filter((f) => f.type === 'ack').length === 2 ? visitor.frames.find((f) => f.type === 'ack') : undefined))).conversationId);
  await answer(t.actors, 'una', id);

  const unreadOn = async (call: typeof una) => (await call<Inbox>('/api/inbox')).conversations.find((c) => c.id === id)?.unread;
  await waitFor('two unread on A', async () => ((await unreadOn(una)) === 2 ? true : undefined), 10_000, 100);
  // Node B (a second tab, or the node the agent lands on after a restart) counts the same two.
  const unaOnB = await apiSession(nodeB, 'una', 'una-password-1');
  assert.equal(await unreadOn(unaOnB), 2);
  await una(`/api/conversations/${id}`); // opened on node A: read
  assert.equal(await unreadOn(una), 0);
  await waitFor('read on B too', async () => ((await unreadOn(unaOnB)) === 0 ? true : undefined), 10_000, 100);

  // A new customer message is one unread on both nodes.
  visitor.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm3', text: 'Still here' }));
  await waitFor('one unread on A', async () => ((await unreadOn(una)) === 1 ? true : undefined), 10_000, 100);
  await waitFor('one unread on B', async () => ((await unreadOn(unaOnB)) === 1 ? true : undefined), 10_000, 100);
  visitor.ws.close();
});
