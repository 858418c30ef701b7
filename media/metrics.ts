// Prometheus view of a media worker pool, read from the pool's own counters at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WorkerPool } from './workers.ts';

export function mediaMetrics(pool: WorkerPool, registry: Registry): void {
  new Gauge({
    name: 'cc_media_workers_live',
    help: 'mediasoup workers running in this media node',
    registers: [registry],
    collect() {
      this.set(pool.stats().live);
    },
  });
  new Gauge({
    name: 'cc_media_calls',
    help: 'Voice conversations with a router, per worker slot (a replacement worker takes its slot)',
    labelNames: ['slot'],
    registers: [registry],
    collect() {
      for (const w of pool.stats().workers) this.set({ slot: String(w.slot) }, w.calls);
    },
  });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // The pool owns the count; the metric mirrors it (it never goes down).
        this.reset();
        this.inc(read());
      },
    });
  counter('cc_media_routers_created_total', 'Routers created (one per voice conversation)', () => pool.stats().routersCreated);
  counter('cc_media_calls_failed_total', 'Calls lost because their media worker died', () => pool.stats().callsFailed);
  counter('cc_media_worker_deaths_total', 'mediasoup workers that died', () => pool.stats().workerDeaths);
  counter('cc_media_workers_replaced_total', 'Replacement workers started after a death', () => pool.stats().workersReplaced);
}
