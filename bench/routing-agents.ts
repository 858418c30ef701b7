// The agents of the routing bench on the runtime, in a process of their own as agents (their actors, their
// workspaces) are in a deployment: the queue's node does not also play them. Each offer is answered with
// the agent's new load, then an accept, in that order per agent, as soon as it arrives.
//   bench.agents.paced: frees the first `n` agents one at a time (each waits for its first offer, or 250 ms
//     when no waiting task fits it); answers the offer latencies.
//   bench.agents.burst: frees the other agents at once; answers once their availability is sent.
//   bench.agents.status: offers and accepts so far, and the burst's offer latencies.
import { ActorClient } from '../actors/client.ts';
import { connectNats } from '../platform/nats.ts';
import { throughput } from './report.ts';
import { benchWorker, type Load } from './routing.ts';
import type { Channel } from '../machines/routing.ts';

interface Reserve {
  type: 'reserve';
  reservationId: string;
  task: { id: string; channel: Channel };
}

const env = process.env;
const AGENTS = Number(env.AGENTS);
const at = Number(env.AT);
const queue = env.QUEUE!;
const nc = await connectNats(env.NATS_URL!.split(','));
const client = new ActorClient(nc, Number(env.SHARDS ?? 32));
const worker = (i: number, available: boolean, load?: Load, held?: string[]) => benchWorker(i, at, available, load, held);

const loads = new Map<string, { load: Load; held: string[]; chain: Promise<unknown> }>();
const availableAt = new Map<string, number>();
let offerMs: number[] = [];
let accepted = 0;
let lastOfferAt = performance.now();
const dec = new TextDecoder();

nc.subscribe('cc.mail.agent.>', {
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
      .then(() => client.tell(queue, { type: 'worker.update', at: Date.now(), worker: update }))
      .then(() => client.tell(queue, { type: 'reservation.accepted', at: Date.now(), reservationId: o.reservationId, taskId: o.task.id, agent }))
      .then(() => accepted++);
  },
});

let paced = 0;
nc.subscribe('bench.agents.paced', {
  callback: (_e, m) => {
    paced = Number(dec.decode(m.data));
    void (async () => {
      for (let i = 0; i < paced; i++) {
        availableAt.set(`a${i}`, performance.now());
        await client.tell(queue, { type: 'worker.update', at: Date.now(), worker: worker(i, true) });
        const until = performance.now() + 250;
        while (availableAt.has(`a${i}`) && performance.now() < until) await new Promise((r) => setTimeout(r, 1));
      }
      const ms = offerMs;
      offerMs = [];
      m.respond(JSON.stringify(ms));
    })();
  },
});

nc.subscribe('bench.agents.burst', {
  callback: (_e, m) => {
    void (async () => {
      await throughput(AGENTS - paced, 64, (j) => {
        const i = paced + j;
        availableAt.set(`a${i}`, performance.now());
        return client.tell(queue, { type: 'worker.update', at: Date.now(), worker: worker(i, true) });
      });
      m.respond('');
    })();
  },
});

nc.subscribe('bench.agents.status', {
  callback: (_e, m) => {
    m.respond(JSON.stringify({ accepted, quietMs: performance.now() - lastOfferAt, offerMs }));
  },
});

await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', async () => {
  await nc.close();
  process.exit(0);
});
