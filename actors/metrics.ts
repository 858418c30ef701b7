// Prometheus metrics of the actor runtime (one registry per node, so several nodes can share a process in tests).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function actorMetrics(registry: Registry) {
  const kind = ['kind'] as const;
  return {
    activations: new Counter({ name: 'cc_actor_activations_total', help: 'Actors activated (loaded into memory)', labelNames: kind, registers: [registry] }),
    passivations: new Counter({ name: 'cc_actor_passivations_total', help: 'Idle actors released from memory', labelNames: kind, registers: [registry] }),
    resident: new Gauge({ name: 'cc_actor_resident', help: 'Actors resident in memory', labelNames: kind, registers: [registry] }),
    mailboxLag: new Gauge({ name: 'cc_actor_mailbox_lag', help: 'Messages waiting in a shard mailbox stream behind the last delivered one', labelNames: ['kind', 'shard'], registers: [registry] }),
    processing: new Histogram({
      name: 'cc_actor_processing_seconds',
      help: 'Time to process a batch of messages of one actor, persistence included',
      labelNames: kind,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    messages: new Counter({ name: 'cc_actor_messages_total', help: 'Messages applied to actors', labelNames: ['kind', 'via'], registers: [registry] }),
    redeliveries: new Counter({ name: 'cc_actor_redeliveries_total', help: 'Redelivered messages skipped because the snapshot already covers them', labelNames: kind, registers: [registry] }),
    deadLetters: new Counter({ name: 'cc_actor_dead_letters_total', help: 'Messages moved to the dead-letter subject', labelNames: kind, registers: [registry] }),
    timersFired: new Counter({ name: 'cc_actor_timers_fired_total', help: 'Durable timers delivered', labelNames: kind, registers: [registry] }),
    fenced: new Counter({ name: 'cc_actor_fenced_total', help: 'Snapshot writes refused because another activation wrote first', labelNames: kind, registers: [registry] }),
    shardsOwned: new Gauge({ name: 'cc_shards_owned', help: 'Shards this node owns', labelNames: kind, registers: [registry] }),
  };
}
export type ActorMetrics = ReturnType<typeof actorMetrics>;
