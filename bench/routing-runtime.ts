// The routing bench again, on the real runtime: a node in this process hosts the queue actor on a real
// nats-server, so every step's record and parts are written to JetStream KV before its mail is acknowledged
// (the mail of one actor that queues up while a write is in flight is applied as one batch, one record).
// 1,000 agents, played here (their mail subject is watched on core NATS), become available (the first 300
// one at a time, for the offer latency of one freed agent; the rest at once) and answer each offer with
// their new load and an accept. assignments/s is wall time from the first availability to the last accept
// applied.
import * as v from 'valibot';
import { ActorNode } from '../actors/node.ts';
import { queueKind } from '../machines/queue.ts';
import { QueueConfigSchema, type Channel } from '../machines/routing.ts';
import { startTestNats } from '../tests/support/nats.ts';
import { percentile, report, throughput } from './report.ts';
import { benchTask, benchWorker, type Load } from './routing.ts';

interface Reserve {
  type: 'reserve';
  reservationId: string;
  task: { id: string; channel: Channel };
}

export async function benchRoutingRuntime(): Promise<void> {
  const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
  const TASKS = Number(process.env.BENCH_TASKS ?? 10_000);
  const nats = await startTestNats();
  const nc = await nats.connect();
  const node = await ActorNode.start({ nc, nodeId: 'routing-bench', kinds: [queueKind] });
  try {
    while (node.status().shards_owned < 32) await new Promise((r) => setTimeout(r, 50));
    const queue = 'queue/bench';
    const at = Date.now();
    await node.tell(queue, { type: 'configure', at, config: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 60, match: 'any-level' }] }) });
    const worker = (i: number, available: boolean, load?: Load, held?: string[]) => benchWorker(i, at, available, load, held);
    await throughput(AGENTS, 64, (i) => node.tell(queue, { type: 'worker.update', at, worker: worker(i, false) }));
    const added = performance.now();
    await throughput(TASKS, 64, (i) => node.tell(queue, { type: 'task.add', at: at + i, task: benchTask(i, at) }));
    const view = () => node.ask<{ waiting: number; offering: number; stats: { assigned: number } }>(queue, { type: 'get' }, { timeoutMs: 120_000 });
    while ((await view()).waiting < TASKS) await new Promise((r) => setTimeout(r, 200));
    const addS = (performance.now() - added) / 1000;

    // The agents: each offer is answered with the agent's new load, then an accept, in that order per agent.
    const loads = new Map<string, { load: Load; held: string[]; chain: Promise<unknown> }>();
    const availableAt = new Map<string, number>();
    const offerMs: number[] = [];
    let accepted = 0;
    let lastOfferAt = performance.now();
    const dec = new TextDecoder();
    const sub = nc.subscribe('cc.mail.agent.>', {
      callback: (_e, m) => {
        const agent = m.headers?.get('Cc-Actor') ?? '';
        const ev = JSON.parse(dec.decode(m.data)) as Reserve | { type: string };
        if (ev.type !== 'reserve') return;
        const o = ev as Reserve;
        lastOfferAt = performance.now();
        const since = availableAt.get(agent);
        if (since !== undefined) {
          offerMs.push(lastOfferAt - since);
          availableAt.delete(agent);
        }
        const i = Number(agent.slice(1));
        const a = loads.get(agent) ?? { load: { voice: 0, chat: 0, email: 0 }, held: [], chain: Promise.resolve() };
        loads.set(agent, a);
        a.load[o.task.channel === 'voice' ? 'voice' : o.task.channel === 'email' ? 'email' : 'chat']++;
        a.held.push(o.reservationId);
        const update = worker(i, true, { ...a.load }, [...a.held]);
        a.chain = a.chain
          .then(() => node.tell(queue, { type: 'worker.update', at: Date.now(), worker: update }))
          .then(() => node.tell(queue, { type: 'reservation.accepted', at: Date.now(), reservationId: o.reservationId, taskId: o.task.id, agent: agent }))
          .then(() => accepted++);
      },
    });
    // First PACED agents one at a time (each waits for its first offer, or 250 ms when no waiting task
    // fits it): the latency of one freed agent. 300 of them, so that the p99 is not simply the slowest.
    const t0 = performance.now();
    const PACED = Math.min(300, AGENTS);
    for (let i = 0; i < PACED; i++) {
      availableAt.set(`a${i}`, performance.now());
      await node.tell(queue, { type: 'worker.update', at: Date.now(), worker: worker(i, true) });
      const until = performance.now() + 250;
      while (availableAt.has(`a${i}`) && performance.now() < until) await new Promise((r) => setTimeout(r, 1));
    }
    const pacedOfferMs = offerMs.splice(0);
    // Then the others all at once: a burst that queues up in the queue actor's mailbox. Throughput is
    // measured over the burst only.
    while ((await view()).stats.assigned < accepted) await new Promise((r) => setTimeout(r, 20));
    const burstFrom = (await view()).stats.assigned;
    const t1 = performance.now();
    await throughput(AGENTS - PACED, 64, (j) => {
      const i = PACED + j;
      availableAt.set(`a${i}`, performance.now());
      return node.tell(queue, { type: 'worker.update', at: Date.now(), worker: worker(i, true) });
    });
    // Done when offers have stopped and every accept sent has been applied.
    let assigned = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      const v = await view();
      assigned = v.stats.assigned;
      if (performance.now() - lastOfferAt > 1_000 && v.offering === 0 && assigned >= accepted) break;
    }
    const wallS = (performance.now() - t1 - 1_000) / 1000;
    sub.unsubscribe();
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
      scope: 'one node, queue actor on a real nats-server (records and parts stored per batch); agents answer at once',
    });
    const ms = (x: number) => Math.round(x * 10) / 10;
    report({ name: 'offer_p99_ms_on_runtime', value: percentile(pacedOfferMs, 99), unit: 'ms', goal: 'value <= 20', p50_ms: ms(percentile(pacedOfferMs, 50)), offers: pacedOfferMs.length, note: `${PACED} agents made available one at a time, while thousands of tasks wait` });
    report({ name: 'offer_p99_ms_on_runtime_burst', value: percentile(offerMs, 99), unit: 'ms', p50_ms: ms(percentile(offerMs, 50)), note: `${AGENTS - PACED} agents made available at once: the time the burst queues` });
  } finally {
    await node.stop();
    await nc.close();
    await nats.stop();
  }
}
