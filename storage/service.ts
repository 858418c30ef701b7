// The storage service on NATS: a NATS micro service (`@nats-io/services`, so `$SRV.PING|INFO|STATS`
// see it) with one endpoint per operation under cc.store.v1, all in the queue group `cc-store`, so any
// number of store instances share the load. Requests are JSON, validated with the api.ts schemas.
// A bad request is answered with a service error 400 and the reason; a missing record 404; a conflict
// 409; anything unexpected 500 with its message, and the service keeps serving.
// Handlers answer asynchronously, after the library has counted the request; so the library's own
// num_errors and processing_time stay 0 and each endpoint's stats carry ours in `data`:
// { requests, errors, by_code, last_error, avg_ms }.
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { OPERATIONS, SERVICE_NAME, SERVICE_VERSION, StoreError, SUBJECT_PREFIX, type Operation } from './api.ts';
import { silentLog, type StoreLog } from './context.ts';
import type { Store } from './store.ts';

interface EndpointCounts {
  requests: number;
  errors: number;
  byCode: Record<number, number>;
  lastError?: string;
  ms: number;
}

export interface StoreService {
  service: Service;
  stop(): Promise<void>;
}

/** The endpoint name of an operation (a plain token: `ticket.create` → `ticket_create`); its subject is cc.store.v1.<operation>. */
export const endpointName = (op: Operation) => op.replace(/\./g, '_');

export async function startStoreService(nc: NatsConnection, store: Store, opts: { log?: StoreLog; queue?: string } = {}): Promise<StoreService> {
  const log = opts.log ?? silentLog;
  const counts = new Map<string, EndpointCounts>();
  const service = await new Svcm(nc).add({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    description: 'cc storage: identity graph, conversation history, tickets, tags, merges',
    queue: opts.queue ?? SERVICE_NAME,
    statsHandler: async (endpoint) => {
      const c = counts.get(endpoint.subject.slice(SUBJECT_PREFIX.length + 1));
      return c ? { requests: c.requests, errors: c.errors, by_code: c.byCode, last_error: c.lastError, avg_ms: c.requests ? Math.round((c.ms / c.requests) * 1000) / 1000 : 0 } : null;
    },
  });
  const group = service.addGroup(SUBJECT_PREFIX);
  const enc = new TextEncoder();
  for (const op of Object.keys(OPERATIONS) as Operation[]) {
    counts.set(op, { requests: 0, errors: 0, byCode: {}, ms: 0 });
    group.addEndpoint(endpointName(op), {
      subject: op,
      metadata: { operation: op },
      handler: (err, msg) => {
        if (err) {
          log.error({ op, err: err.message }, 'store endpoint failed');
          return;
        }
        void handle(op, msg);
      },
    });
  }

  async function handle(op: Operation, msg: ServiceMsg): Promise<void> {
    const c = counts.get(op)!;
    const t0 = performance.now();
    c.requests++;
    try {
      await answer(op, msg, c);
    } finally {
      c.ms += performance.now() - t0;
    }
  }

  async function answer(op: Operation, msg: ServiceMsg, c: EndpointCounts): Promise<void> {
    let input: unknown;
    try {
      input = msg.data.length ? JSON.parse(new TextDecoder().decode(msg.data)) : undefined;
    } catch {
      respondError(msg, c, 400, `${op}: request is not JSON`);
      return;
    }
    try {
      const reply = await store.call(op, input);
      msg.respond(enc.encode(JSON.stringify(reply)));
    } catch (e) {
      if (e instanceof StoreError) {
        if (e.code >= 500) log.error({ op, reason: e.reason }, 'store request failed');
        else log.debug({ op, code: e.code, reason: e.reason }, 'store request refused');
        respondError(msg, c, e.code, e.reason);
      } else {
        const reason = (e as Error)?.message ?? String(e);
        log.error({ op, reason }, 'store request failed unexpectedly');
        respondError(msg, c, 500, `${op}: ${reason}`);
      }
    }
  }

  function respondError(msg: ServiceMsg, c: EndpointCounts, code: number, reason: string): void {
    c.errors++;
    c.byCode[code] = (c.byCode[code] ?? 0) + 1;
    c.lastError = `${code} ${reason}`.slice(0, 300);
    // The reason travels in a header (one line) and, in full, as the JSON body.
    const line = reason.replace(/[\r\n]+/g, ' ').slice(0, 1000);
    msg.respondError(code, line, enc.encode(JSON.stringify({ error: { code, reason } })));
  }

  log.info({ name: SERVICE_NAME, version: SERVICE_VERSION, id: service.info().id, subjects: `${SUBJECT_PREFIX}.>` }, 'store service started');
  return {
    service,
    async stop() {
      await service.stop();
    },
  };
}
