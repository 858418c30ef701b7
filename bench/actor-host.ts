// An actor node in its own process for the benches; answers `bench.host.heap` with its heap after a full GC.
import { connectNats } from '../platform/nats.ts';
import { ActorNode } from '../actors/node.ts';
import { counterKind } from '../tests/support/counter.ts';

const env = process.env;
const nc = await connectNats(env.NATS_URL!.split(','));
const controlNc = await connectNats(env.NATS_URL!.split(','));
const node = await ActorNode.start({
  nc,
  controlNc,
  nodeId: env.NODE_ID ?? 'bench-host',
  kinds: [counterKind],
  shards: Number(env.SHARDS ?? 32),
  idleMs: Number(env.IDLE_MS ?? 600_000),
  inspect: env.INSPECT !== '0',
});
const gc = (globalThis as { gc?: () => void }).gc;
const processed = async () => (await node.metrics.messages.get()).values.filter((v) => v.labels.via === 'mail').reduce((a, v) => a + v.value, 0);
nc.subscribe('bench.host.heap', {
  callback: (_e, m) => {
    gc?.();
    gc?.();
    const heapUsed = process.memoryUsage().heapUsed;
    void processed().then((n) => m.respond(JSON.stringify({ heapUsed, processed: n, ...node.status() })));
  },
});
nc.subscribe('bench.host.status', { callback: (_e, m) => void processed().then((n) => m.respond(JSON.stringify({ processed: n, ...node.status() }))) });
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', async () => {
  await node.stop();
  await nc.close();
  await controlNc.close();
  process.exit(0);
});
