// The server work of one processed tell with no runtime around it, in its own process as the actor host
// is: one consumer per shard of a work-queue stream; per message a KV write of the payload and an ack.
// The actors bench compares tell_per_s with it, so the ratio shows the runtime's own cost. With
// MODE=ack there is no KV write: what consuming durable mail costs before any state is stored. With
// MODE=group the records of every message delivered since the last write go out together as one message
// of a record log, then each mail is acknowledged: the ceiling of a group-commit design, where the
// server stores one record write per batch instead of one per message.
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { JsMsg } from '@nats-io/jetstream';
import { HDR_ACTOR } from '../actors/address.ts';
import { connectNats } from '../platform/nats.ts';

const shards = Number(process.env.SHARDS ?? 32);
const mode = process.env.MODE ?? 'kv';
const nc = await connectNats(process.env.NATS_URL!.split(','));
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
await jsm.streams.add({ name: 'BENCH_PIPE', subjects: ['bench.pipe.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
// Like the runtime's state bucket: one revision kept per key.
const kv = await new Kvm(nc).create('bench_pipe_state', { history: 1 });
await jsm.streams.add({ name: 'BENCH_PIPE_LOG', subjects: ['bench.pipelog'], storage: StorageType.File });
let done = 0;
/** The actor a mail is for, as a tell names it. */
const actorOf = (m: JsMsg) => m.headers?.get(HDR_ACTOR) ?? 'none';

// Group commit: one log write in flight; what arrives meanwhile waits for the next one.
let waiting: JsMsg[] = [];
let writing = false;
async function commit(): Promise<void> {
  while (waiting.length) {
    const batch = waiting;
    waiting = [];
    const records = batch.map((m) => [actorOf(m), m.seq, m.string()]);
    await js.publish('bench.pipelog', JSON.stringify(records));
    for (const m of batch) m.ack();
    done += batch.length;
  }
  writing = false;
}

for (let s = 0; s < shards; s++) {
  await jsm.consumers.add('BENCH_PIPE', { durable_name: `pipe${s}`, filter_subject: `bench.pipe.${s}`, ack_policy: AckPolicy.Explicit, max_ack_pending: 4096 });
  const messages = await (await js.consumers.get('BENCH_PIPE', `pipe${s}`)).consume({ max_messages: 256 });
  void (async () => {
    for await (const m of messages) {
      if (mode === 'ack') {
        m.ack();
        done++;
      } else if (mode === 'group') {
        waiting.push(m);
        // After this turn's deliveries, so that they share the write.
        if (!writing) {
          writing = true;
          setTimeout(() => void commit(), 0);
        }
      } else {
        void kv.put(`k.${actorOf(m)}`, m.data).then(() => {
          m.ack();
          done++;
        });
      }
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
