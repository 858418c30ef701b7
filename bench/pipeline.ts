// The server work of one processed tell with no runtime around it, in its own process as the actor host
// is: one consumer per shard of a work-queue stream; per message a KV write of the payload and an ack.
// The actors bench compares tell_per_s with it, so the ratio shows the runtime's own cost. With
// MODE=ack there is no KV write: what consuming durable mail costs before any state is stored.
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats } from '../platform/nats.ts';

const shards = Number(process.env.SHARDS ?? 32);
const nc = await connectNats(process.env.NATS_URL!.split(','));
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: 'BENCH_PIPE', subjects: ['bench.pipe.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
// Like the runtime's state bucket: one revision kept per key.
const kv = await new Kvm(nc).create('bench_pipe_state', { history: 1 });
const store = process.env.MODE !== 'ack';
let done = 0;
for (let s = 0; s < shards; s++) {
  await jsm.consumers.add('BENCH_PIPE', { durable_name: `pipe${s}`, filter_subject: `bench.pipe.${s}`, ack_policy: AckPolicy.Explicit, max_ack_pending: 4096 });
  const messages = await (await jetstream(nc).consumers.get('BENCH_PIPE', `pipe${s}`)).consume({ max_messages: 256 });
  void (async () => {
    for await (const m of messages) {
      if (!store) {
        m.ack();
        done++;
        continue;
      }
      void kv.put(`k.${m.headers?.get('Cc-Actor') ?? 'none'}`, m.data).then(() => {
        m.ack();
        done++;
      });
    }
  })();
}
nc.subscribe('bench.pipe.status', { callback: (_e, m) => void m.respond(JSON.stringify({ processed: done })) });
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', async () => {
  await nc.close();
  process.exit(0);
});
