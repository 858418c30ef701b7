// Routing on the real runtime (real nats-server): 50 agents of mixed skills and capacities, 1,000
// conversations over chat, email and voice arriving in bursts, with VIPs, rejections and timeouts.
// Agents' humans are played by a driver that answers the offers the engine pushes to them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { ActorNode } from '../actors/node.ts';
import { engineKinds } from '../engine/kinds.ts';
import { QueueConfigSchema, type Channel, type Task } from '../machines/routing.ts';
import { startTestNats, waitFor } from './support/nats.ts';

const AGENTS = 50;
const CONVERSATIONS = 1000;
const BURSTS = 10;

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

test('1,000 conversations to 50 agents: never over capacity, all assigned or overflowed, VIPs wait less', { timeout: 600_000 }, async () => {
  const nats = await startTestNats();
  const nc = await nats.connect();
  const controlNc = await nats.connect();
  const node = await ActorNode.start({ nc, controlNc, nodeId: 'routing', kinds: engineKinds, shards: 8, inspect: false, leaseTtlMs: 5000 });
  const random = rng(42);
  const overCapacity: string[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  try {
    await waitFor('shards', () => node.status().shards_owned === engineKinds.length * 8);

    const queues = {
      chat: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 5, match: 'any-level' }, { afterSec: 10, match: 'anyone' }], overflow: { afterSec: 60, queue: 'overflow' }, reminderSec: 5, serviceLevelSec: 20 }),
      email: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'any-level' }, { afterSec: 10, match: 'anyone' }], overflow: { afterSec: 60, queue: 'overflow' }, serviceLevelSec: 60 }),
      voice: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'exact' }, { afterSec: 5, match: 'anyone' }], overflow: { afterSec: 30, queue: 'overflow' }, serviceLevelSec: 20 }),
      overflow: v.parse(QueueConfigSchema, { steps: [{ afterSec: 0, match: 'anyone' }], serviceLevelSec: 60 }),
    };
    for (const [id, config] of Object.entries(queues)) await node.tell(`queue/${id}`, { type: 'configure', config });

    // Agents: mixed skills, languages and capacities; each in one to three queues, all in overflow.
    const names = Object.keys(queues).filter((q) => q !== 'overflow');
    const capacities = new Map<string, Record<string, number>>();
    for (let i = 0; i < AGENTS; i++) {
      const capacity = { voice: i % 5 === 0 ? 0 : 1, chat: 1 + (i % 4), email: 2 + (i % 3) };
      capacities.set(`a${i}`, capacity);
      const mine = names.filter((_, k) => (i + k) % 3 !== 0 || k === i % 3);
      await node.tell(`agent/a${i}`, {
        type: 'profile.set',
        skills: { 'after-sales': 1 + (i % 4), finance: i % 3, [i % 2 ? 'en' : 'zh']: 1, ...(i % 7 === 0 ? { en: 1, zh: 1 } : {}) },
        capacity,
        queues: [...mine, 'overflow'],
        offerTimeoutMs: 1500,
        maxMisses: 3,
        maxWrapUpMs: 300,
      });
      await node.tell(`agent/a${i}`, { type: 'login' });
    }

    // The agents' humans: accept most offers, reject some, let some time out; handle and close.
    const handled = new Set<string>();
    nc.subscribe('cc.agent.*.offers', {
      callback: (_e, m) => {
        const agent = m.subject.split('.')[2];
        const { reservationId, task } = m.json<{ reservationId: string; task: Task }>();
        const r = random();
        if (r < 0.08) later(50, () => void node.tell(`agent/${agent}`, { type: 'offer.reject', reservationId, reason: 'not my topic' }));
        else if (r < 0.14) return; // missed: the engine's durable timer takes it back
        else later(20 + Math.floor(random() * 200), () => void node.tell(`agent/${agent}`, { type: 'offer.accept', reservationId }));
      },
    });
    // Like a workspace, the humans act on what the engine shows them: reply once a conversation is
    // active, close it once it is in wrap-up.
    nc.subscribe('cc.live.conversation.*', {
      callback: (_e, m) => {
        const c = m.json<{ id: string; state: string }>();
        if (c.state === 'active' && !handled.has(c.id)) {
          handled.add(c.id);
          // Long enough that bursts outrun the agents and queues build up: priority has to matter.
          const handle = 800 + Math.floor(random() * 2400);
          later(handle, () => void node.tell(`conversation/${c.id}`, { type: 'agent.message' }).then(() => node.tell(`conversation/${c.id}`, { type: 'wrapup' })));
        } else if (c.state === 'wrapup') later(50, () => void node.tell(`conversation/${c.id}`, { type: 'close', disposition: 'done' }));
      },
    });
    // Every live agent update must respect capacity; agents set away for missed offers come back.
    nc.subscribe('cc.live.agent.*', {
      callback: (_e, m) => {
        const a = m.json<{ id: string; presence: string; reason: string; load: Record<string, number>; capacity: Record<string, number> }>();
        for (const k of Object.keys(a.load)) if (a.load[k] > a.capacity[k]) overCapacity.push(`${a.id} ${k} ${a.load[k]}/${a.capacity[k]}`);
        if (a.presence === 'away' && a.reason === 'missed offers') later(500, () => void node.tell(`agent/${a.id}`, { type: 'presence.set', presence: 'available' }));
      },
    });

    // Conversations in bursts: 60% chat, 25% email, 15% voice; 10% VIP.
    const convs: { id: string; channel: Channel; vip: boolean }[] = [];
    const started = Date.now();
    for (let b = 0; b < BURSTS; b++) {
      const burst: Promise<number>[] = [];
      for (let k = 0; k < CONVERSATIONS / BURSTS; k++) {
        const i = convs.length;
        const r = random();
        const channel: Channel = r < 0.3 ? 'webchat' : r < 0.6 ? 'app' : r < 0.85 ? 'email' : 'voice';
        const vip = random() < 0.1;
        const queue = channel === 'voice' ? 'voice' : channel === 'email' ? 'email' : 'chat';
        convs.push({ id: `c${i}`, channel, vip });
        burst.push(
          node.tell(`conversation/c${i}`, {
            type: 'open',
            customer: `u${i % 700}`,
            channel,
            queue,
            tier: vip ? 'vip' : 'normal',
            skills: [{ name: random() < 0.5 ? 'after-sales' : 'finance', level: 1 + Math.floor(random() * 3) }],
            language: random() < 0.7 ? 'zh' : 'en',
          }),
        );
      }
      await Promise.all(burst);
      await new Promise((r) => setTimeout(r, 500));
    }

    // Wait until every conversation is closed after an assignment, or was overflowed and closed there.
    type View = { value: string; context: { outcome?: string; agent?: string; queue: string; transfers: { note: string }[] } };
    let views: View[] = [];
    const histogram = () => JSON.stringify(views.reduce<Record<string, number>>((h, x) => ((h[x.value] = (h[x.value] ?? 0) + 1), h), {}));
    for (const deadline = Date.now() + 90_000; ; ) {
      views = [];
      for (let i = 0; i < convs.length; i += 100) {
        views.push(...(await Promise.all(convs.slice(i, i + 100).map((c) => node.ask<View>(`conversation/${c.id}`, { type: 'get' }, { timeoutMs: 20_000 })))));
      }
      if (views.every((x) => x.value === 'closed')) break;
      if (Date.now() > deadline) assert.fail(`not every conversation was handled: ${histogram()}; e.g. ${JSON.stringify(views.find((x) => x.value !== 'closed'))}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    const elapsed = Date.now() - started;

    const assigned = views.filter((x) => x.context.outcome === 'assigned').length;
    const overflowed = views.filter((x) => x.context.transfers.some((t) => t.note === 'overflow')).length;
    assert.equal(views.filter((x) => x.context.outcome !== 'assigned').length, 0, 'every conversation ended assigned (overflowed ones were assigned in the overflow queue)');

    type QueueView = { queue: string; serviceLevelPct: number; meanWaitMs: { normal: number; vip: number }; stats: { assigned: number; rejected: number; timeouts: number; refused: number; overflowed: number; waitMs: Record<string, number>; count: Record<string, number> } };
    const qs = await Promise.all(Object.keys(queues).map((q) => node.ask<QueueView>(`queue/${q}`, { type: 'get' })));
    const sum = (f: (q: QueueView) => number) => qs.reduce((a, q) => a + f(q), 0);
    const vipWait = sum((q) => q.stats.waitMs.vip ?? 0) / Math.max(1, sum((q) => q.stats.count.vip ?? 0));
    const normalWait = sum((q) => q.stats.waitMs.normal ?? 0) / Math.max(1, sum((q) => q.stats.count.normal ?? 0));
    const report = {
      conversations: convs.length,
      assigned,
      overflowed,
      elapsed_ms: elapsed,
      vip_mean_wait_ms: Math.round(vipWait),
      normal_mean_wait_ms: Math.round(normalWait),
      rejected: sum((q) => q.stats.rejected),
      timeouts: sum((q) => q.stats.timeouts),
      refused_by_agents: sum((q) => q.stats.refused),
      service_level_pct: Object.fromEntries(qs.map((q) => [q.queue, q.serviceLevelPct])),
      over_capacity_events: overCapacity.length,
    };
    console.log(JSON.stringify(report));

    assert.deepEqual(overCapacity.slice(0, 5), [], 'an agent was over capacity');
    // And the agents' own final state agrees.
    for (let i = 0; i < AGENTS; i++) {
      const a = await node.ask<{ load: Record<string, number>; capacity: Record<string, number> }>(`agent/a${i}`, { type: 'get' });
      for (const k of Object.keys(a.load)) assert.ok(a.load[k] <= a.capacity[k] && a.load[k] >= 0, `a${i} ${k} ${a.load[k]}/${a.capacity[k]}`);
    }
    assert.ok(report.rejected > 0 && report.timeouts > 0, 'the scenario exercised rejections and timeouts');
    assert.ok(vipWait < normalWait, `VIP mean wait ${vipWait} ms should be below normal ${normalWait} ms`);
  } finally {
    for (const t of timers) clearTimeout(t);
    await node.stop();
    await nats.stop();
  }
});
