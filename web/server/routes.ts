// The agent workspace's HTTP surface, mounted by the engine at `/` (after /healthz, /metrics, /webchat):
//   GET  /  /app.js                 the page and its client bundle
//   POST /api/login /api/logout     sessions (HttpOnly SameSite=Strict cookie)
//   GET  /api/me                    the user and their agent actor (presence, offers, load)
//   …/api/*                         presence, offers, inbox, conversations, uploads, canned, users, wallboard, reports
//   …/api/calls/:id/*               the agent's voice leg over WebRTC (calls.ts)
//   GET  /ws                        one WebSocket per tab (live.ts)
import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import * as v from 'valibot';
import { AskError, type ActorClient } from '../../actors/client.ts';
import { upgradeWebSocket } from '../../platform/websocket.ts';
import type { StoreClient } from '../../storage/client.ts';
import { StoreError } from '../../storage/api.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { openBlobStore } from '../../storage/blobs/open.ts';
import { Accounts, type Role, type Session } from './accounts.ts';
import { buildClient } from './bundle.ts';
import { CallBody, callRoutes, placeCall, type CallRoutes } from './calls.ts';
import { ConversationIndex, reportOf, stateOf, type Entry } from './conversations.ts';
import { recordingResponse } from './recordings.ts';
import { LiveHub } from './live.ts';
import { userRoutes } from './users.ts';
import { channelConfig } from '../../engine/channels.ts';
import { IDENTITY_OF } from '../../edges/inbound.ts';
import { OutreachClient, OutreachError } from '../../edges/outreach-api.ts';
import { MAX_UPLOAD_BYTES, uploadRefusal } from '../client/upload-limits.ts';
import { page } from './page.ts';
import { ringWidget } from '../../edges/webchat/ring.ts';
import { FailureLimiter } from './ratelimit.ts';
import { AgentSlots, CannedBody, CustomerId, CustomerPatchBody, LoginBody, MergeBody, OutreachBody, PresenceBody, reasonOf, RejectBody, ReplyBody, ReportQuery, StateView, TransferBody, WrapupBody, isResponse, jsonBody } from './schemas.ts';

export interface WorkspaceDeps {
  nc: NatsConnection;
  actors: ActorClient;
  store: StoreClient;
  log: Logger;
  registry?: Registry;
  dataDir: string;
  env: Record<string, string | undefined>;
  /** The engine's object store (Engine.blobs.store); without it, files under dataDir/blobs. */
  blobs?: BlobStore;
  /** Session lifetime (default 8 h) and login throttling; tests shorten them. */
  sessionMs?: number;
  /** The sessions' clock (tests move it instead of waiting). */
  now?: () => number;
  loginLimit?: { max: number; windowMs: number };
  replicas?: number;
}

export interface Workspace {
  app: Hono;
  accounts: Accounts;
  index: ConversationIndex;
  calls: CallRoutes;
  stop(): Promise<void>;
}

export const COOKIE = 'cc_session';
const MAX_UPLOAD = MAX_UPLOAD_BYTES;
type Env = { Variables: { session: Session } };
type Ctx = Context<Env>;

/** Builds the workspace; `.app` is the Hono app to mount at `/`. */
export async function workspace(deps: WorkspaceDeps): Promise<Workspace> {
  const log = deps.log.child({ part: 'workspace' });
  const accounts = await Accounts.open(deps.nc, { sessionMs: deps.sessionMs, replicas: deps.replicas, now: deps.now });
  const boot = await accounts.bootstrapAdmin(deps.env.ADMIN_PASSWORD || undefined);
  // Printed once, to the log only, when no ADMIN_PASSWORD was given: never stored in the repo or on disk.
  if (boot.generated) log.warn({ user: 'admin', password: boot.generated }, 'generated the first admin password: sign in and change it (or set ADMIN_PASSWORD)');
  const index = await ConversationIndex.start(deps.nc, deps.actors, log, deps.replicas);
  const hub = new LiveHub(deps.nc, index);
  const blobs = deps.blobs ?? (await openBlobStore(`file://${deps.dataDir}/blobs`, deps.env, { log })).store;
  const kvm = new Kvm(deps.nc);
  const canned: KV = await kvm.create('cc_canned', { history: 1, replicas: deps.replicas ?? 1 }).catch(() => kvm.open('cc_canned'));
  const bundle = await buildClient();
  // Where outreach sends from when the agent names no account: each channel's first configured one.
  const channels = channelConfig(deps.env);
  const defaultAccounts: Partial<Record<string, string>> = { webchat: Object.keys(channels.WEBCHAT_SITES)[0], app: Object.keys(channels.APP_KEYS)[0], email: channels.EMAIL_ACCOUNTS[0], sms: channels.SMS_ACCOUNTS?.[0], voice: deps.env.SIP_FROM_NUMBER || deps.env.SIP_TRUNK_USER };
  const outreach = new OutreachClient(deps.nc);
  const limiter = new FailureLimiter(deps.loginLimit?.max ?? 5, deps.loginLimit?.windowMs ?? 60_000);
  const { actors, store } = deps;

  const app = new Hono<Env>();
  const fail = (c: Ctx, status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 502 | 503, error: string, headers?: Record<string, string>) => c.json({ error }, status, headers);
  const body = jsonBody;

  app.onError((err, c) => {
    if (err instanceof StoreError) return c.json({ error: err.reason }, err.code === 404 || err.code === 400 || err.code === 409 ? err.code : 502);
    // No node answered for the actor in time (a shard changing owner): the request may simply be sent again.
    if (err instanceof AskError && err.code === 'timeout') return c.json({ error: err.message }, 503);
    log.error({ err }, 'workspace request failed');
    return c.json({ error: err.message }, 500);
  });

  app.get('/', (c) => c.html(page(c.req.header('accept-language')?.startsWith('zh') ? 'zh-CN' : 'en')));
  app.get('/app.js', (c) => (c.req.header('if-none-match') === bundle.etag ? c.body(null, 304) : c.body(bundle.js, 200, { 'content-type': 'text/javascript; charset=utf-8', etag: bundle.etag, 'cache-control': 'no-cache' })));

  // ---- sessions ------------------------------------------------------------------------------
  app.post('/api/login', async (c) => {
    const b = await body(c, LoginBody);
    if (isResponse(b)) return b;
    const ip = c.req.header('x-forwarded-for')?.split(',')[0].trim() || 'direct';
    const wait = Math.max(limiter.retryAfter(`u:${b.user}`), limiter.retryAfter(`ip:${ip}`));
    if (wait) return fail(c, 429, `too many failed sign-ins; try again in ${Math.ceil(wait / 1000)} s`, { 'retry-after': String(Math.ceil(wait / 1000)) });
    const user = await accounts.check(b.user, b.password);
    if (!user) {
      limiter.fail(`u:${b.user}`);
      limiter.fail(`ip:${ip}`);
      return fail(c, 401, 'wrong user name or password');
    }
    if (user.disabled) return fail(c, 403, 'this account is disabled; ask an administrator');
    limiter.reset(`u:${b.user}`);
    const s = await accounts.startSession(user);
    setCookie(c, COOKIE, s.token, { httpOnly: true, sameSite: 'Strict', path: '/', secure: new URL(c.req.url).protocol === 'https:', expires: new Date(s.expiresAt) });
    return c.json({ user: user.id, name: user.name, role: user.role, expiresAt: s.expiresAt });
  });

  // Everything below needs a session.
  app.use('/api/*', async (c, next) => {
    const s = await accounts.session(getCookie(c, COOKIE));
    if (!s) return fail(c, 401, 'sign in first (no session, or it expired)');
    c.set('session', s);
    await next();
  });
  app.use('/ws', async (c, next) => {
    const s = await accounts.session(getCookie(c, COOKIE));
    if (!s) return fail(c, 401, 'sign in first (no session, or it expired)');
    c.set('session', s);
    await next();
  });
  const only = (...roles: Role[]) => async (c: Ctx, next: () => Promise<void>) => {
    if (!roles.includes(c.get('session').role)) return fail(c, 403, `this needs the ${roles.join(' or ')} role`);
    await next();
  };
  const supervising = only('supervisor', 'admin');

  app.post('/api/logout', async (c) => {
    await accounts.endSession(c.get('session').token);
    deleteCookie(c, COOKIE, { path: '/' });
    return c.json({ ok: true });
  });

  const agentView = (id: string) => actors.ask<Record<string, unknown>>(`agent/${id}`, { type: 'get' }, { timeoutMs: 3000 });
  app.get('/api/me', async (c) => {
    const s = c.get('session');
    const user = await accounts.get(s.user);
    if (!user) return fail(c, 401, 'this user no longer exists');
    const a = await agentView(s.user).catch(() => undefined);
    const timeout = typeof a?.offerTimeoutMs === 'number' ? a.offerTimeoutMs : 20_000;
    const offers = Object.entries((a?.offers ?? {}) as Record<string, { task: Record<string, unknown>; at: number }>).map(([reservationId, o]) => ({ reservationId, task: o.task, expiresAt: o.at + timeout }));
    return c.json({ user: user.id, name: user.name, role: user.role, queues: user.queues, presence: a?.presence ?? 'offline', load: a?.load, capacity: a?.capacity, offers, expiresAt: s.expiresAt });
  });

  // ---- presence and offers -------------------------------------------------------------------
  app.post('/api/presence', async (c) => {
    const b = await body(c, PresenceBody);
    if (isResponse(b)) return b;
    const s = c.get('session');
    const a = await agentView(s.user).catch(() => undefined);
    const now = String(a?.presence ?? 'offline');
    const user = (await accounts.get(s.user))!;
    if (b.presence === 'offline') await actors.tell(`agent/${s.user}`, { type: 'logout' });
    else if (now === 'wrapup') {
      // Ready before the maximum wrap-up time: wrap-up ends now, then the chosen presence applies.
      await actors.tell(`agent/${s.user}`, { type: 'wrapup.done' });
      if (b.presence === 'away') await actors.tell(`agent/${s.user}`, { type: 'presence.set', presence: 'away', reason: b.reason });
    } else if (now === 'offline') {
      await actors.tell(`agent/${s.user}`, { type: 'login', queues: user.queues });
      if (b.presence === 'away') await actors.tell(`agent/${s.user}`, { type: 'presence.set', presence: 'away', reason: b.reason });
    } else await actors.tell(`agent/${s.user}`, { type: 'presence.set', presence: b.presence, reason: b.reason });
    return c.json({ ok: true, presence: b.presence });
  });
  const ReservationId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_=.:-]{1,128}$/, 'not a reservation id'));
  app.post('/api/offers/:rid/accept', async (c) => {
    const rid = v.safeParse(ReservationId, c.req.param('rid'));
    if (!rid.success) return fail(c, 400, reasonOf(rid.issues));
    await actors.tell(`agent/${c.get('session').user}`, { type: 'offer.accept', reservationId: rid.output });
    return c.json({ ok: true });
  });
  app.post('/api/offers/:rid/reject', async (c) => {
    const rid = v.safeParse(ReservationId, c.req.param('rid'));
    if (!rid.success) return fail(c, 400, reasonOf(rid.issues));
    const b = await body(c, RejectBody);
    if (isResponse(b)) return b;
    await actors.tell(`agent/${c.get('session').user}`, { type: 'offer.reject', reservationId: rid.output, reason: b.reason });
    return c.json({ ok: true });
  });

  // ---- inbox and conversations ---------------------------------------------------------------
  const summary = (e: Entry, user: string) => {
    const slaDue = e.firstResponseAt === undefined ? e.openedAt + e.slaFirstSec * 1000 : e.awaitingReply && e.lastCustomerAt ? e.lastCustomerAt + e.slaNextSec * 1000 : undefined;
    return { id: e.id, state: e.state, channel: e.channel, queue: e.queue, agent: e.agent, customer: e.customer, openedAt: e.openedAt, lastAt: e.lastAt, unread: index.unread(user, e.id), slaDue, breached: e.breaches.length > 0 };
  };
  app.get('/api/inbox', async (c) => {
    const s = c.get('session');
    // The agent actor is the authority on what is theirs; the index fills in the details.
    const a = await agentView(s.user).catch(() => undefined);
    const ids = Object.keys((a?.tasks ?? {}) as Record<string, unknown>);
    const entries = (await Promise.all(ids.map((id) => index.load(id)))).filter((e): e is Entry => Boolean(e));
    return c.json({ conversations: entries.map((e) => summary(e, s.user)).sort((x, y) => y.lastAt - x.lastAt) });
  });

  const IdParam = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/, 'not a conversation id'));
  /** The conversation when this user may work on it: its agent, or a supervisor/admin. */
  async function mine(c: Ctx): Promise<Entry | Response> {
    const id = v.safeParse(IdParam, c.req.param('id'));
    if (!id.success) return fail(c, 400, reasonOf(id.issues));
    const e = await index.load(id.output);
    if (!e) return fail(c, 404, `no conversation ${id.output}`);
    const s = c.get('session');
    if (s.role === 'agent' && e.agent !== s.user) return fail(c, 403, 'this conversation is not assigned to you');
    return e;
  }

  app.get('/api/conversations/:id', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const s = c.get('session');
    // Masking follows the viewer's role: the store decides what an agent may see of phone, email, address.
    const view = await store.view({ customerId: `customer:${e.customer}`, viewer: s.role, limit: 200 });
    index.markRead(s.user, e.id);
    return c.json({ conversation: { ...summary(e, s.user), deliveries: e.deliveries, transfers: e.transfers, disposition: e.disposition }, customer: view });
  });

  // The customer of a conversation as the customer actor keeps them: tier, tags and consent per channel
  // (handles stay with the store's view, which masks them for agents).
  type CustomerView = { tier: 'normal' | 'vip'; tags: string[]; consent: Record<string, { optedIn: boolean; at: number; source: string }> };
  const customerOf = async (customer: string) => {
    const c = await actors.ask<CustomerView>(`customer/${customer}`, { type: 'get' }, { timeoutMs: 3000 });
    return { id: customer, tier: c.tier, tags: c.tags, consent: c.consent };
  };

  app.get('/api/conversations/:id/customer', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    return c.json(await customerOf(e.customer));
  });

  app.post('/api/conversations/:id/customer', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const b = await body(c, CustomerPatchBody);
    if (isResponse(b)) return b;
    const s = c.get('session');
    if (b.tier && s.role === 'agent') return fail(c, 403, 'tier: only a supervisor or an admin sets a customer’s tier');
    // Asks, not tells: each is applied and stored before it is answered, so the answer below shows them all
    // (and every one of them is harmless to repeat).
    const to = `customer/${e.customer}`;
    const at = Date.now();
    const change = (event: Record<string, unknown> & { type: string }) => actors.ask(to, { ...event, at }, { timeoutMs: 3000 });
    if (b.tier) await change({ type: 'tier.set', tier: b.tier });
    for (const tag of b.addTags) await change({ type: 'tag.add', tag });
    for (const tag of b.removeTags) await change({ type: 'tag.remove', tag });
    if (b.consent) await change({ type: b.consent.optedIn ? 'consent.opt_in' : 'consent.opt_out', channel: b.consent.channel, source: `told ${s.user} (${s.role})` });
    log.info({ user: s.user, customer: e.customer, tier: b.tier, addTags: b.addTags, removeTags: b.removeTags, consent: b.consent }, 'customer changed');
    return c.json(await customerOf(e.customer));
  });

  // Two records are one person: the store moves identities, conversations, tickets and tags; then the
  // absorbed customer's actor hands what it knew (consent above all) to the survivor through its outbox.
  app.post('/api/customers/:id/merge', supervising, async (c) => {
    const b = await body(c, MergeBody);
    if (isResponse(b)) return b;
    const id = v.safeParse(CustomerId, c.req.param('id'));
    if (!id.success) return fail(c, 400, `id: ${id.issues[0].message}`);
    const absorbed = id.output;
    const s = c.get('session');
    // Both must exist (404 otherwise) before their actors are asked, or the asks would make empty ones.
    await Promise.all([b.into, absorbed].map((id) => store.view({ customerId: `customer:${id}`, viewer: 'system', limit: 1 })));
    // An unmerge in the store does not take the actors back: a customer whose actor is merged stays out of
    // new merges, or two merged actors could pass each other's news back and forth for ever.
    const [survivor, old] = await Promise.all([b.into, absorbed].map((id) => actors.ask<{ mergedInto?: string }>(`customer/${id}`, { type: 'get' }, { timeoutMs: 3000 })));
    if (survivor.mergedInto) return fail(c, 409, `customer ${b.into} was merged into ${survivor.mergedInto}; merge into that customer instead`);
    if (old.mergedInto) return fail(c, 409, `customer ${absorbed} was merged into ${old.mergedInto} already`);
    const m = await store.merge({ survivor: `customer:${b.into}`, absorbed: `customer:${absorbed}`, by: s.user, reason: b.reason });
    // Asked, so it is stored before the answer; a repeat (after a failure here) is refused harmlessly.
    await actors.ask(`customer/${absorbed}`, { type: 'merge.into', into: b.into, at: Date.now() }, { timeoutMs: 3000 });
    log.info({ user: s.user, survivor: b.into, absorbed, merge: m.mergeId }, 'customers merged');
    return c.json({ mergeId: m.mergeId, survivor: b.into, absorbed, moved: { identities: m.moved.identities.length, conversations: m.moved.conversations.length, tickets: m.moved.tickets.length, tags: m.moved.tags.length } });
  });

  app.post('/api/conversations/:id/reply', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const b = await body(c, ReplyBody);
    if (isResponse(b)) return b;
    if (e.state !== 'active') return fail(c, 409, `the conversation is ${e.state}; replies go to active conversations`);
    const s = c.get('session');
    const messageId = `w${crypto.randomUUID().replace(/-/g, '')}`;
    const at = Date.now();
    const channel = b.channel ?? (e.channel as typeof b.channel & string);
    await store.append({
      customerId: `customer:${e.customer}`,
      conversationId: `conversation:${e.id}`,
      channel,
      channelMessageId: messageId,
      direction: 'out',
      author: s.user,
      text: b.text?.trim() || undefined,
      at,
      attachments: b.attachments.map((a) => ({ objectKey: a.key, contentType: a.contentType, size: a.size, name: a.name })),
    });
    await actors.tell(`conversation/${e.id}`, { type: 'agent.reply', messageId, agent: s.user, channel, text: b.text?.trim() || undefined, attachments: b.attachments, at }, { msgId: `reply:${messageId}` });
    return c.json({ messageId, at });
  });

  app.post('/api/conversations/:id/transfer', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const b = await body(c, TransferBody);
    if (isResponse(b)) return b;
    if (b.to === `agent/${c.get('session').user}`) return fail(c, 400, 'to: you already hold this conversation');
    if (b.to.startsWith('agent/') && !(await accounts.get(b.to.slice(6)))) return fail(c, 404, `no agent ${b.to.slice(6)}`);
    await actors.tell(`conversation/${e.id}`, { type: 'transfer', to: b.to, note: b.note });
    return c.json({ ok: true });
  });

  app.post('/api/conversations/:id/wrapup', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const b = await body(c, WrapupBody);
    if (isResponse(b)) return b;
    // Without a disposition the conversation enters wrap-up (it leaves the agent's open list); with one it
    // is closed with it. Wrap-up is asked, not told: the actor, not this node's index (which follows it a
    // moment later), says whether it could, and the page can show the form at once. The close is a tell
    // after it, so the two keep their order.
    if (e.state !== 'wrapup') {
      const now = await actors.ask(`conversation/${e.id}`, { type: 'wrapup' }, { timeoutMs: 3000, reply: StateView });
      const state = stateOf(now.value);
      if (state !== 'wrapup') return fail(c, 409, `the conversation is ${state}; only an active or held conversation can be wrapped up`);
    }
    if (b.disposition) await actors.tell(`conversation/${e.id}`, { type: 'close', disposition: b.disposition });
    return c.json({ ok: true, state: b.disposition ? 'closed' : 'wrapup' });
  });

  // The media of the call is the voice edge's; here the conversation moves to voice and keeps its history.
  // A call's recording, for whoever may see the conversation (its agent, supervisors, admins); Range for seeking.
  app.get('/api/conversations/:id/recordings/:rid', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    const r = await recordingResponse(blobs, e.id, c.req.param('rid'), c.req.header('range'));
    return r instanceof Response ? r : c.json({ error: r.error }, r.status, r.headers);
  });

  app.post('/api/conversations/:id/call', async (c) => {
    const e = await mine(c);
    if (isResponse(e)) return e;
    if (e.state !== 'active') return fail(c, 409, `the conversation is ${e.state}; a call starts from an active conversation`);
    const b = await body(c, CallBody);
    if (isResponse(b)) return b;
    // The call needs a voice slot of the chat's agent: dialled, it moves the chat's work onto one nobody
    // reserved; rung in the widget, the agent's reservation would be refused and the customer who accepted
    // would land in the voice queue. An agent on another call, or with no voice capacity, is told so first.
    if (e.agent) {
      const a = v.safeParse(AgentSlots, await actors.ask<unknown>(`agent/${e.agent}`, { type: 'get' }, { timeoutMs: 3000 }));
      if (!a.success) return fail(c, 503, `agent ${e.agent} did not say which slots are free`);
      const { load, capacity } = a.output;
      if (load.voice >= capacity.voice) return fail(c, 409, `no free voice slot (${load.voice}/${capacity.voice}): end the other call first, or ask for voice capacity`);
    }
    // A web chat with its widget open and no number given: the widget rings (Accept/Decline) and this answers
    // with the visitor's choice; no widget connected, the customer's phone is dialled as for any chat.
    if (e.channel === 'webchat' && !b.number && e.agent) {
      // A customer who opted out of voice is not rung in the widget either.
      const check = await actors.ask<{ allowed: boolean; reason: string }>(`customer/${e.customer}`, { type: 'contact.check', channel: 'voice' }, { timeoutMs: 3000 });
      if (!check.allowed) return fail(c, 403, `call refused: ${check.reason}`);
      const rung = await ringWidget(deps.nc, { conversationId: e.id, agent: e.agent });
      if (rung?.outcome === 'accepted') return c.json({ ok: true, channel: 'voice', via: 'widget' });
      if (rung) return fail(c, 409, rung.reason);
    }
    // The edge tells the conversation `dialing` (it switches to voice), then ringing, answered, ended.
    const placed = await placeCall({ nc: deps.nc, actors, store }, { conversationId: e.id, customer: e.customer, number: b.number });
    if ('error' in placed) return fail(c, placed.status, placed.error);
    return c.json({ ok: true, channel: 'voice', callId: placed.callId });
  });

  // Proactive outreach: only to a customer who has not opted out of the channel.
  app.post('/api/outreach', async (c) => {
    const b = await body(c, OutreachBody);
    if (isResponse(b)) return b;
    const s = c.get('session');
    // Text channels: the outreach service (edges/outreach.ts) picks the customer's preferred channel when none
    // is named, checks opt-outs, stores the first message, opens the conversation and sends the message now.
    const viaService = async (channel: typeof b.channel, handle: string | undefined, account: string | undefined, queue: string) => {
      try {
        const r = await outreach.open({ customerId: b.customerId, channel, text: b.text, queue, by: s.user, account, handle });
        return c.json({ ...r, note: `sent on ${r.channel}; the conversation is queued for an agent` });
      } catch (e) {
        if (!(e instanceof OutreachError)) throw e;
        return fail(c, e.code === 400 || e.code === 403 || e.code === 404 || e.code === 409 || e.code === 503 ? e.code : 502, e.reason);
      }
    };
    if (!b.channel) return viaService(undefined, undefined, b.account, b.queue ?? (await accounts.get(s.user))?.queues[0] ?? 'support');
    const key = b.customerId.slice('customer:'.length);
    const check = await actors.ask<{ allowed: boolean; reason: string }>(`customer/${key}`, { type: 'contact.check', channel: b.channel }, { timeoutMs: 3000 });
    if (!check.allowed) return fail(c, 403, `outreach refused: ${check.reason}`);
    let handle = b.handle;
    if (b.identity) {
      // The real handle, not the masked one the agent saw: the system viewer reads it, and it never leaves here.
      const view = await store.view({ customerId: b.customerId, viewer: 'system', limit: 1 });
      const identity = view.identities.find((i) => i.id === b.identity);
      if (!identity) return fail(c, 404, `identity: ${b.identity} is not one of this customer's identities`);
      if (IDENTITY_OF[b.channel] !== identity.channel) return fail(c, 400, `identity: a ${identity.channel} identity cannot be reached on ${b.channel}`);
      handle = identity.handle;
    }
    const account = b.account ?? defaultAccounts[b.channel];
    if (!account) return fail(c, 400, `account: no ${b.channel} account is configured to send from`);
    const queue = b.queue ?? (await accounts.get(s.user))?.queues[0] ?? 'support';
    if (b.channel !== 'voice') return viaService(b.channel, handle, account, queue);
    const id = crypto.randomUUID().replace(/-/g, '');
    const at = Date.now();
    const stored = await store.append({ customerId: b.customerId, conversationId: `conversation:${id}`, channel: b.channel, channelMessageId: `o${id}`, direction: 'out', author: s.user, text: b.text, at });
    await actors.tell(
      `conversation/${id}`,
      { type: 'open', customer: key, channel: b.channel, queue, attrs: { outbound: true, by: s.user }, replyTo: { account, handle: handle! }, at },
      { msgId: `open:${id}` },
    );
    // Voice: a call now; answered, the customer hears music until an agent of the queue takes it.
    const placed = await placeCall({ nc: deps.nc, actors, store }, { conversationId: id, customer: key, number: handle });
    if ('error' in placed) {
      await actors.tell(`conversation/${id}`, { type: 'customer.left' }, { msgId: `left:${id}` });
      return fail(c, placed.status, `the call was not placed: ${placed.error}`);
    }
    return c.json({ conversationId: id, messageId: stored.messageId, callId: placed.callId, note: 'calling: the conversation is queued for an agent' });
  });

  // ---- the agent's voice leg in the browser (WebRTC through the media service) --------------------
  const calls = callRoutes({ nc: deps.nc, actors, index, log });
  app.route('/api/calls', calls.app);

  // ---- attachments ----------------------------------------------------------------------------
  app.post('/api/uploads', async (c) => {
    const len = Number(c.req.header('content-length') ?? 0);
    if (len > MAX_UPLOAD + 64 * 1024) return fail(c, 413, `files are limited to ${MAX_UPLOAD} bytes`);
    const form = await c.req.formData().catch(() => undefined);
    const file = form?.get('file');
    if (!file || typeof file === 'string') return fail(c, 400, 'send the file as multipart/form-data field "file"');
    const refused = uploadRefusal(file);
    if (refused) return fail(c, refused.status, refused.reason);
    const name = file.name.replace(/[^\p{L}\p{N}._ -]/gu, '_').slice(0, 100) || 'file';
    const key = `workspace/${c.get('session').user}/${crypto.randomUUID()}/${encodeURIComponent(name)}`;
    const contentType = file.type || 'application/octet-stream';
    await blobs.put(key, new Uint8Array(await file.arrayBuffer()), { contentType, size: file.size });
    return c.json({ key, name, contentType, size: file.size });
  });
  app.get('/api/files', async (c) => {
    const key = c.req.query('key') ?? '';
    if (!/^(workspace|webchat|email|sms|app)\//.test(key) || key.includes('..')) return fail(c, 400, 'key: not an attachment key');
    const got = await blobs.get(key).catch(() => undefined);
    if (!got) return fail(c, 404, 'no such file');
    return new Response(got.body as BodyInit, { headers: { 'content-type': got.contentType, 'content-disposition': 'attachment', 'x-content-type-options': 'nosniff' } });
  });

  // ---- canned responses -----------------------------------------------------------------------
  const dec = new TextDecoder();
  app.get('/api/canned', async (c) => {
    const out: unknown[] = [];
    for await (const k of await canned.keys()) {
      const e = await canned.get(k);
      if (e?.operation === 'PUT' && e.value.length) out.push(JSON.parse(dec.decode(e.value)));
    }
    return c.json({ canned: out });
  });
  app.post('/api/canned', supervising, async (c) => {
    const b = await body(c, CannedBody);
    if (isResponse(b)) return b;
    await canned.put(b.id, new TextEncoder().encode(JSON.stringify(b)));
    return c.json(b);
  });
  app.delete('/api/canned/:id', supervising, async (c) => {
    const id = v.safeParse(CannedBody.entries.id, c.req.param('id'));
    if (!id.success) return fail(c, 400, `id: ${reasonOf(id.issues)}`);
    const e = await canned.get(id.output);
    if (!e || e.operation !== 'PUT' || !e.value.length) return fail(c, 404, `no canned response ${id.output}`);
    await canned.delete(id.output);
    return c.json({ ok: true });
  });

  // ---- users ---------------------------------------------------------------------------------
  app.get('/api/agents', async (c) => {
    const users = await accounts.list();
    return c.json({ agents: users.filter((u) => u.role !== 'admin' && !u.disabled).map((u) => ({ id: u.id, name: u.name, queues: u.queues })) });
  });
  app.route('/api/users', userRoutes({ accounts, actors }));

  // ---- supervisors ---------------------------------------------------------------------------
  app.get('/api/wallboard', supervising, async (c) => {
    const users = (await accounts.list()).filter((u) => u.role !== 'admin');
    const queueIds = [...new Set(users.flatMap((u) => u.queues))].sort();
    const [agents, queues] = await Promise.all([
      Promise.all(users.map(async (u) => {
        const a = await agentView(u.id).catch(() => undefined);
        return { id: u.id, name: u.name, presence: String(a?.presence ?? 'unknown'), load: a?.load ?? {}, capacity: a?.capacity ?? {}, tasks: Object.keys((a?.tasks ?? {}) as object).length };
      })),
      Promise.all(queueIds.map((q) => actors.ask<Record<string, unknown>>(`queue/${q}`, { type: 'get' }, { timeoutMs: 3000 }).then((x) => ({ queue: q, waiting: x.waiting, longestWaitSec: x.longestWaitSec, serviceLevelPct: x.serviceLevelPct, agentsAvailable: x.agentsAvailable }), () => ({ queue: q, error: 'no answer' })))),
    ]);
    const channels: Record<string, { waiting: number; active: number; wrapup: number }> = {};
    for (const e of index.entries.values()) {
      const ch = (channels[e.channel] ??= { waiting: 0, active: 0, wrapup: 0 });
      if (['queued', 'waiting', 'offered', 'transferring'].includes(e.state)) ch.waiting++;
      else if (['active', 'onHold'].includes(e.state)) ch.active++;
      else if (e.state === 'wrapup') ch.wrapup++;
    }
    return c.json({ at: Date.now(), queues, agents, channels });
  });
  app.get('/api/reports', supervising, async (c) => {
    const q = v.safeParse(ReportQuery, { from: c.req.query('from') ?? '', to: c.req.query('to') ?? '' });
    if (!q.success) return fail(c, 400, reasonOf(q.issues));
    if (q.output.to <= q.output.from) return fail(c, 400, 'to: must be after from');
    return c.json({ from: q.output.from, to: q.output.to, channels: reportOf(await index.closedBetween(q.output.from, q.output.to)), source: 'summaries of conversations closed in the period (KV cc_reports)' });
  });

  // ---- live ----------------------------------------------------------------------------------
  app.get(
    '/ws',
    upgradeWebSocket((c) => {
      const s = (c as Ctx).get('session');
      const since = Number(c.req.query('since'));
      const tab = hub.tab(c.req.query('tab'), s.user, s.role);
      let send: ((f: string) => void) | undefined;
      return {
        onOpen(_e, ws) {
          send = (f) => ws.send(f);
          tab.attach(send, Number.isInteger(since) && since >= 0 ? since : undefined);
        },
        onClose() {
          if (send) tab.detach(send);
        },
      };
    }),
  );

  return {
    app: app as unknown as Hono,
    accounts,
    index,
    calls,
    async stop() {
      await calls.stop();
      hub.stop();
      index.stop();
    },
  };
}

/** The contract the lead mounts: `app.route('/', (await workspaceRoutes(deps)))`. */
export async function workspaceRoutes(deps: WorkspaceDeps): Promise<Hono> {
  return (await workspace(deps)).app;
}
