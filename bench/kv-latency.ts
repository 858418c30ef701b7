// The JetStream write tail under the runtime: sequential compare-and-set updates of one KV entry, on a
// nats-server started as the tests start it, for a few value sizes and both storages. Every actor step
// waits for one such write; the routing bench's offer tail follows this one (README, routing bench).
import { StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { startTestNats } from '../tests/support/nats.ts';
import { envCount, percentile, report } from './report.ts';

export async function benchKvLatency(): Promise<void> {
  const seconds = envCount('KV_LATENCY_SECONDS', 5);
  const nats = await startTestNats();
  try {
    const nc = await nats.connect();
    const kvm = new Kvm(nc);
    for (const [storage, bytes] of [
      ['file', 500],
      ['file', 10_000],
      ['memory', 10_000],
    ] as const) {
      const kv = await kvm.create(`latency_${storage}_${bytes}`, { history: 1, storage: storage === 'file' ? StorageType.File : StorageType.Memory });
      const data = new TextEncoder().encode('x'.repeat(bytes));
      let rev = await kv.put('k', data);
      const ms: number[] = [];
      const until = performance.now() + seconds * 1000;
      while (performance.now() < until) {
        const t = performance.now();
        rev = await kv.update('k', data, rev);
        ms.push(performance.now() - t);
      }
      const r = (x: number) => Math.round(x * 100) / 100;
      report({
        name: 'kv_update_p99_ms',
        value: percentile(ms, 99),
        unit: 'ms',
        storage,
        value_bytes: bytes,
        p50_ms: r(percentile(ms, 50)),
        p999_ms: r(percentile(ms, 99.9)),
        max_ms: r(Math.max(...ms)),
        over_5_ms: ms.filter((x) => x > 5).length,
        writes: ms.length,
      });
    }
    await nc.close();
  } finally {
    await nats.stop();
  }
}
