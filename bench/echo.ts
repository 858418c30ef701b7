// Raw NATS echo responder in its own process: the baseline for request/reply.
import { connect } from '@nats-io/transport-node';

const nc = await connect({ servers: process.env.NATS_URL!.split(',') });
nc.subscribe('bench.echo', { callback: (_e, m) => void m.respond(m.data) });
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', async () => {
  await nc.close();
  process.exit(0);
});
