// Tickets: create, get, update, list (newest change first, keyset-paged on (updated_at, id)).
import * as v from 'valibot';
import { RecordId } from 'surrealdb';
import { StoreError, type ParsedRequestOf, type ReplyOf, type Ticket } from './api.ts';
import type { StoreContext } from './context.ts';
import { decodeCursor, encodeCursor } from './history.ts';
import { idOf, newId, parseId } from './records.ts';

const Row = v.object({
  id: v.instance(RecordId),
  subject: v.string(),
  status: v.picklist(['open', 'pending', 'solved', 'closed']),
  priority: v.picklist(['low', 'normal', 'high', 'urgent']),
  assignee: v.optional(v.string()),
  customer: v.optional(v.instance(RecordId)),
  conversations: v.array(v.instance(RecordId)),
  tags: v.array(v.string()),
  created_by: v.string(),
  created_at: v.number(),
  updated_at: v.number(),
});

function toTicket(raw: unknown): Ticket {
  const r = v.parse(Row, raw);
  return {
    id: idOf(r.id),
    subject: r.subject,
    status: r.status,
    priority: r.priority,
    ...(r.assignee !== undefined ? { assignee: r.assignee } : {}),
    ...(r.customer ? { customerId: idOf(r.customer) } : {}),
    conversationIds: r.conversations.map(idOf),
    tags: r.tags,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Every linked record must exist: a ticket never points at nothing. */
async function checkLinks(ctx: StoreContext, customer: RecordId | undefined, conversations: RecordId[]): Promise<void> {
  const [raw] = await ctx.db.query<[{ c: unknown; convs: unknown[] }]>('RETURN { c: $c.id, convs: $convs.id }', { c: customer, convs: conversations }).collect();
  if (customer && !(raw.c instanceof RecordId)) throw new StoreError(404, `no such customer: ${idOf(customer)}`);
  const missing = conversations.filter((_, i) => !(raw.convs[i] instanceof RecordId));
  if (missing.length) throw new StoreError(404, `no such conversation: ${missing.map(idOf).join(', ')}`);
}

export async function createTicket(ctx: StoreContext, req: ParsedRequestOf<'ticket.create'>): Promise<ReplyOf<'ticket.create'>> {
  const at = ctx.now();
  const customer = req.customerId ? parseId('customer', req.customerId) : undefined;
  const conversations = (req.conversationIds ?? []).map((c) => parseId('conversation', c));
  await checkLinks(ctx, customer, conversations);
  const [rows] = await ctx.db
    .query<[unknown[]]>('CREATE $id CONTENT $t', {
      id: newId('ticket', at),
      t: {
        subject: req.subject,
        status: req.status ?? 'open',
        priority: req.priority ?? 'normal',
        assignee: req.assignee,
        customer,
        conversations: [...new Map(conversations.map((c) => [String(c), c])).values()],
        tags: [...new Set(req.tags ?? [])],
        created_by: req.by,
        created_at: at,
        updated_at: at,
      },
    })
    .collect();
  return toTicket(rows[0]);
}

export async function getTicket(ctx: StoreContext, req: ParsedRequestOf<'ticket.get'>): Promise<ReplyOf<'ticket.get'>> {
  const [row] = await ctx.db.query<[unknown]>('SELECT * FROM ONLY $id', { id: parseId('ticket', req.ticketId) }).collect();
  if (row === undefined || row === null) throw new StoreError(404, `no such ticket: ${req.ticketId}`);
  return toTicket(row);
}

export async function updateTicket(ctx: StoreContext, req: ParsedRequestOf<'ticket.update'>): Promise<ReplyOf<'ticket.update'>> {
  const id = parseId('ticket', req.ticketId);
  const sets: string[] = ['updated_at = $at'];
  const vars: Record<string, unknown> = { id, at: ctx.now() };
  const set = (field: string, value: unknown) => {
    vars[field] = value;
    sets.push(`${field} = $${field}`);
  };
  if (req.subject !== undefined) set('subject', req.subject);
  if (req.status !== undefined) set('status', req.status);
  if (req.priority !== undefined) set('priority', req.priority);
  if (req.assignee !== undefined) set('assignee', req.assignee ?? undefined); // null: NONE, unassigned
  if (req.tags !== undefined) set('tags', [...new Set(req.tags)]);
  if (req.conversationIds !== undefined) {
    const convs = req.conversationIds.map((c) => parseId('conversation', c));
    await checkLinks(ctx, undefined, convs);
    set('conversations', [...new Map(convs.map((c) => [String(c), c])).values()]);
  }
  const [rows] = await ctx.db.query<[unknown[]]>(`UPDATE $id SET ${sets.join(', ')}`, vars).collect();
  if (!rows.length) throw new StoreError(404, `no such ticket: ${req.ticketId}`);
  return toTicket(rows[0]);
}

export async function listTickets(ctx: StoreContext, req: ParsedRequestOf<'ticket.list'>): Promise<ReplyOf<'ticket.list'>> {
  const limit = req.limit ?? 50;
  const where: string[] = [];
  const vars: Record<string, unknown> = { n: limit + 1 };
  if (req.customerId) {
    where.push('customer = $customer');
    vars.customer = parseId('customer', req.customerId);
  }
  if (req.status) {
    where.push('status = $status');
    vars.status = req.status;
  }
  if (req.assignee) {
    where.push('assignee = $assignee');
    vars.assignee = req.assignee;
  }
  if (req.tag) {
    where.push('tags CONTAINS $tag');
    vars.tag = req.tag;
  }
  if (req.cursor) {
    const c = decodeCursor(req.cursor);
    where.push('(updated_at < $cat OR (updated_at = $cat AND id < $cid))');
    Object.assign(vars, { cat: c.at, cid: new RecordId('ticket', c.key) });
  }
  const sql = `SELECT * FROM ticket ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY updated_at DESC, id DESC LIMIT $n`;
  const [rows] = await ctx.db.query<[unknown[]]>(sql, vars).collect();
  const tickets = rows.slice(0, limit).map(toTicket);
  const last = tickets[tickets.length - 1];
  return { tickets, ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.updatedAt, last.id.slice('ticket:'.length)) } : {}) };
}
