import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Svcm, ServiceError } from '@nats-io/services';
import type { NatsConnection } from '@nats-io/nats-core';
import { startTestNats, type TestNats } from '../tests/support/nats.ts';
import { exitWhenDone, openTestStore } from '../tests/support/store.ts';
import { StoreClient, StoreError } from './client.ts';
import { startStoreService, type StoreService } from './service.ts';
import type { Store } from './store.ts';
import type { SurrealHandle } from './surreal.ts';

exitWhenDone();

let nats: TestNats;
let nc: NatsConnection;
let store: Store;
let surreal: SurrealHandle;
let services: StoreService[] = [];

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  ({ store, surreal } = await openTestStore());
  // Two instances in the queue group over one database, as with SURREAL_URL pointing at a shared server.
  services = [await startStoreService(await nats.connect(), store), await startStoreService(await nats.connect(), store)];
});

after(async () => {
  for (const s of services) await s.stop();
  await surreal.close();
  await nats.stop();
});

const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

test('resolve, append (idempotent), view and tickets through the service', async () => {
  const client = new StoreClient(nc);
  const r = await client.resolve({ channel: 'wechat_openid', handle: 'o-svc', displayName: 'Wu', phone: '13600001111', verified: { phone: true } });
  assert.equal(r.created, true);
  const msg = { customerId: r.customerId, channel: 'wechat' as const, channelMessageId: 'wx-1', direction: 'in' as const, text: 'hello', at: 1_000 };
  const first = await client.append(msg);
  const again = await client.append(msg);
  assert.equal(first.duplicate, false);
  assert.deepEqual(again, { ...first, duplicate: true, created: false, reopened: false });
  const view = await client.view({ customerId: r.customerId, viewer: 'agent' });
  assert.equal(view.messages.length, 1, 'stored once');
  assert.equal(view.customer.phone, '+86136****1111');
  const t = await client.ticketCreate({ subject: 'Call back', customerId: r.customerId, conversationIds: [first.conversationId], by: 'agent-1' });
  assert.deepEqual(await client.ticketGet({ ticketId: t.id }), t);
  assert.equal((await client.ticketUpdate({ ticketId: t.id, by: 'agent-1', status: 'closed' })).status, 'closed');
  assert.equal((await client.ticketList({ customerId: r.customerId })).tickets.length, 1);
  assert.deepEqual((await client.tagAdd({ target: r.customerId, tag: 'vip', by: 'agent-1' })).tags, ['vip']);
  assert.deepEqual((await client.search({ viewer: 'supervisor', tag: 'vip' })).customers.map((c) => c.phone), ['+8613600001111']);
  const other = await client.resolve({ channel: 'web', handle: 'v-svc' });
  const m = await client.merge({ survivor: r.customerId, absorbed: other.customerId, by: 'sup', reason: 'same' });
  assert.equal((await client.unmerge({ mergeId: m.mergeId, by: 'sup' })).absorbed, other.customerId);
  assert.deepEqual((await client.tagRemove({ target: r.customerId, tag: 'vip', by: 'agent-1' })).tags, []);
});

test('a bad request gets a 400 with the reason, a missing record 404, and the service keeps answering', async () => {
  const client = new StoreClient(nc);
  const bad = await errorOf(client.resolve({ channel: 'fax' as never, handle: 'x' }));
  assert.ok(bad instanceof StoreError);
  assert.equal(bad.code, 400);
  assert.match(bad.reason, /^resolve: channel: must be one of phone, email/);
  const missing = await errorOf(client.view({ customerId: 'customer:nobody', viewer: 'agent' }));
  assert.ok(missing instanceof StoreError);
  assert.equal(missing.code, 404);
  // Raw NATS: not JSON at all; the error is in the service headers and in the body.
  const raw = await nc.request('cc.store.v1.append', new TextEncoder().encode('{not json'), { timeout: 2000 });
  const se = ServiceError.toServiceError(raw);
  assert.equal(se?.code, 400);
  assert.match(se?.message ?? '', /not JSON/);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(raw.data)), { error: { code: 400, reason: 'append: request is not JSON' } });
  // Still serving.
  const ok = await client.resolve({ channel: 'web', handle: 'after-errors' });
  assert.equal(ok.created, true);
});

test('$SRV.PING, INFO and STATS show the service, its version, endpoints and counts', async () => {
  const svc = new Svcm(nc).client();
  const pings = [];
  for await (const p of await svc.ping('cc-store')) pings.push(p);
  assert.equal(pings.length, 2, 'both instances answer');
  assert.ok(pings.every((p) => p.name === 'cc-store' && p.version === '1.0.0'));
  const infos = [];
  for await (const i of await svc.info('cc-store')) infos.push(i);
  const subjects = infos[0].endpoints.map((e) => e.subject).sort();
  assert.ok(subjects.includes('cc.store.v1.resolve') && subjects.includes('cc.store.v1.ticket.create') && subjects.includes('cc.store.v1.unmerge'), subjects.join());
  assert.ok(infos[0].endpoints.every((e) => e.queue_group === 'cc-store'));

  const client = new StoreClient(nc);
  for (let i = 0; i < 20; i++) await client.resolve({ channel: 'web', handle: `stats-${i}` });
  const stats = [];
  for await (const s of await svc.stats('cc-store')) stats.push(s);
  const resolves = stats.map((s) => s.endpoints?.find((e) => e.name === 'resolve'));
  const total = resolves.reduce((n, e) => n + (e?.num_requests ?? 0), 0);
  assert.ok(total >= 20, `resolve requests counted: ${total}`);
  assert.ok(resolves.every((e) => (e?.num_requests ?? 0) > 0), 'the queue group spreads requests over both instances');
  // Our own counts (answers are asynchronous, see service.ts) include the errors of the test before.
  type Data = { requests: number; errors: number; by_code: Record<string, number>; avg_ms: number };
  const data = stats.flatMap((s) => s.endpoints ?? []).map((e) => e.data as Data | null).filter((d): d is Data => !!d);
  assert.equal(data.reduce((n, d) => n + d.requests, 0) >= total, true);
  const byCode: Record<string, number> = {};
  for (const d of data) for (const [k, n] of Object.entries(d.by_code)) byCode[k] = (byCode[k] ?? 0) + n;
  assert.ok(byCode['400'] >= 2 && byCode['404'] >= 1, `errors by code: ${JSON.stringify(byCode)}`);
  assert.ok(data.some((d) => d.avg_ms > 0));
});

test('with no store running the client says so (503)', async () => {
  const empty = await startTestNats();
  try {
    const client = new StoreClient(await empty.connect(), { timeoutMs: 500 });
    const e = await errorOf(client.resolve({ channel: 'web', handle: 'x' }));
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 503);
    assert.match(e.reason, /^resolve: no store service is answering/);
  } finally {
    await empty.stop();
  }
});
