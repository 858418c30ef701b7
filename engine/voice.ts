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
import { engineVoice } from '../edges/sip/voice.ts';
import { parseMenu, type IvrMenu } from '../machines/ivr.ts';
import { startMediaService } from '../media/service.ts';
import { StoreClient } from '../storage/client.ts';
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
  return {
    promptsDir: e.PROMPTS_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cc', 'prompts'),
    listenIp: e.MEDIA_LISTEN_IP ?? '127.0.0.1',
    announcedIp: e.MEDIA_ANNOUNCED_IP,
    workers: e.MEDIA_WORKERS,
    sipHost: e.SIP_HOST ?? '0.0.0.0',
    sipPublicIp: e.SIP_PUBLIC_IP ?? e.MEDIA_ANNOUNCED_IP ?? '127.0.0.1',
    menu,
  };
}

export async function startMediaNode(nc: NatsConnection, env: Record<string, string | undefined>, log: Logger) {
  const cfg = voiceConfig(env);
  return startMediaService(nc, { promptsDir: cfg.promptsDir, listenIp: cfg.listenIp, announcedIp: cfg.announcedIp, pool: cfg.workers ? { size: cfg.workers } : undefined, log });
}

export async function startVoiceEdge(deps: { nc: NatsConnection; actors: ActorClient; env: Record<string, string | undefined>; port: number; log: Logger }) {
  const cfg = voiceConfig(deps.env);
  return startSipEdge({
    port: deps.port,
    host: cfg.sipHost,
    publicIp: cfg.sipPublicIp,
    nc: deps.nc,
    voice: engineVoice({ store: new StoreClient(deps.nc), actors: deps.actors }),
    menu: cfg.menu,
    holdPrompt: 'music.hold',
    log: deps.log,
  });
}
