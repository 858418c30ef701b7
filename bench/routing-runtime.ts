// The routing bench again, on the real runtime: a node in this process hosts the queue actor on a real
// nats-server, so every step's record and parts are written to JetStream KV before its mail is acknowledged
// (the mail of one actor that queues up while a write is in flight is applied as one batch, one record).
// 1,000 agents, played by another process (routing-agents.ts: their mail subject is watched on core NATS),
// become available (the first 300 one at a time, for the offer latency of one freed agent; the rest at
// once) and answer each offer with their new load and an accept. assignments/s is wall time from the first availability to the last accept
// applied.
import { PerformanceObserver } from 'node:perf_hooks';
import * as v from 'valibot';
import { ActorNode } from '../actors/node.ts';
import { queueKind } from '../machines/queue.ts';
import { QueueConfigSchema } from '../machines/routing.ts';
import { startTestNats } from '../tests/support/nats.ts';
import { child, stopChild } from './child.ts';
import { envCount, percentile, report, throughput } from './report.ts';
import { benchTask, benchWorker } from './routing.ts';

export async function benchRoutingRuntime(): Promise<void> {
  const AGENTS = envCount('BENCH_AGENTS', 1000);
  const TASKS = envCount('BENCH_TASKS', 10_000);
  const PACED = Math.min(envCount('BENCH_PACED', 300), AGENTS);
  const nats = await startTestNats();
  const nc = await nats.connect();
  const node = await ActorNode.start({ nc, nodeId: 'routing-bench', kinds: [queueKind] });
  try {
    while (node.status().shards_owned < 32) await new Promise((r) => setTimeout(r, 50));
    const queue = 'queue/bench';
    const at = Date.now();
    await node.tell(queue, { type: 'configure', at, config: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 60, match: 'any-level' }] }) });
    await throughput(AGENTS, 64, (i) => node.tell(queue, { type: 'worker.update', at, worker: benchWorker(i, at, false) }));
    const added = performance.now();
    await throughput(TASKS, 64, (i) => node.tell(queue, { type: 'task.add', at: at + i, task: benchTask(i, at) }));
    const view = () => node.ask<{ waiting: number; offering: number; stats: { assigned: number } }>(queue, { type: 'get' }, { timeoutMs: 120_000 });
    while ((await view()).waiting < TASKS) await new Promise((r) => setTimeout(r, 200));
    const addS = (performance.now() - added) / 1000;

    // The agents, in their own process: see routing-agents.ts.
    const agents = await child(['--import', 'tsx', 'bench/routing-agents.ts'], { NATS_URL: nats.urls[0], AGENTS: String(AGENTS), AT: String(at), QUEUE: queue });
    try {
      const call = async <T>(subject: string, data = '') => (await nc.request(subject, data, { timeout: 600_000 })).json<T>();
      // First PACED agents one at a time: the latency of one freed agent. 300 of them (BENCH_PACED), so that
      // the p99 is not simply the slowest.
      const t0 = performance.now();
      // The queue node's collector pauses while offers are timed: a part of the tail that is not NATS.
      const pauses: number[] = [];
      const gc = new PerformanceObserver((list) => pauses.push(...list.getEntries().map((e) => e.duration)));
      gc.observe({ entryTypes: ['gc'] });
      const pacedOfferMs = await call<number[]>('bench.agents.paced', String(PACED));
      gc.disconnect();
      // Then the others all at once: a burst that queues up in the queue actor's mailbox. Throughput is
      // measured over the burst only.
      const status = () => call<{ accepted: number; quietMs: number; offerMs: number[] }>('bench.agents.status');
      while ((await view()).stats.assigned < (await status()).accepted) await new Promise((r) => setTimeout(r, 20));
      const burstFrom = (await view()).stats.assigned;
      const t1 = performance.now();
      await nc.request('bench.agents.burst', '', { timeout: 600_000 });
      // Done when offers have stopped and every accept sent has been applied.
      let assigned = 0;
      let burst: { accepted: number; quietMs: number; offerMs: number[] };
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        const v = await view();
        burst = await status();
        assigned = v.stats.assigned;
        if (burst.quietMs > 1_000 && v.offering === 0 && assigned >= burst.accepted) break;
      }
      const wallS = (performance.now() - t1 - 1_000) / 1000;
      report({
        name: 'assignments_per_s_on_runtime',
        value: (assigned - burstFrom) / wallS,
        unit: 'assignments/s',
        goal: 'value >= 2000',
        agents: AGENTS,
        queued_tasks: TASKS,
        assignments: assigned - burstFrom,
        paced_phase_s: Math.round((t1 - t0) / 100) / 10,
        task_add_per_s: Math.round(TASKS / addS),
        scope: 'one node, queue actor on a real nats-server (records and parts stored per batch); agents, in another process, answer at once',
      });
      const ms = (x: number) => Math.round(x * 10) / 10;
      report({ name: 'offer_p99_ms_on_runtime', value: percentile(pacedOfferMs, 99), unit: 'ms', goal: 'value <= 20', p50_ms: ms(percentile(pacedOfferMs, 50)), offers: pacedOfferMs.length, gc_pause_max_ms: ms(Math.max(0, ...pauses)), gc_pause_total_ms: ms(pauses.reduce((a, b) => a + b, 0)), note: `${PACED} agents made available one at a time, while thousands of tasks wait` });
      report({ name: 'offer_p99_ms_on_runtime_burst', value: percentile(burst.offerMs, 99), unit: 'ms', p50_ms: ms(percentile(burst.offerMs, 50)), note: `${AGENTS - PACED} agents made available at once: the time the burst queues` });
    } finally {
      await stopChild(agents);
    }
  } finally {
    await node.stop();
    await nc.close();
    await nats.stop();
  }
}
