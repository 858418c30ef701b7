// A whole engine (ROLE=all unless told otherwise) in the test process on its own nats-server, free
// ports and in-memory SurrealDB, plus what tests do with it: an agent who answers, a chat visitor.
import assert from 'node:assert/strict';
import pino from 'pino';
import WebSocket from 'ws';
import { ActorClient } from '../../actors/client.ts';
import { loadConfig } from '../../engine/config.ts';
import { freePort } from '../../engine/nats-server.ts';
import { startEngine, type Engine } from '../../engine/start.ts';
import type { ConversationContext } from '../../machines/conversation.ts';
import { StoreClient } from '../../storage/client.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from './nats.ts';
import { startSmsc, startSmtpRelay, type TestRelay, type TestSmsc } from './peers.ts';

export interface TestEngine {
  nats: TestNats;
  engine: Engine;
  env: Record<string, string>;
  httpPort: number;
  smtpPort: number;
  actors: ActorClient;
  store: StoreClient;
  stop(): Promise<void>;
}

export async function startTestEngine(name: string, extra: Record<string, string> = {}): Promise<TestEngine> {
  const nats = await startTestNats();
  const httpPort = await freePort();
  const smtpPort = await freePort();
  const env = {
    NATS_URL: nats.urls[0],
    DATA_DIR: tempDir(name),
    SURREAL_URL: 'mem://',
    PORT: String(httpPort),
    SMTP_PORT: String(smtpPort),
    SIP_PORT: String(await freePort()),
    MEDIA_WORKERS: '1',
    ACTOR_SHARDS: '4',
    ...extra,
  };
  const engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
  const nc = await nats.connect();
  return {
    nats,
    engine,
    env,
    httpPort,
    smtpPort,
    actors: new ActorClient(nc, Number(env.ACTOR_SHARDS)),
    store: new StoreClient(nc),
    async stop() {
      await engine.stop();
      await nats.stop();
    },
  };
}

export const conversationOf = (actors: ActorClient, id: string) => actors.ask<{ value: string; context: ConversationContext }>(`conversation/${id}`, { type: 'get' });

/** An agent on the `support` queue who speaks English and Chinese. */
export async function agentOnDuty(actors: ActorClient, agent: string): Promise<void> {
  await actors.tell(`agent/${agent}`, { type: 'profile.set', skills: { en: 1, zh: 1 }, queues: ['support'] });
  await actors.tell(`agent/${agent}`, { type: 'login' });
}

/** The agent accepts the offer of this conversation once it is made. */
export async function answer(actors: ActorClient, agent: string, conversationId: string): Promise<void> {
  await waitFor(`offer of ${conversationId} to ${agent}`, async () => (await conversationOf(actors, conversationId)).value === 'offered', 20_000, 100);
  const a = await actors.ask<{ offers?: Record<string, { task: { id: string } }> }>(`agent/${agent}`, { type: 'get' });
  const rid = Object.keys(a.offers ?? {}).find((k) => a.offers![k].task.id === conversationId);
  assert.ok(rid, `${agent} holds an offer for ${conversationId}`);
  await actors.tell(`agent/${agent}`, { type: 'offer.accept', reservationId: rid });
  await waitFor('active', async () => (await conversationOf(actors, conversationId)).value === 'active', 10_000, 100);
}

/** A web chat (or app) socket that has said hello; frames are collected as they come. */
export async function chatSocket(url: string, hello: Record<string, unknown> = {}) {
  const ws = new WebSocket(url);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d))));
  await new Promise((ok, fail) => {
    ws.once('open', ok);
    ws.once('error', fail);
  });
  ws.send(JSON.stringify({ type: 'hello', v: 1, ...hello }));
  const welcome = await waitFor('welcome', () => frames.find((f) => f.type === 'welcome'));
  return { ws, frames, welcome };
}

export interface EngineWithPeers {
  t: TestEngine;
  relay: TestRelay;
  smsc: TestSmsc;
  stop(): Promise<void>;
}

/** An engine whose mail goes to a loopback SMTP relay and whose SMS go to a loopback SMSC (bound before it returns). */
export async function startEngineWithPeers(name: string, extra: Record<string, string> = {}): Promise<EngineWithPeers> {
  const relay = await startSmtpRelay();
  const smsc = await startSmsc();
  const t = await startTestEngine(name, {
    EMAIL_ACCOUNTS: 'support@shop.test',
    SMTP_RELAY_URL: `smtp://127.0.0.1:${relay.port}`,
    SMS_ACCOUNTS: '10690001',
    SMSC_URL: `smpp://127.0.0.1:${smsc.port}`,
    SMSC_SYSTEM_ID: 'cc',
    SMSC_PASSWORD: crypto.randomUUID(),
    ...extra,
  });
  await waitFor('the SMSC bound', () => smsc.bound, 20_000);
  return {
    t,
    relay,
    smsc,
    async stop() {
      await t.stop();
      await relay.close();
      await smsc.close();
    },
  };
}
