// One way to connect to NATS for the engine, its tests and benches.
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';

export function connectNats(servers: string[], name?: string): Promise<NatsConnection> {
  return connect({
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Async traces build an Error (with a stack) for every request: a tenth of a busy node's CPU.
    noAsyncTraces: true,
  });
}
