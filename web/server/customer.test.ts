// The customer of a conversation, from the workspace: tags and consent by the agent who holds it, the
// tier by a supervisor; each change is stored in the customer actor and shown back; bad input is refused
// with the reason. A VIP set here reaches routing: the customer's next conversation queues as VIP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { answer, chatSocket, conversationOf, startTestEngine, type TestEngine } from '../../tests/support/engine.ts';
import { waitFor } from '../../tests/support/nats.ts';
import { apiSession, loginCookie } from '../browser.testing.ts';

const adminPassword = crypto.randomUUID();
let t: TestEngine;

before(async () => {
  t = await startTestEngine('customer-api', { ADMIN_PASSWORD: adminPassword });
});

after(() => t?.stop());

type Customer = { id: string; tier: string; tags: string[]; consent: Record<string, { optedIn: boolean; source: string }> };

test('agents tag a customer and record their consent; only supervisors set the tier, and it reaches routing', async () => {
  const base = `http://127.0.0.1:${t.httpPort}`;
  const admin = await apiSession(base, 'admin', adminPassword);
  await admin('/api/users', { id: 'una', name: 'Una', role: 'agent', password: 'una-password-1', queues: ['support'] });
  await admin('/api/users', { id: 'vic', name: 'Vic', role: 'agent', password: 'vic-password-1', queues: ['support'] });
  await admin('/api/users', { id: 'sue', name: 'Sue', role: 'supervisor', password: 'sue-password-1', queues: ['support'] });
  const una = await apiSession(base, 'una', 'una-password-1');
  const sue = await apiSession(base, 'sue', 'sue-password-1');
  await una('/api/presence', { presence: 'available' });

  const visitor = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`);
  visitor.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm1', text: 'Where is my refund?' }));
  const id = String((await waitFor('acked', () => visitor.frames.find((f) => f.type === 'ack'))).conversationId);
  await answer(t.actors, 'una', id);
  const path = `/api/conversations/${id}/customer`;

  const first = await una<Customer>(path);
  assert.equal(first.tier, 'normal');
  assert.deepEqual(first.tags, []);
  const tagged = await una<Customer>(path, { addTags: ['refund', 'repeat caller'], consent: { channel: 'sms', optedIn: false } });
  assert.deepEqual(tagged.tags, ['refund', 'repeat caller']);
  assert.equal(tagged.consent.sms.optedIn, false);
  assert.equal(tagged.consent.sms.source, 'told una (agent)');
  // The opt-out is what outreach checks.
  const check = await t.actors.ask<{ allowed: boolean }>(`customer/${first.id}`, { type: 'contact.check', channel: 'sms' });
  assert.equal(check.allowed, false);
  assert.deepEqual((await una<Customer>(path, { removeTags: ['repeat caller'] })).tags, ['refund']);

  // Refusals, each with its reason.
  const raw = async (user: string, password: string, b: unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { cookie: await loginCookie(base, user, password), 'content-type': 'application/json' }, body: JSON.stringify(b) });
    return { status: res.status, error: ((await res.json()) as { error: string }).error };
  };
  assert.deepEqual(await raw('una', 'una-password-1', { tier: 'vip' }), { status: 403, error: 'tier: only a supervisor or an admin sets a customer’s tier' });
  assert.deepEqual(await raw('vic', 'vic-password-1', { addTags: ['x'] }), { status: 403, error: 'this conversation is not assigned to you' });
  assert.equal((await raw('una', 'una-password-1', {})).status, 400);
  assert.match((await raw('una', 'una-password-1', {})).error, /name a change/);
  const badTag = await raw('una', 'una-password-1', { addTags: ['<script>'] });
  assert.equal(badTag.status, 400);
  assert.match(badTag.error, /must be 1-40 letters/);
  assert.match((await raw('una', 'una-password-1', { consent: { channel: 'fax', optedIn: true } })).error, /consent/);

  // A supervisor makes them VIP; when they write again after it closed, the conversation reopens and queues as VIP.
  assert.equal((await sue<Customer>(path, { tier: 'vip' })).tier, 'vip');
  await una(`/api/conversations/${id}/wrapup`, { disposition: 'refund sent' });
  await waitFor('closed', async () => (await conversationOf(t.actors, id)).value === 'closed', 10_000, 100);
  visitor.ws.close();
  // The edge caches a customer's tier for a few seconds: a new visitor session of the same customer is asked after that.
  await new Promise((r) => setTimeout(r, 10_500));
  const again = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`, { visitorId: String(visitor.welcome.visitorId) });
  again.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm2', text: 'One more thing' }));
  const next = String((await waitFor('acked again', () => again.frames.find((f) => f.type === 'ack'))).conversationId);
  assert.equal(next, id, 'the same conversation, reopened');
  const c = await waitFor('queued again', async () => ((x) => (x.value !== 'closed' ? x : undefined))(await conversationOf(t.actors, next)), 10_000, 100);
  assert.equal(c.context.customer, first.id, 'the same customer');
  assert.equal(c.context.task?.tier, 'vip');
  again.ws.close();
});
