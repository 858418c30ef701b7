// Raw NATS echo responder in its own process: the baseline for request/reply.
import { connectNats } from '../platform/nats.ts';

const nc = await connectNats(process.env.NATS_URL!.split(','));
nc.subscribe('bench.echo', { callback: (_e, m) => void m.respond(m.data) });
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', async () => {
  await nc.close();
  process.exit(0);
});
