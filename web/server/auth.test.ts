// Sign-in, sessions and roles of the workspace on a real nats-server: hashes verify, wrong passwords
// get 401, repeated failures 429, expired sessions 401, and roles 403 where they may not go.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { NatsConnection } from '@nats-io/nats-core';
import { ActorClient } from '../../actors/client.ts';
import { StoreClient } from '../../storage/client.ts';
import { startTestNats, tempDir, type TestNats } from '../../tests/support/nats.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { FailureLimiter } from './ratelimit.ts';
import { COOKIE, workspace, type Workspace } from './routes.ts';

let nats: TestNats;
let nc: NatsConnection;
let ws: Workspace;
const adminPassword = crypto.randomUUID();
// The sessions' clock: the expiry test moves it on rather than sleeping (a loaded machine's password
// hashes could otherwise outlast a short session in the other tests).
let skew = 0;
const now = () => Date.now() + skew;

before(async () => {
  nats = await startTestNats();
  nc = await nats.connect();
  ws = await workspace({
    nc,
    actors: new ActorClient(nc, 4),
    store: new StoreClient(nc),
    log: pino({ level: 'silent' }),
    dataDir: tempDir('web-auth'),
    env: { ADMIN_PASSWORD: adminPassword },
    sessionMs: 60_000,
    now,
    loginLimit: { max: 3, windowMs: 60_000 },
  });
  await ws.accounts.create({ id: 'ann', role: 'agent', password: 'ann-secret-1' });
  await ws.accounts.create({ id: 'sue', role: 'supervisor', password: 'sue-secret-1' });
});

after(async () => {
  await ws?.stop();
  await nats?.stop();
});

const call = (path: string, init: { body?: unknown; cookie?: string; ip?: string } = {}) =>
  ws.app.request(path, {
    method: init.body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...(init.cookie ? { cookie: `${COOKIE}=${init.cookie}` } : {}), ...(init.ip ? { 'x-forwarded-for': init.ip } : {}) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });

async function login(user: string, password: string, ip = '10.0.0.1'): Promise<string> {
  const r = await call('/api/login', { body: { user, password }, ip });
  assert.equal(r.status, 200, await r.clone().text());
  const cookie = r.headers.get('set-cookie') ?? '';
  assert.match(cookie, /HttpOnly/i);
  assert.match(cookie, /SameSite=Strict/i);
  return /cc_session=([^;]+)/.exec(cookie)![1];
}

test('scrypt hashes verify the right password only, each with its own salt', async () => {
  const a = await hashPassword('correct horse');
  const b = await hashPassword('correct horse');
  assert.notEqual(a, b);
  assert.match(a, /^scrypt\$32768\$8\$1\$/);
  assert.equal(await verifyPassword('correct horse', a), true);
  assert.equal(await verifyPassword('correct horsE', a), false);
  assert.equal(await verifyPassword('x', 'not-a-hash'), false);
});

test('the bootstrap admin signs in with ADMIN_PASSWORD; a wrong password is 401 with a reason', async () => {
  await login('admin', adminPassword);
  const r = await call('/api/login', { body: { user: 'admin', password: 'wrong-password' }, ip: '10.0.0.2' });
  assert.equal(r.status, 401);
  assert.match((await r.json()).error, /wrong user name or password/);
  const bad = await call('/api/login', { body: { user: 'admin' } });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /password/);
});

test('repeated failures for one user are throttled with 429 and Retry-After', async () => {
  for (let i = 0; i < 3; i++) assert.equal((await call('/api/login', { body: { user: 'ann', password: `nope-${i}` }, ip: `10.1.0.${i}` })).status, 401);
  const r = await call('/api/login', { body: { user: 'ann', password: 'ann-secret-1' }, ip: '10.1.0.9' });
  assert.equal(r.status, 429);
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  const limiter = new FailureLimiter(2, 1000, () => now);
  let now = 0;
  limiter.fail('k');
  limiter.fail('k');
  assert.ok(limiter.retryAfter('k') > 0);
  now = 1001;
  assert.equal(limiter.retryAfter('k'), 0, 'the window slides');
});

test('sessions expire; a missing or forged cookie is 401', async () => {
  const token = await login('sue', 'sue-secret-1', '10.2.0.1');
  assert.equal((await call('/api/agents', { cookie: token })).status, 200);
  assert.equal((await call('/api/agents')).status, 401);
  assert.equal((await call('/api/agents', { cookie: 'A'.repeat(43) })).status, 401);
  skew += 61_000;
  const r = await call('/api/agents', { cookie: token });
  assert.equal(r.status, 401);
  assert.match((await r.json()).error, /expired/);
});

test('roles: agents get 403 on supervisor and admin routes; admins create users, duplicates 409', async () => {
  const adminCookie = await login('admin', adminPassword, '10.3.0.2');
  const sueCookie = await login('sue', 'sue-secret-1', '10.3.0.3');
  await ws.accounts.create({ id: 'bob', role: 'agent', password: 'bob-secret-1' });
  const bob = await login('bob', 'bob-secret-1', '10.3.0.4');
  for (const path of ['/api/wallboard', '/api/reports?from=0&to=1', '/api/users']) {
    const r = await call(path, { cookie: bob });
    assert.equal(r.status, 403, path);
    assert.match((await r.json()).error, /needs the/);
  }
  assert.equal((await call('/api/users', { cookie: sueCookie })).status, 403, 'a supervisor is not an admin');
  const list = await call('/api/users', { cookie: adminCookie });
  assert.equal(list.status, 200);
  const users = (await list.json()).users as { id: string; hash?: string }[];
  assert.deepEqual(users.map((u) => u.id), ['admin', 'ann', 'bob', 'sue']);
  assert.ok(users.every((u) => u.hash === undefined), 'hashes never leave the server');
  const weak = await call('/api/users', { cookie: adminCookie, body: { id: 'cat', role: 'agent', password: 'short' } });
  assert.equal(weak.status, 400);
  assert.match((await weak.json()).error, /password: must be at least 10/);
  const dup = await call('/api/users', { cookie: adminCookie, body: { id: 'bob', role: 'agent', password: 'another-secret' } });
  assert.equal(dup.status, 409);
});
