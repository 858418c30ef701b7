// Starts the roles this process runs (DESIGN.md "Processes and roles") and stops them in reverse order.
import { connectNats } from '../platform/nats.ts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { join } from 'node:path';
import { ActorNode } from '../actors/node.ts';
import { openSurreal, type SurrealHandle } from '../storage/surreal.ts';
import { openBlobStore, type BlobService } from '../storage/blobs/open.ts';
import { FieldCipher } from '../storage/crypto.ts';
import { loadKeyRing } from '../storage/keys.ts';
import { startRotation } from '../storage/rotation.ts';
import { SEALED_FIELDS } from '../storage/schema.ts';
import { startStoreService } from '../storage/service.ts';
import { openStore } from '../storage/store.ts';
import { startConversationSync } from '../storage/events.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { ActorClient } from '../actors/client.ts';
import { channelConfig, startChannels } from './channels.ts';
import { workspace } from '../web/server/routes.ts';
import { startMediaNode, startVoiceEdge, voiceConfig } from './voice.ts';
import { StoreClient } from '../storage/client.ts';
import { runtimeName, serve, type HttpServer } from '../platform/serve.ts';
import { ConfigError, type Config } from './config.ts';
import { createApp, type ComponentState } from './http.ts';
import { engineKinds } from './kinds.ts';
import { freePort, startNatsServer, type RunningNatsServer } from './nats-server.ts';

export interface Engine {
  http: HttpServer;
  natsUrl: string[];
  actors?: ActorNode;
  blobs?: BlobService;
  stop(): Promise<void>;
}

/** Secrets and storage settings are read from `env` here, where they are used, and never kept in Config. */
export async function startEngine(config: Config, log: Logger, env: Record<string, string | undefined> = {}): Promise<Engine> {
  const undo: (() => Promise<void>)[] = [];
  const stop = async () => {
    while (undo.length) {
      const step = undo.pop()!;
      await step().catch((e) => log.error({ err: e }, 'stop step failed'));
    }
  };
  try {
    // Checked before anything starts: a bad key stops start-up with one line and nothing to clean up.
    const ring = config.roles.includes('store')
      ? asConfigError(() => loadKeyRing(env, config.dataDir, { info: (o, m) => log.info(o, m), warn: (o, m) => log.warn(o, m) }))
      : undefined;
    if (config.roles.includes('edge')) channelConfig(env);
    if (config.roles.includes('edge') || config.roles.includes('media')) voiceConfig(env);
    let natsServer: RunningNatsServer | undefined;
    let natsUrl = config.natsUrl;
    if (!natsUrl) {
      const port = (await portFree(4222)) ? 4222 : await freePort();
      natsServer = await startNatsServer({ storeDir: join(config.dataDir, 'nats'), port, serverName: `cc-${config.nodeId}` });
      undo.push(() => natsServer!.stop());
      natsUrl = [natsServer.url];
      log.info({ url: natsServer.url, pid: natsServer.pid }, 'started embedded nats-server');
    }
    const nc: NatsConnection = await connectNats(natsUrl, config.nodeId);
    const controlNc: NatsConnection = await connectNats(natsUrl, `${config.nodeId}-control`);
    undo.push(async () => {
      await nc.drain();
      await controlNc.drain();
    });

    const registry = new Registry();
    registry.setDefaultLabels({ node: config.nodeId, region: config.region });
    collectDefaultMetrics({ register: registry });

    let surreal: SurrealHandle | undefined;
    let cipher: FieldCipher | undefined;
    if (config.roles.includes('store')) {
      cipher = await FieldCipher.create(ring!);
      surreal = await openSurreal(config.surrealUrl);
      undo.push(() => surreal!.close());
      log.info({ url: surreal.url, activeKey: ring!.activeId }, 'storage opened');
      const storeLog = log.child({ part: 'store' });
      const store = await openStore({ db: surreal.db, cipher, log: storeLog });
      const service = await startStoreService(nc, store, { log: storeLog });
      undo.push(() => service.stop());
      // Conversations that close (or reopen) in their actors are marked so in the graph, durably.
      const sync = await startConversationSync({ jsm: await jetstreamManager(nc), store, log: storeLog, replicas: config.jsReplicas });
      undo.push(() => sync.stop());
      // Values sealed with an older key are re-encrypted in the background, resuming where it stopped.
      const rotation = startRotation(surreal.db, cipher, SEALED_FIELDS, { log: storeLog });
      undo.push(async () => void (await rotation.stop()));
      log.info('storage service answering on cc.store.v1.*');
    }

    // Recordings, attachments and email bodies: the store keeps them, edges put what channels send.
    let blobs: BlobService | undefined;
    if (config.roles.includes('store') || config.roles.includes('edge') || config.roles.includes('media')) {
      blobs = await openBlobStore(config.blobUrl, env, { log: log.child({ part: 'blobs' }) }).catch((e: Error) => {
        throw /^config: /.test(e.message) ? new ConfigError(e.message) : e;
      });
      log.info({ location: blobs.location }, 'object store opened');
    }

    const actors = await ActorNode.start({
      nc,
      controlNc,
      nodeId: config.nodeId,
      kinds: engineKinds,
      host: config.roles.includes('core'),
      shards: config.actorShards,
      idleMs: config.actorIdleMs,
      leaseTtlMs: config.leaseTtlMs,
      replicas: config.jsReplicas,
      registry,
      log: log.child({ part: 'actors' }),
    });
    undo.push(() => actors.stop());

    // Media: mediasoup workers answering cc.media.v1.* for voice conversations.
    let media: Awaited<ReturnType<typeof startMediaNode>> | undefined;
    if (config.roles.includes('media')) {
      media = await startMediaNode(nc, env, log.child({ part: 'media' }), { node: config.nodeId, replicas: config.jsReplicas });
      undo.push(() => media!.stop());
      log.info({ media: media.node }, 'media service: places calls on cc.media.v1.router.open, holds them on cc.media.v1.node.<node>.*');
    }

    const components = async (): Promise<Record<string, ComponentState>> => {
      const out: Record<string, ComponentState> = {
        nats: nc.isClosed() ? { state: 'down' } : { state: 'ok', server: nc.getServer(), embedded: Boolean(natsServer) },
      };
      if (config.roles.includes('core')) out.actors = actors.status();
      if (surreal) out.storage = { ...(await surreal.health()), url: surreal.url };
      if (blobs) out.objects = { ...(await blobs.health()), location: blobs.location };
      if (media) {
        // A dead worker is replaced; with none live, calls wait or fail.
        const pool = media.pool.stats();
        out.media = { state: pool.live > 0 ? 'ok' : 'down', workers: pool.live, of: pool.size, calls: media.calls().length };
      }
      return out;
    };

    // Every node answers /healthz and /metrics (a core node's actor metrics are scraped there); edge
    // nodes also serve the channels and the agent workspace.
    const app = createApp({ registry, node: { id: config.nodeId, region: config.region, roles: config.roles, runtime: runtimeName() }, components });
    if (config.roles.includes('edge')) {
      const channels = await startChannels({
        env,
        nc,
        jsm: await jetstreamManager(nc),
        actors: new ActorClient(nc, config.actorShards),
        blobs: blobs!.store,
        registry,
        log: log.child({ part: 'channels' }),
        smtpPort: config.smtpPort,
        replicas: config.jsReplicas,
      });
      undo.push(() => channels.stop());
      const sip = await startVoiceEdge({ nc, actors: new ActorClient(nc, config.actorShards), env, port: config.sipPort, log: log.child({ part: 'sip' }), blobs: blobs?.store });
      undo.push(() => sip.stop());
      for (const [path, routes] of Object.entries(channels.routes)) app.route(path, routes);
      // The agent workspace at `/` (its own routes never shadow /healthz, /metrics or /webchat).
      const web = await workspace({
        nc,
        actors: new ActorClient(nc, config.actorShards),
        store: new StoreClient(nc),
        log: log.child({ part: 'web' }),
        registry,
        dataDir: config.dataDir,
        env,
        blobs: blobs!.store,
        replicas: config.jsReplicas,
      });
      undo.push(() => web.stop());
      app.route('/', web.app);
    }
    const http: HttpServer = await serve(app.fetch, config.port);
    undo.push(() => http.close());
    log.info({ port: http.port }, 'http listening');
    return { http, natsUrl, actors, blobs, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A bad secret in the environment stops start-up with one line, like any other bad setting. */
function asConfigError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new ConfigError(`config: ${(e as Error).message}`);
  }
}

async function portFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((ok) => {
    const s = createServer();
    s.once('error', () => ok(false));
    s.listen(port, '127.0.0.1', () => s.close(() => ok(true)));
  });
}
