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

/** A POST as this user, answered with its status and error (for refusals). */
async function post(user: string, password: string, path: string, b: unknown): Promise<{ status: number; error: string }> {
  const base = `http://127.0.0.1:${t.httpPort}`;
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { cookie: await loginCookie(base, user, password), 'content-type': 'application/json' }, body: JSON.stringify(b) });
  return { status: res.status, error: ((await res.json()) as { error: string }).error };
}

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
  const raw = (user: string, password: string, b: unknown) => post(user, password, path, b);
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
  // The actor says whether it can be wrapped up: a closed one cannot.
  assert.deepEqual(await post('una', 'una-password-1', `/api/conversations/${id}/wrapup`, {}), { status: 409, error: 'the conversation is closed; only an active or held conversation can be wrapped up' });
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

test('a supervisor merges two customers: the store moves their history, the survivor keeps the opt-out; agents may not merge', async () => {
  const base = `http://127.0.0.1:${t.httpPort}`;
  const admin = await apiSession(base, 'admin', adminPassword);
  await admin('/api/users', { id: 'wes', name: 'Wes', role: 'agent', password: 'wes-password-1', queues: ['support'] });
  await admin('/api/users', { id: 'mia', name: 'Mia', role: 'supervisor', password: 'mia-password-1', queues: ['support'] });
  const wes = await apiSession(base, 'wes', 'wes-password-1');
  const mia = await apiSession(base, 'mia', 'mia-password-1');
  await wes('/api/presence', { presence: 'available' });
  // Una (from the test above) steps away: these go to Wes.
  await (await apiSession(base, 'una', 'una-password-1'))('/api/presence', { presence: 'away', reason: 'break' });
  // Two visitors who are, it turns out, one person.
  const open = async (text: string) => {
    const v = await chatSocket(`ws://127.0.0.1:${t.httpPort}/webchat/v1/ws?site=demo`);
    v.ws.send(JSON.stringify({ type: 'message', clientMessageId: 'm1', text }));
    const id = String((await waitFor('acked', () => v.frames.find((f) => f.type === 'ack'))).conversationId);
    await answer(t.actors, 'wes', id);
    v.ws.close();
    return { conversation: id, customer: (await conversationOf(t.actors, id)).context.customer! };
  };
  const a = await open('My parcel is late');
  const b = await open('Hello again, about the parcel');
  assert.notEqual(a.customer, b.customer);
  // On the first record they said stop to SMS, and were tagged.
  await wes(`/api/conversations/${a.conversation}/customer`, { addTags: ['parcel'], consent: { channel: 'sms', optedIn: false } });

  assert.equal((await post('wes', 'wes-password-1', `/api/customers/${a.customer}/merge`, { into: b.customer, reason: 'same person' })).status, 403);
  assert.deepEqual(await post('mia', 'mia-password-1', `/api/customers/${a.customer}/merge`, { into: b.customer }), { status: 400, error: 'reason: say why' });
  assert.equal((await post('mia', 'mia-password-1', `/api/customers/${a.customer}/merge`, { into: a.customer, reason: 'x' })).status, 400);
  assert.equal((await post('mia', 'mia-password-1', `/api/customers/nobody/merge`, { into: b.customer, reason: 'x' })).status, 404);

  const merged = await mia<{ mergeId: string; survivor: string; absorbed: string; moved: { conversations: number } }>(`/api/customers/${a.customer}/merge`, { into: b.customer, reason: 'same person, two browsers' });
  assert.deepEqual([merged.survivor, merged.absorbed, merged.moved.conversations], [b.customer, a.customer, 1]);
  // The survivor has both histories, the tag, and the opt-out: nobody texts them because of the merge.
  const view = await t.store.view({ customerId: `customer:${b.customer}`, viewer: 'system' });
  assert.deepEqual(new Set(view.messages.map((m) => m.conversationId.split(':')[1])), new Set([a.conversation, b.conversation]));
  const survivor = await waitFor('the survivor took the opt-out', async () => ((x) => (x.consent.sms?.optedIn === false ? x : undefined))(await t.actors.ask<Customer>(`customer/${b.customer}`, { type: 'get' })), 10_000, 100);
  assert.match(survivor.consent.sms.source, new RegExp(`merged from ${a.customer}`));
  assert.ok(survivor.tags.includes('parcel'));
  assert.equal((await t.actors.ask<{ allowed: boolean }>(`customer/${b.customer}`, { type: 'contact.check', channel: 'sms' })).allowed, false);
  assert.equal((await t.actors.ask<{ mergedInto?: string }>(`customer/${a.customer}`, { type: 'get' })).mergedInto, b.customer);
  // Once merged, the absorbed record takes no second merge.
  assert.deepEqual(await post('mia', 'mia-password-1', `/api/customers/${a.customer}/merge`, { into: b.customer, reason: 'again' }), { status: 409, error: `customer ${a.customer} was merged into ${b.customer} already` });
  // Undone in the store alone, the actors stay merged: a merge the other way is refused, not looped.
  await t.store.unmerge({ mergeId: merged.mergeId, by: 'mia' });
  assert.deepEqual(await post('mia', 'mia-password-1', `/api/customers/${b.customer}/merge`, { into: a.customer, reason: 'the other way' }), { status: 409, error: `customer ${a.customer} was merged into ${b.customer}; merge into that customer instead` });
});
