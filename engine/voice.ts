// Voice in the engine: the media service on media nodes (mediasoup workers answering cc.media.v1.*),
// the SIP trunk edge with its IVR on edge nodes. Settings come from the environment.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import * as v from 'valibot';
import type { ActorClient } from '../actors/client.ts';
import { startSipEdge } from '../edges/sip/edge.ts';
import type { Trunk } from '../edges/sip/outbound.ts';
import { engineVoice } from '../edges/sip/voice.ts';
import { callRecordings, RECORD_MODES } from '../edges/sip/recording.ts';
import { pocketsphinx } from '../media/speech.ts';
import type { BlobStore } from '../storage/blobs/store.ts';
import { engineFailover } from '../edges/sip/failover.ts';
import { parseMenu, type IvrMenu } from '../machines/ivr.ts';
import { startMediaService } from '../media/service.ts';
import { StoreClient } from '../storage/client.ts';
import { channelConfig } from './channels.ts';
import { ConfigError } from './config.ts';

/** The menu callers hear unless IVR_MENU names another: sales or support, in English, prompts from scripts/setup-voice.sh. */
export const DEFAULT_MENU = {
  start: 'main',
  language: 'en',
  nodes: {
    main: {
      prompt: 'welcome.en',
      timeoutMs: 15_000,
      retries: 1,
      invalidPrompt: 'invalid.en',
      choices: [
        { dtmf: '1', exit: { queue: 'support', attributes: { intent: 'sales', menu: 'main' } } },
        { dtmf: '2', exit: { queue: 'support', attributes: { intent: 'support', menu: 'main' } } },
      ],
    },
  },
  // Offered when nobody in the queue can take calls and the edge can send SMS (channel failover).
  failover: { prompts: { en: 'failover.offer.en', zh: 'failover.offer.zh' }, dtmf: '1', channel: 'sms', timeoutMs: 10_000, retries: 0 },
};

const ip = v.pipe(v.string(), v.regex(/^[0-9.]+$|^[0-9a-fA-F:]+$/, 'must be an IP address'));
const VoiceEnv = v.object({
  PROMPTS_DIR: v.optional(v.string()),
  MEDIA_LISTEN_IP: v.optional(ip),
  MEDIA_ANNOUNCED_IP: v.optional(ip),
  MEDIA_WORKERS: v.optional(v.pipe(v.string(), v.regex(/^[1-9]\d*$/, 'must be a whole number of workers'), v.transform(Number))),
  SIP_HOST: v.optional(ip),
  SIP_PUBLIC_IP: v.optional(ip),
  IVR_MENU: v.optional(v.string()),
  /** Call recording: off, on, or announce (a "this call may be recorded" prompt before the menu). */
  RECORD_CALLS: v.optional(v.picklist(RECORD_MODES, 'must be off, on or announce')),
  /** Channel failover: the page with the web chat widget that chat links open, and their signing secret. */
  CHAT_LINK_URL: v.optional(v.pipe(v.string(), v.url('must be the URL of the page with the web chat widget'), v.regex(/^https?:/, 'must be an http(s) URL'))),
  CHAT_LINK_SECRET: v.optional(v.pipe(v.string(), v.minLength(32, 'must be at least 32 characters'))),
  SIP_TRUNK: v.optional(v.pipe(v.string(), v.regex(/^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/, 'must be host:port of the SIP trunk (port 5060 if left out)'))),
  SIP_TRUNK_USER: v.optional(v.pipe(v.string(), v.regex(/^[^\s"]{1,128}$/, 'must be a user name without spaces or quotes'))),
  SIP_TRUNK_PASSWORD: v.optional(v.string()),
  SIP_FROM_NUMBER: v.optional(v.pipe(v.string(), v.regex(/^\+?[A-Za-z0-9*#._-]{1,64}$/, 'must be a phone number or SIP user part'))),
});

export function voiceConfig(env: Record<string, string | undefined>) {
  const picked: Record<string, string> = {};
  for (const k of Object.keys(VoiceEnv.entries)) if (env[k]) picked[k] = env[k]!;
  const r = v.safeParse(VoiceEnv, picked);
  if (!r.success) throw new ConfigError(`config: ${String(r.issues[0].path?.[0]?.key ?? 'environment')} ${r.issues[0].message}`);
  const e = r.output;
  let menu: IvrMenu;
  try {
    menu = parseMenu(e.IVR_MENU ? JSON.parse(readFileSync(e.IVR_MENU, 'utf8')) : DEFAULT_MENU);
  } catch (err) {
    throw new ConfigError(`config: IVR_MENU ${(err as Error).message}`);
  }
  if (Boolean(e.SIP_TRUNK_USER) !== (e.SIP_TRUNK_PASSWORD !== undefined)) throw new ConfigError('config: SIP_TRUNK_USER and SIP_TRUNK_PASSWORD go together (both or neither)');
  let trunk: Trunk | undefined;
  if (e.SIP_TRUNK) {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(e.SIP_TRUNK)!;
    const port = Number(m[2] ?? 5060);
    if (port < 1 || port > 65535) throw new ConfigError('config: SIP_TRUNK port must be from 1 to 65535');
    const fromNumber = e.SIP_FROM_NUMBER ?? e.SIP_TRUNK_USER;
    if (!fromNumber) throw new ConfigError('config: SIP_FROM_NUMBER is required with SIP_TRUNK (the caller id of outbound calls)');
    trunk = { host: m[1], port, user: e.SIP_TRUNK_USER, password: e.SIP_TRUNK_PASSWORD, fromNumber };
  }
  return {
    promptsDir: e.PROMPTS_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cc', 'prompts'),
    listenIp: e.MEDIA_LISTEN_IP ?? '127.0.0.1',
    announcedIp: e.MEDIA_ANNOUNCED_IP,
    workers: e.MEDIA_WORKERS,
    sipHost: e.SIP_HOST ?? '0.0.0.0',
    sipPublicIp: e.SIP_PUBLIC_IP ?? e.MEDIA_ANNOUNCED_IP ?? '127.0.0.1',
    menu,
    recordCalls: e.RECORD_CALLS ?? 'off',
    trunk,
    chatLink: chatLinkOf(e.CHAT_LINK_URL, e.CHAT_LINK_SECRET),
  };
}

/** `node`: the engine's node id, which names this media node's subjects (one token: other characters become _). */
export async function startMediaNode(nc: NatsConnection, env: Record<string, string | undefined>, log: Logger, o: { node?: string; replicas?: number } = {}) {
  const cfg = voiceConfig(env);
  const nodeId = o.node?.replace(/[^\w-]/g, '_').slice(0, 64) || undefined;
  return startMediaService(nc, { promptsDir: cfg.promptsDir, listenIp: cfg.listenIp, announcedIp: cfg.announcedIp, pool: cfg.workers ? { size: cfg.workers } : undefined, log, nodeId, replicas: o.replicas });
}

function chatLinkOf(url: string | undefined, secret: string | undefined): { url: string; secret: string } | undefined {
  if (Boolean(url) !== Boolean(secret)) throw new ConfigError('config: CHAT_LINK_URL and CHAT_LINK_SECRET go together (both or neither)');
  return url && secret ? { url, secret } : undefined;
}

export async function startVoiceEdge(deps: { nc: NatsConnection; actors: ActorClient; env: Record<string, string | undefined>; port: number; log: Logger; blobs?: BlobStore }) {
  const cfg = voiceConfig(deps.env);
  // Recordings go to the object store; transcripts come from pocketsphinx when it is installed.
  const stt = cfg.recordCalls !== 'off' ? await pocketsphinx() : undefined;
  if (stt && 'unavailable' in stt) deps.log.warn({ reason: stt.unavailable }, 'call transcripts are off');
  const recordings =
    deps.blobs && cfg.recordCalls !== 'off'
      ? callRecordings({ mode: cfg.recordCalls, blobs: deps.blobs, store: new StoreClient(deps.nc), stt: stt && !('unavailable' in stt) ? stt : undefined, log: deps.log })
      : undefined;
  // Callers nobody can answer are offered SMS + web chat when this edge can send SMS and make chat links.
  const smsAccount = deps.env.SMSC_URL ? channelConfig(deps.env).SMS_ACCOUNTS?.[0] : undefined;
  const store = new StoreClient(deps.nc);
  const failover =
    cfg.chatLink && smsAccount
      ? engineFailover({ store, actors: deps.actors, smsAccount, queue: channelConfig(deps.env).CHANNEL_QUEUES.sms ?? 'support', link: cfg.chatLink })
      : undefined;
  return startSipEdge({
    port: deps.port,
    host: cfg.sipHost,
    publicIp: cfg.sipPublicIp,
    nc: deps.nc,
    voice: engineVoice({ store: new StoreClient(deps.nc), actors: deps.actors }),
    menu: cfg.menu,
    holdPrompt: 'music.hold',
    trunk: cfg.trunk,
    failover,
    recordings,
    log: deps.log,
  });
}
