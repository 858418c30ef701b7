// A core engine node in its own OS process, hosting the test counter kind, for the cluster tests.
// Writes every activation change to ACTIVATION_LOG so the test can check that no actor was live twice.
import { appendFileSync } from 'node:fs';
import { connectNats } from '../../platform/nats.ts';
import pino from 'pino';
import { ActorNode } from '../../actors/node.ts';
import { counterKind } from './counter.ts';

const env = process.env;
const nodeId = env.NODE_ID!;
process.on('unhandledRejection', (e) => process.stderr.write(`${nodeId}: unhandled rejection: ${(e as Error)?.stack ?? e}\n`));
const logFile = env.ACTIVATION_LOG!;
const nc = await connectNats(env.NATS_URL!.split(','), nodeId);
const controlNc = await connectNats(env.NATS_URL!.split(','), `${nodeId}-control`);
const node = await ActorNode.start({
  nc,
  controlNc,
  nodeId,
  kinds: [counterKind],
  shards: Number(env.SHARDS ?? 16),
  leaseTtlMs: Number(env.LEASE_TTL_MS ?? 3000),
  replicas: Number(env.REPLICAS ?? 1),
  idleMs: Number(env.IDLE_MS ?? 60_000),
  inspect: false,
  log: pino({ level: env.LOG_LEVEL ?? 'error', base: { node: nodeId } }, pino.destination(2)),
  onActivation: (ev, kind, id) => appendFileSync(logFile, `${Date.now()} ${nodeId} ${ev} ${kind}/${id}\n`),
});
setInterval(() => {
  process.stdout.write(`${JSON.stringify({ status: node.status(), shards: node.ownedShards() })}\n`);
}, 500);
process.on('SIGTERM', async () => {
  await node.stop();
  await nc.drain();
  process.exit(0);
});
