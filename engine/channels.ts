// The channel edges an edge node runs, from the environment: web chat and in-app IM (always), email
// (SMTP listener always; sending once a relay is configured), SMS (once an SMSC is configured).
// They share one inbound sink (identity graph → conversation actors) and one outbound dispatcher.
import { hostname } from 'node:os';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import * as v from 'valibot';
import type { ActorClient } from '../actors/client.ts';
import { startEmailEdge } from '../edges/email/edge.ts';
import { smtpTls } from '../edges/email/tls.ts';
import { engineSink } from '../edges/inbound.ts';
import type { Edge } from '../edges/message.ts';
import { ensureOutboundStream, startOutbound } from '../edges/outbound.ts';
import { startOutreachService } from '../edges/outreach.ts';
import { startSmsEdge } from '../edges/sms/edge.ts';
import { kvParts } from '../edges/sms/reassembly.ts';
import { kvReceipts } from '../edges/sms/receipts.ts';
import { webchatRoutes } from '../edges/webchat/routes.ts';
import { voiceConfig } from './voice.ts';
import { bridgeNotices } from '../edges/webchat/edge.ts';
import { ratingTaker } from '../edges/webchat/csat.ts';
import type { BlobStore } from '../storage/blobs/store.ts';
import { StoreClient } from '../storage/client.ts';
import { ConfigError } from './config.ts';

const list = (what: string) =>
  v.pipe(
    v.string(),
    v.transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
    v.minLength(1, `must list at least one ${what}`),
  );
const pairs = (what: string) =>
  v.pipe(
    list(what),
    v.check((xs) => xs.every((x) => /^[A-Za-z0-9_-]{1,64}:.+$/.test(x)), `must be key:value pairs separated by commas (${what})`),
    v.transform((xs) => Object.fromEntries(xs.map((x) => [x.slice(0, x.indexOf(':')), x.slice(x.indexOf(':') + 1)]))),
  );
const smtpUrl = v.pipe(v.string(), v.regex(/^smtps?:\/\/[^/:@\s]+(:\d+)?\/?$/, 'must be smtp://host:port or smtps://host:port (credentials go in SMTP_RELAY_USER / SMTP_RELAY_PASSWORD)'));
const smppUrl = v.pipe(v.string(), v.regex(/^smpp:\/\/[^/:@\s]+(:\d+)?\/?$/, 'must be smpp://host:port (credentials go in SMSC_SYSTEM_ID / SMSC_PASSWORD)'));

const bytes = v.pipe(v.string(), v.regex(/^\d+$/, 'must be a whole number of bytes'), v.transform(Number), v.minValue(1024, 'must be at least 1024 bytes'));

const ChannelEnv = v.object({
  EMAIL_ACCOUNTS: v.optional(list('mailbox'), 'support@cc.local'),
  SMTP_RELAY_URL: v.optional(smtpUrl),
  SMTP_RELAY_USER: v.optional(v.string()),
  SMTP_RELAY_PASSWORD: v.optional(v.string()),
  SMTP_MAX_BYTES: v.optional(bytes),
  EMAIL_ATTACHMENT_MAX_BYTES: v.optional(bytes),
  /** PEM files for STARTTLS on the listener; unset: a self-signed certificate made at start-up. */
  SMTP_TLS_CERT: v.optional(v.string()),
  SMTP_TLS_KEY: v.optional(v.string()),
  SMTP_REQUIRE_TLS: v.optional(v.pipe(v.picklist(['0', '1', 'false', 'true'], 'must be 1 or 0'), v.transform((x) => x === '1' || x === 'true'))),
  /** Our name in the SMTP greeting and the self-signed certificate. */
  SMTP_HOSTNAME: v.optional(v.pipe(v.string(), v.regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a host name such as mx.example.com'))),
  SMS_ACCOUNTS: v.optional(list('number')),
  SMSC_URL: v.optional(smppUrl),
  SMSC_SYSTEM_ID: v.optional(v.string()),
  SMSC_PASSWORD: v.optional(v.string()),
  WEBCHAT_SITES: v.optional(pairs('site key:name'), 'demo:Demo site'),
  APP_KEYS: v.optional(pairs('app key:secret')),
  /** Queue per channel, e.g. `email:billing,webchat:support`; others go to `support`. */
  CHANNEL_QUEUES: v.optional(pairs('channel:queue')),
});

/** Parses the channel settings; a bad one is a ConfigError naming the variable (never its value for secrets). */
export function channelConfig(env: Record<string, string | undefined>) {
  const picked: Record<string, string> = {};
  for (const k of Object.keys(ChannelEnv.entries)) if (env[k]) picked[k] = env[k]!;
  const r = v.safeParse(ChannelEnv, picked);
  if (!r.success) {
    const name = String(r.issues[0].path?.[0]?.key ?? 'environment');
    throw new ConfigError(`config: ${name} ${r.issues[0].message}`);
  }
  const e = r.output;
  if (Boolean(e.SMTP_RELAY_USER) !== Boolean(e.SMTP_RELAY_PASSWORD)) throw new ConfigError('config: SMTP_RELAY_USER and SMTP_RELAY_PASSWORD go together');
  if (Boolean(e.SMTP_TLS_CERT) !== Boolean(e.SMTP_TLS_KEY)) throw new ConfigError('config: SMTP_TLS_CERT and SMTP_TLS_KEY go together');
  if (e.SMSC_URL && (!e.SMSC_SYSTEM_ID || !e.SMSC_PASSWORD || !e.SMS_ACCOUNTS)) throw new ConfigError('config: SMSC_URL needs SMSC_SYSTEM_ID, SMSC_PASSWORD and SMS_ACCOUNTS');
  return { ...e, APP_KEYS: e.APP_KEYS ?? {}, CHANNEL_QUEUES: e.CHANNEL_QUEUES ?? {} };
}

export interface Channels {
  /** Sub-apps to mount on the edge's HTTP server, by path. */
  routes: Record<string, Hono>;
  edges: Edge[];
  stop(): Promise<void>;
}

export async function startChannels(deps: {
  env: Record<string, string | undefined>;
  nc: NatsConnection;
  jsm: JetStreamManager;
  actors: ActorClient;
  blobs: BlobStore;
  registry: Registry;
  log: Logger;
  smtpPort: number;
  replicas: number;
}): Promise<Channels> {
  const cfg = channelConfig(deps.env);
  const undo: (() => Promise<void>)[] = [];
  const log = deps.log;
  const inbound = new Counter({ name: 'cc_inbound_messages_total', help: 'Inbound messages by channel and outcome (stored, duplicate)', labelNames: ['channel', 'outcome'], registers: [deps.registry] });
  const outcomes = new Counter({ name: 'cc_outbound_messages_total', help: 'Outbound replies by channel and outcome', labelNames: ['channel', 'outcome'], registers: [deps.registry] });
  const sink = engineSink({
    store: new StoreClient(deps.nc),
    actors: deps.actors,
    routeOf: (m) => ({ queue: cfg.CHANNEL_QUEUES[m.channel] ?? 'support' }),
    log: log.child({ part: 'inbound' }),
    counters: { inbound },
  });
  try {
    await ensureOutboundStream(deps.jsm, deps.replicas);
    const edges: Edge[] = [];

    const webchat = await webchatRoutes({
      nc: deps.nc,
      sink,
      blobs: deps.blobs,
      sites: Object.fromEntries(Object.entries(cfg.WEBCHAT_SITES).map(([k, name]) => [k, { name }])),
      apps: Object.fromEntries(Object.entries(cfg.APP_KEYS).map(([k, secret]) => [k, { secret }])),
      metrics: deps.registry,
      log: log.child({ part: 'webchat' }),
      replicas: deps.replicas,
      // Visitors may call from the widget (protocol v2): the conversation goes to voice on the media node.
      voice: { actors: deps.actors },
      chatLinkSecret: voiceConfig(deps.env).chatLink?.secret,
      // Customers rate a conversation once it is closed: the conversation actor takes it, the history keeps it.
      csat: ratingTaker({ actors: deps.actors, store: new StoreClient(deps.nc) }),
    });
    undo.push(() => webchat.close());
    const notices = bridgeNotices(deps.nc, webchat.log, log.child({ part: 'webchat' }));
    undo.push(async () => notices.stop());
    edges.push(webchat.edges.webchat, webchat.edges.app);

    const smtpHost = cfg.SMTP_HOSTNAME ?? hostname();
    const tls = await smtpTls({ certFile: cfg.SMTP_TLS_CERT, keyFile: cfg.SMTP_TLS_KEY, hostname: smtpHost }).catch((e: Error) => {
      throw new ConfigError(`config: ${e.message}`);
    });
    const email = await startEmailEdge({
      smtpPort: deps.smtpPort,
      host: '0.0.0.0',
      serverName: smtpHost,
      tls,
      requireTLS: cfg.SMTP_REQUIRE_TLS,
      accounts: cfg.EMAIL_ACCOUNTS,
      relay: relayOf(cfg),
      sink,
      blobs: deps.blobs,
      maxMessageBytes: cfg.SMTP_MAX_BYTES,
      attachments: cfg.EMAIL_ATTACHMENT_MAX_BYTES ? { maxBytes: cfg.EMAIL_ATTACHMENT_MAX_BYTES } : undefined,
      metrics: deps.registry,
      log: log.child({ part: 'email' }),
    });
    undo.push(() => email.close());
    // Without a relay, replies wait in the stream (queued) until one is configured: nothing is lost.
    if (cfg.SMTP_RELAY_URL) edges.push(email);
    else log.warn('SMTP_RELAY_URL is not set: email replies stay queued until a relay is configured');

    if (cfg.SMSC_URL) {
      const u = new URL(cfg.SMSC_URL);
      const sms = await startSmsEdge({
        smsc: { host: u.hostname, port: Number(u.port || 2775), systemId: cfg.SMSC_SYSTEM_ID!, password: cfg.SMSC_PASSWORD! },
        accounts: cfg.SMS_ACCOUNTS!,
        sink,
        blobs: deps.blobs,
        // Receipts find their message after a restart, or on another edge node.
        receipts: await kvReceipts(deps.nc, { replicas: deps.replicas }),
        parts: await kvParts(deps.nc, { replicas: deps.replicas }),
        metrics: deps.registry,
        log: log.child({ part: 'sms' }),
      });
      undo.push(() => sms.close());
      edges.push(sms);
    }

    const outbound = await startOutbound(edges, { jsm: deps.jsm, sink, log: log.child({ part: 'outbound' }), onResult: (channel, outcome) => outcomes.inc({ channel, outcome }) });
    undo.push(() => outbound.stop());
    // Conversations we open (an agent's outreach, campaigns), from our first account on each channel.
    const outreach = await startOutreachService({
      nc: deps.nc,
      store: new StoreClient(deps.nc),
      actors: deps.actors,
      accounts: { email: cfg.EMAIL_ACCOUNTS[0], sms: cfg.SMSC_URL ? cfg.SMS_ACCOUNTS?.[0] : undefined, webchat: Object.keys(cfg.WEBCHAT_SITES)[0], app: Object.keys(cfg.APP_KEYS)[0] },
      log: log.child({ part: 'outreach' }),
      replicas: deps.replicas,
    });
    undo.push(() => outreach.stop());
    log.info({ channels: edges.map((e) => e.channel), smtpPort: email.port, smtpTls: tls.source, smtpRequireTls: cfg.SMTP_REQUIRE_TLS ?? false }, 'channel edges started');
    return {
      routes: { '/webchat': webchat.routes },
      edges,
      async stop() {
        while (undo.length) await undo.pop()!().catch((e) => log.warn({ err: e }, 'channel stop step failed'));
      },
    };
  } catch (e) {
    while (undo.length) await undo.pop()!().catch(() => undefined);
    throw e;
  }
}

function relayOf(cfg: ReturnType<typeof channelConfig>) {
  if (!cfg.SMTP_RELAY_URL) return { host: '127.0.0.1', port: 25 };
  const u = new URL(cfg.SMTP_RELAY_URL);
  const secure = u.protocol === 'smtps:';
  return {
    host: u.hostname,
    port: Number(u.port || (secure ? 465 : 587)),
    secure,
    auth: cfg.SMTP_RELAY_USER ? { user: cfg.SMTP_RELAY_USER, pass: cfg.SMTP_RELAY_PASSWORD! } : undefined,
  };
}
