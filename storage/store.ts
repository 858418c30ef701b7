// The store: every operation of the storage service over one database, requests validated at the door.
// The NATS service (storage/service.ts) is a thin shell around this; tests and benches use it directly.
import type { Surreal } from 'surrealdb';
import * as v from 'valibot';
import { OPERATIONS, parseOrThrow, type Operation, type ParsedRequestOf, type ReplyOf, type RequestOf } from './api.ts';
import type { FieldCipher } from './crypto.ts';
import { silentLog, type StoreContext, type StoreLog } from './context.ts';
import { resolve, searchCustomers } from './identity.ts';
import { appendMessage, customerView } from './history.ts';
import { setConversationStatus } from './conversations.ts';
import { merge, unmerge } from './merge.ts';
import { createTicket, getTicket, listTickets, updateTicket } from './tickets.ts';
import { addTag, removeTag } from './tags.ts';
import { migrate } from './migrations.ts';

type Handlers = { [O in Operation]: (ctx: StoreContext, req: ParsedRequestOf<O>) => Promise<ReplyOf<O>> };

const HANDLERS: Handlers = {
  resolve,
  append: appendMessage,
  'conversation.status': setConversationStatus,
  view: customerView,
  search: searchCustomers,
  'ticket.create': createTicket,
  'ticket.get': getTicket,
  'ticket.update': updateTicket,
  'ticket.list': listTickets,
  'tag.add': addTag,
  'tag.remove': removeTag,
  merge,
  unmerge,
};

export interface Store {
  /** Validates `input` against the operation's request schema (StoreError 400 with the reason) and runs it. */
  call<O extends Operation>(op: O, input: RequestOf<O> | unknown): Promise<ReplyOf<O>>;
  resolve(req: RequestOf<'resolve'>): Promise<ReplyOf<'resolve'>>;
  append(req: RequestOf<'append'>): Promise<ReplyOf<'append'>>;
  conversationStatus(req: RequestOf<'conversation.status'>): Promise<ReplyOf<'conversation.status'>>;
  view(req: RequestOf<'view'>): Promise<ReplyOf<'view'>>;
  search(req: RequestOf<'search'>): Promise<ReplyOf<'search'>>;
  merge(req: RequestOf<'merge'>): Promise<ReplyOf<'merge'>>;
  unmerge(req: RequestOf<'unmerge'>): Promise<ReplyOf<'unmerge'>>;
  ctx: StoreContext;
}

export interface OpenStoreOptions {
  db: Surreal;
  cipher: FieldCipher;
  log?: StoreLog;
  now?: () => number;
  /** A customer's message this long after a conversation closed still reopens it (default 24 h, as the conversation machine). */
  reopenWindowMs?: number;
  /** Apply migrations first (default true). */
  migrate?: boolean;
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const ctx: StoreContext = { db: opts.db, cipher: opts.cipher, log: opts.log ?? silentLog, now: opts.now ?? Date.now, reopenWindowMs: opts.reopenWindowMs };
  if (opts.migrate !== false) {
    const m = await migrate(opts.db);
    if (m.applied.length) ctx.log.info({ applied: m.applied, version: m.current }, 'storage schema migrated');
  }
  const call = async <O extends Operation>(op: O, input: unknown): Promise<ReplyOf<O>> => {
    const schema = OPERATIONS[op].request as v.GenericSchema;
    const req = parseOrThrow(schema, input, op) as ParsedRequestOf<O>;
    return (HANDLERS[op] as (c: StoreContext, r: ParsedRequestOf<O>) => Promise<ReplyOf<O>>)(ctx, req);
  };
  return {
    ctx,
    call,
    resolve: (r) => call('resolve', r),
    append: (r) => call('append', r),
    conversationStatus: (r) => call('conversation.status', r),
    view: (r) => call('view', r),
    search: (r) => call('search', r),
    merge: (r) => call('merge', r),
    unmerge: (r) => call('unmerge', r),
  };
}
