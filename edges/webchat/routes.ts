// The web chat and in-app IM edge's HTTP surface, mounted by the engine at /webchat:
//   GET  /v1/ws?site=KEY | ?app=KEY   the WebSocket (protocol v1, PROTOCOL.md)
//   POST /v1/upload?site=KEY | ?app=KEY   an attachment into the object store
//   GET  /v1/files?key=…               an attachment back (its key is unguessable)
//   GET  /v1/widget.js                 the embeddable widget
//   GET  /v1/call.js                   the widget's call module (mediasoup-client), fetched when a visitor calls
import { readFile } from 'node:fs/promises';
import { Hono, type Context } from 'hono';
import * as v from 'valibot';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Registry } from 'prom-client';
import type { ActorClient } from '../../actors/client.ts';
import { upgradeWebSocket } from '../../platform/websocket.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import type { Edge, InboundSink } from '../message.ts';
import { openConversationLog, type ConversationLog } from './log.ts';
import { AppUserSchema, firstIssue } from './protocol.ts';
import { Session, type Account, type Logger } from './session.ts';
import { verifyUserToken } from './token.ts';
import { DEFAULT_UPLOAD_LIMITS, UploadRejection, storeUpload, type UploadLimits } from './upload.ts';
import { logEdge, publishNotice, publishReceipt, type Notice } from './edge.ts';
import { webchatMetrics, type WebchatMetrics } from './metrics.ts';
import { WidgetVoice } from './call.ts';
import { callBundle } from './call-bundle.ts';
import type { RatingTaker } from './csat.ts';

const AccountKey = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{4,64}$/, 'keys must be 4-64 letters, digits, _ or -'));
const ConfigSchema = v.object({
  sites: v.record(AccountKey, v.object({ name: v.pipe(v.string(), v.minLength(1)) })),
  apps: v.record(AccountKey, v.object({ secret: v.pipe(v.string(), v.minLength(32, 'an app secret must be at least 32 characters (e.g. openssl rand -base64 32)')) })),
});

export interface WebchatDeps {
  nc: NatsConnection;
  sink: InboundSink;
  blobs: BlobStore;
  sites: Record<string, { name: string }>;
  apps: Record<string, { secret: string }>;
  metrics?: Registry;
  log: Logger;
  upload?: Partial<UploadLimits>;
  /** JetStream replicas of the log stream and bucket (JS_REPLICAS). */
  replicas?: number;
  now?: () => number;
  /** Calls from the widget (protocol v2): the conversation actors to switch to voice; absent, no voice. */
  voice?: { actors: Pick<ActorClient, 'tell' | 'ask'> };
  /** CHAT_LINK_SECRET: visitors who open a signed chat link (sent by SMS) join its conversation. */
  chatLinkSecret?: string;
  /** Customers' ratings of closed conversations (csat.ts `ratingTaker`); absent, ratings are refused. */
  csat?: RatingTaker;
}

export interface Webchat {
  /** Mount at /webchat. */
  routes: Hono;
  edges: { webchat: Edge; app: Edge };
  log: ConversationLog;
  metrics: WebchatMetrics;
  publishNotice(conversationId: string, notice: Notice): Promise<number>;
  publishReceipt(conversationId: string, state: 'delivered' | 'read', upToSeq: number): Promise<number>;
  /** Closes every socket of this node (clients reconnect elsewhere). */
  close(): Promise<void>;
}

const WIDGET_URL = new URL('./widget.js', import.meta.url);

export async function webchatRoutes(deps: WebchatDeps): Promise<Webchat> {
  const cfg = v.safeParse(ConfigSchema, { sites: deps.sites, apps: deps.apps });
  if (!cfg.success) throw new Error(`webchat config: ${firstIssue(cfg.issues)}`);
  const log = await openConversationLog(deps.nc, { replicas: deps.replicas });
  const metrics = webchatMetrics(deps.metrics);
  const limits: UploadLimits = { ...DEFAULT_UPLOAD_LIMITS, ...deps.upload };
  const widget = await readFile(WIDGET_URL, 'utf8');
  const sessions = new Set<{ session: Session; close(): void }>();
  const voice = deps.voice ? new WidgetVoice({ nc: deps.nc, actors: deps.voice.actors, logger: deps.log }) : undefined;
  const sessionDeps = { nc: deps.nc, log, sink: deps.sink, blobs: deps.blobs, metrics, logger: deps.log, now: deps.now, voice, chatLinkSecret: deps.chatLinkSecret, csat: deps.csat };

  const refuse = (c: Context, status: 400 | 401 | 403 | 413 | 415 | 426, code: string, reason: string) => {
    metrics.rejected.inc({ code });
    // Before an upgrade only the status and headers reach a WebSocket client: the reason rides in a header too.
    return c.json({ error: reason, code }, status, { 'x-cc-reason': reason.replace(/[^\x20-\x7e]/g, '?') });
  };
  /** The account a request names, or why not. */
  const accountOf = (c: Context): Account | { status: 400 | 403; code: string; reason: string } => {
    const site = c.req.query('site');
    const app = c.req.query('app');
    if (site !== undefined) return Object.hasOwn(deps.sites, site) ? { kind: 'site', key: site } : { status: 403, code: 'unknown_site', reason: `unknown site key ${JSON.stringify(site.slice(0, 64))}` };
    if (app !== undefined) return Object.hasOwn(deps.apps, app) ? { kind: 'app', key: app, secret: deps.apps[app].secret } : { status: 403, code: 'unknown_app', reason: `unknown app key ${JSON.stringify(app.slice(0, 64))}` };
    return { status: 400, code: 'no_account', reason: 'name the site (?site=KEY) or the app (?app=KEY)' };
  };

  const routes = new Hono();
  routes.get(
    '/v1/ws',
    async (c, next) => {
      const account = accountOf(c);
      if ('status' in account) return refuse(c, account.status, account.code, account.reason);
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return refuse(c, 426, 'not_websocket', 'this endpoint speaks WebSocket (protocol v1, see PROTOCOL.md)');
      c.set('account' as never, account as never);
      await next();
    },
    upgradeWebSocket((c) => {
      const account = c.get('account' as never) as Account;
      let entry: { session: Session; close(): void } | undefined;
      return {
        onOpen: (_evt, ws) => {
          const session = new Session(sessionDeps, account, {
            send: (text) => {
              if (ws.readyState === 1) ws.send(text);
            },
            close: (code, reason) => ws.close(code, reason),
          });
          entry = { session, close: () => ws.close(1001, 'server stopping') };
          sessions.add(entry);
        },
        onMessage: (evt) => entry?.session.receive(evt.data),
        onClose: () => {
          if (!entry) return;
          entry.session.closedByPeer();
          sessions.delete(entry);
        },
        onError: (evt) => deps.log.warn({ err: String((evt as ErrorEvent).message ?? evt.type) }, 'webchat socket error'),
      };
    }),
  );

  routes.post('/v1/upload', async (c) => {
    const account = accountOf(c);
    if ('status' in account) return refuse(c, account.status, account.code, account.reason);
    let handle: string;
    if (account.kind === 'site') {
      const visitor = c.req.header('x-cc-visitor') ?? '';
      if (!/^[A-Za-z0-9_-]{22}$/.test(visitor)) return refuse(c, 401, 'no_visitor', 'x-cc-visitor must be the visitor id from the welcome frame');
      handle = `visitor:${visitor}`;
    } else {
      let user: unknown;
      try {
        user = JSON.parse(decodeURIComponent(c.req.header('x-cc-user') ?? ''));
      } catch {
        return refuse(c, 401, 'bad_token', 'x-cc-user must be the percent-encoded JSON user the token signs');
      }
      const u = v.safeParse(AppUserSchema, user);
      if (!u.success) return refuse(c, 401, 'bad_token', `x-cc-user: ${firstIssue(u.issues)}`);
      const token = (c.req.header('authorization') ?? '').replace(/^Bearer\s+/i, '');
      const check = await verifyUserToken(account.secret, u.output, token, (deps.now ?? Date.now)());
      if (!check.ok) return refuse(c, 401, check.code, check.reason);
      handle = `${account.key}:${u.output.id}`;
    }
    try {
      const attachment = await storeUpload(c, deps.blobs, limits, account.key, handle);
      metrics.uploads.inc({ result: 'stored' });
      return c.json(attachment, 201);
    } catch (e) {
      if (e instanceof UploadRejection) {
        metrics.uploads.inc({ result: 'refused' });
        return refuse(c, e.status, e.code, e.message);
      }
      throw e;
    }
  });

  routes.get('/v1/files', async (c) => {
    const key = c.req.query('key') ?? '';
    // A visitor's own uploads, and what agents attach to replies (workspace/<agent>/<random uuid>/<name>):
    // both keys carry an unguessable random segment, which is what lets the widget fetch them.
    if (!/^(webchat|workspace)\//.test(key) || key.includes('..')) return c.json({ error: 'key must be a web chat attachment key', code: 'bad_key' }, 400);
    const got = await deps.blobs.get(key).catch(() => undefined);
    if (!got) return c.json({ error: 'no such attachment', code: 'not_found' }, 404);
    const inline = got.contentType.startsWith('image/');
    return new Response(got.body, {
      headers: {
        'content-type': got.contentType,
        'content-length': String(got.size),
        'x-content-type-options': 'nosniff',
        'content-disposition': inline ? 'inline' : 'attachment',
        'cache-control': 'private, max-age=86400, immutable',
      },
    });
  });

  routes.get('/v1/widget.js', (c) =>
    c.body(widget, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' }),
  );

  routes.get('/v1/call.js', async (c) => {
    if (!voice) return c.json({ error: 'calls are not enabled on this server', code: 'no_voice' }, 404);
    const b = await callBundle();
    const headers = { etag: b.etag, 'cache-control': 'no-cache', 'access-control-allow-origin': '*' };
    if (c.req.header('if-none-match') === b.etag) return c.body(null, 304, headers);
    return c.body(b.js, 200, { ...headers, 'content-type': 'text/javascript; charset=utf-8' });
  });

  const siteKeys = new Set(Object.keys(deps.sites));
  const appKeys = new Set(Object.keys(deps.apps));
  return {
    routes,
    edges: { webchat: logEdge('webchat', log, () => siteKeys, deps.now), app: logEdge('app', log, () => appKeys, deps.now) },
    log,
    metrics,
    publishNotice: (id, n) => publishNotice(log, id, n, deps.now),
    publishReceipt: (id, state, upTo) => publishReceipt(log, id, state, upTo, deps.now),
    async close() {
      await voice?.stop();
      for (const s of sessions) {
        s.session.closedByPeer();
        s.close();
      }
      sessions.clear();
    },
  };
}
