// One way to connect to NATS for the engine, its tests and benches.
import { connect } from '@nats-io/transport-node';
import { RequestError, type NatsConnection } from '@nats-io/nats-core';
import { RequestOne } from '@nats-io/nats-core/internal';

/**
 * nats.js 3.4 ends every answered request with `cancel()`, which builds a `RequestError("cancelled")`, and
 * its stack, only to reject a promise that is already settled: 6 % of a busy actor node's CPU in a profile.
 * A cancel without a reason rejects with one shared error instead; requests answer and time out as before.
 */
const CANCELLED = new RequestError('cancelled');
const cancel = RequestOne.prototype.cancel;
RequestOne.prototype.cancel = function (this: RequestOne, err?: Error) {
  cancel.call(this, err ?? CANCELLED);
};

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
