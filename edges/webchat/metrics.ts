// Web chat counters: sockets, frames each way, and every rejection by its code (bad input is counted, never silent).
import { Counter, Gauge, Registry } from 'prom-client';

export interface WebchatMetrics {
  registry: Registry;
  sockets: Gauge<'channel'>;
  framesIn: Counter<'type'>;
  framesOut: Counter<'type'>;
  rejected: Counter<'code'>;
  uploads: Counter<'result'>;
}

function one<T>(registry: Registry, name: string, make: () => T): T {
  // Two edges on one registry (tests, several mounts) share the series instead of throwing.
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function webchatMetrics(registry = new Registry()): WebchatMetrics {
  const registers = [registry];
  return {
    registry,
    sockets: one(registry, 'cc_webchat_sockets', () => new Gauge({ name: 'cc_webchat_sockets', help: 'Open web chat and in-app sockets', labelNames: ['channel'], registers })),
    framesIn: one(registry, 'cc_webchat_frames_in_total', () => new Counter({ name: 'cc_webchat_frames_in_total', help: 'Client frames accepted, by type', labelNames: ['type'], registers })),
    framesOut: one(registry, 'cc_webchat_frames_out_total', () => new Counter({ name: 'cc_webchat_frames_out_total', help: 'Frames sent to clients, by type', labelNames: ['type'], registers })),
    rejected: one(registry, 'cc_webchat_rejected_total', () => new Counter({ name: 'cc_webchat_rejected_total', help: 'Rejected input (frames, connections, uploads), by error code', labelNames: ['code'], registers })),
    uploads: one(registry, 'cc_webchat_uploads_total', () => new Counter({ name: 'cc_webchat_uploads_total', help: 'Attachment uploads, by result', labelNames: ['result'], registers })),
  };
}
