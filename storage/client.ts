// A typed client of the storage service: each method sends one request and checks the reply against
// the same schema the service answers with. Failures throw StoreError (code + reason): the service's
// own 400/404/409/500, 503 when no store instance answers, 502 when a reply breaks the contract.
import type { NatsConnection } from '@nats-io/nats-core';
import { ServiceError } from '@nats-io/services';
import * as v from 'valibot';
import { OPERATIONS, reasonOf, StoreError, SUBJECT_PREFIX, type Operation, type ReplyOf, type RequestOf } from './api.ts';

export { StoreError } from './api.ts';

export class StoreClient {
  private readonly timeoutMs: number;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();

  constructor(
    private readonly nc: NatsConnection,
    opts: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  async call<O extends Operation>(op: O, req: RequestOf<O>): Promise<ReplyOf<O>> {
    let msg;
    try {
      msg = await this.nc.request(`${SUBJECT_PREFIX}.${op}`, this.enc.encode(JSON.stringify(req)), { timeout: this.timeoutMs });
    } catch (e) {
      const m = (e as Error).message;
      if (/no responders|503/i.test(m)) throw new StoreError(503, `${op}: no store service is answering`);
      if (/timeout/i.test(m)) throw new StoreError(503, `${op}: the store did not answer within ${this.timeoutMs} ms`);
      throw new StoreError(503, `${op}: ${m}`);
    }
    const se = ServiceError.toServiceError(msg);
    if (se) throw new StoreError(se.code, this.reasonFrom(msg.data) ?? se.message);
    let body: unknown;
    try {
      body = JSON.parse(this.dec.decode(msg.data));
    } catch {
      throw new StoreError(502, `${op}: reply is not JSON`);
    }
    const r = v.safeParse(OPERATIONS[op].reply as v.GenericSchema, body);
    if (!r.success) throw new StoreError(502, `${op}: reply does not match the contract: ${reasonOf(r.issues)}`);
    return r.output as ReplyOf<O>;
  }

  private reasonFrom(data: Uint8Array): string | undefined {
    try {
      const body = JSON.parse(this.dec.decode(data)) as { error?: { reason?: unknown } };
      return typeof body?.error?.reason === 'string' ? body.error.reason : undefined;
    } catch {
      return undefined;
    }
  }

  resolve = (req: RequestOf<'resolve'>) => this.call('resolve', req);
  append = (req: RequestOf<'append'>) => this.call('append', req);
  conversationStatus = (req: RequestOf<'conversation.status'>) => this.call('conversation.status', req);
  view = (req: RequestOf<'view'>) => this.call('view', req);
  search = (req: RequestOf<'search'>) => this.call('search', req);
  ticketCreate = (req: RequestOf<'ticket.create'>) => this.call('ticket.create', req);
  ticketGet = (req: RequestOf<'ticket.get'>) => this.call('ticket.get', req);
  ticketUpdate = (req: RequestOf<'ticket.update'>) => this.call('ticket.update', req);
  ticketList = (req: RequestOf<'ticket.list'>) => this.call('ticket.list', req);
  tagAdd = (req: RequestOf<'tag.add'>) => this.call('tag.add', req);
  tagRemove = (req: RequestOf<'tag.remove'>) => this.call('tag.remove', req);
  merge = (req: RequestOf<'merge'>) => this.call('merge', req);
  unmerge = (req: RequestOf<'unmerge'>) => this.call('unmerge', req);
}
