// What a shard borrows from its node: connections, buckets, metrics, options and hooks.
import type { NatsConnection } from '@nats-io/nats-core';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { ActorKind } from './kind.ts';
import type { ActorMetrics } from './metrics.ts';
import type { Stepper } from './step.ts';
import type { Gate } from './gate.ts';
import type { Watches } from './inspection.ts';

export interface HostedKind {
  kind: ActorKind;
  stepper: Stepper;
}

export type ActivationEvent = 'activate' | 'passivate' | 'drop';

export interface RuntimeOptions {
  /** Shards per kind; every node of a cluster must agree. */
  shards: number;
  /** Idle time after which a resident actor is released from memory. */
  idleMs: number;
  /** Attempts after the first before a throwing message is dead-lettered. */
  retries: number;
  /** Publish XState-style inspection events on cc.inspect.<kind>.<id> (events and activations only while watched). */
  inspect: boolean;
}

export interface NodeServices {
  nodeId: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stateKv: KV;
  partsKv: KV;
  timerKv: KV;
  metrics: ActorMetrics;
  /** Node-wide bound on actors stepping at once. */
  gate: Gate;
  /** Which actors someone watches for their events (inspection.ts). */
  watches: Watches;
  log: Logger;
  options: RuntimeOptions;
  onActivation(ev: ActivationEvent, kind: string, id: string): void;
}
