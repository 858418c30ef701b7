// Counters every channel edge keeps: received, rejected by reason, sent, failed. Registered on the
// engine's Registry when given (reusing a counter already there, so two edges of one channel or a
// restarted edge do not collide), else on a private one so tests stay independent.
import { Counter, Registry } from 'prom-client';

export interface EdgeCounters {
  received: Counter<'account'>;
  rejected: Counter<'reason'>;
  sent: Counter<'account'>;
  failed: Counter<'permanent'>;
  registry: Registry;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<L>;
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

export function edgeCounters(channel: string, registry?: Registry): EdgeCounters {
  const r = registry ?? new Registry();
  const p = `cc_edge_${channel}`;
  return {
    registry: r,
    received: counter(r, `${p}_received_total`, `${channel} messages received and handed to the engine`, ['account']),
    rejected: counter(r, `${p}_rejected_total`, `${channel} input refused, by reason`, ['reason']),
    sent: counter(r, `${p}_sent_total`, `${channel} messages sent`, ['account']),
    failed: counter(r, `${p}_failed_total`, `${channel} messages that failed to send (permanent or after all retries)`, ['permanent']),
  };
}

/** A minimal pino-compatible logger: what edges need. */
export interface EdgeLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export const silentEdgeLog: EdgeLog = { info() {}, warn() {}, error() {} };

/** Backoff delay for try n (1-based): base·2^(n-1), capped, with ±20 % jitter so peers do not retry in step. */
export function backoffMs(n: number, baseMs: number, maxMs: number): number {
  const d = Math.min(maxMs, baseMs * 2 ** (n - 1));
  return Math.round(d * (0.8 + Math.random() * 0.4));
}
