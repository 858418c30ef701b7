// Merging two customers (an agent or supervisor decided they are one person) and undoing it.
//
// merge: in one transaction, the absorbed customer's identity edges, conversations (their messages are
// keyed by conversation, so they follow), tickets and tags move to the survivor; the absorbed record stays, with merged_into set;
// a merge record lists exactly what moved, so unmerge moves back exactly that (whatever arrived later
// stays with the survivor). Both write an audit record (who, when, why). Open suggestions between the two
// are closed as merged. A customer that was absorbed cannot take part in another merge, and a merge whose
// survivor has been absorbed since cannot be undone before that later merge is.
import * as v from 'valibot';
import { RecordId } from 'surrealdb';
import { StoreError, type ParsedRequestOf, type ReplyOf } from './api.ts';
import type { StoreContext } from './context.ts';
import { idOf, newId, parseId, retryConflicts, runTx } from './records.ts';

const Party = v.nullish(v.object({ id: v.instance(RecordId), merged_into: v.optional(v.instance(RecordId)) }));
const Moved = v.object({
  identities: v.array(v.instance(RecordId)),
  conversations: v.array(v.instance(RecordId)),
  tickets: v.array(v.instance(RecordId)),
  tags: v.array(v.instance(RecordId)),
});

const MERGE_TX = [
  // Read into variables first: an IF condition that reads a record fails on the embedded engine ("Specify a database").
  'LET $sv = $s.{ id, merged_into }',
  'LET $av = $a.{ id, merged_into }',
  `IF $sv.id = NONE OR $av.id = NONE OR $sv.merged_into != NONE OR $av.merged_into != NONE { THROW 'conflict: a customer of this merge was merged meanwhile' }`,
  'LET $identities = (SELECT VALUE in FROM identifies WHERE out = $a)',
  'LET $conversations = (SELECT VALUE id FROM conversation WHERE customer = $a)',
  'LET $tickets = (SELECT VALUE id FROM ticket WHERE customer = $a)',
  'LET $tags = array::complement((SELECT VALUE out FROM tagged WHERE in = $a), (SELECT VALUE out FROM tagged WHERE in = $s))',
  'DELETE identifies WHERE out = $a',
  'FOR $i IN $identities { RELATE $i->identifies->$s SET at = $at, by = $how }',
  'UPDATE $conversations SET customer = $s RETURN NONE',
  'UPDATE $tickets SET customer = $s, updated_at = $at RETURN NONE',
  'FOR $t IN $tags { RELATE $s->tagged->$t SET at = $at, by = $by }',
  `UPDATE suggestion SET status = 'merged' WHERE customer = $a AND candidate = $s RETURN NONE`,
  `UPDATE suggestion SET status = 'merged' WHERE customer = $s AND candidate = $a RETURN NONE`,
  'UPDATE $a SET merged_into = $s, updated_at = $at RETURN NONE',
  `CREATE $mid CONTENT { survivor: $s, absorbed: $a, identities: $identities, conversations: $conversations, tickets: $tickets, tags_added: $tags, by: $by, reason: $reason, at: $at } RETURN NONE`,
  `CREATE audit CONTENT { action: 'customer.merge', by: $by, subject: [$s, $a, $mid], detail: { reason: $reason, identities: array::len($identities), conversations: array::len($conversations) }, at: $at } RETURN NONE`,
  'RETURN { identities: $identities, conversations: $conversations, tickets: $tickets, tags: $tags }',
];

export async function merge(ctx: StoreContext, req: ParsedRequestOf<'merge'>): Promise<ReplyOf<'merge'>> {
  const s = parseId('customer', req.survivor);
  const a = parseId('customer', req.absorbed);
  return retryConflicts(async () => {
    const [raw] = await ctx.db.query<[unknown]>('RETURN { s: $s.{ id, merged_into }, a: $a.{ id, merged_into } }', { s, a }).collect();
    const parties = v.parse(v.object({ s: Party, a: Party }), raw);
    for (const [p, id, role] of [[parties.s, req.survivor, 'survivor'], [parties.a, req.absorbed, 'absorbed']] as const) {
      if (!p?.id) throw new StoreError(404, `no such customer: ${id} (${role})`);
      if (p.merged_into) throw new StoreError(409, `${role} ${id} was merged into ${idOf(p.merged_into)}; merge with that customer instead`);
    }
    const at = ctx.now();
    const mid = newId('merge', at);
    const results = await runTx(ctx.db, MERGE_TX, { s, a, mid, at, by: req.by, how: `merge:${String(mid.id)}`, reason: req.reason }).catch(conflictOr409);
    const moved = v.parse(Moved, results[results.length - 1]);
    ctx.log.info({ merge: idOf(mid), survivor: req.survivor, absorbed: req.absorbed, by: req.by, identities: moved.identities.length, conversations: moved.conversations.length }, 'customers merged');
    return { mergeId: idOf(mid), survivor: req.survivor, absorbed: req.absorbed, moved: ids(moved) };
  });
}

const UNMERGE_TX = [
  'LET $mv = $m.{ undone_at }',
  'LET $sv = $s.{ merged_into }',
  `IF $mv.undone_at != NONE { THROW 'conflict: this merge was undone meanwhile' }`,
  `IF $sv.merged_into != NONE { THROW 'conflict: the survivor was merged meanwhile' }`,
  'LET $identities = (SELECT VALUE in FROM identifies WHERE out = $s AND in IN $m.identities)',
  'DELETE identifies WHERE out = $s AND in IN $identities',
  'FOR $i IN $identities { RELATE $i->identifies->$a SET at = $at, by = $how }',
  'LET $conversations = (UPDATE $m.conversations SET customer = $a WHERE customer = $s RETURN VALUE id)',
  'LET $tickets = (UPDATE $m.tickets SET customer = $a, updated_at = $at WHERE customer = $s RETURN VALUE id)',
  'LET $tags = (DELETE tagged WHERE in = $s AND out IN $m.tags_added RETURN BEFORE).out',
  'UPDATE $a SET merged_into = NONE, updated_at = $at RETURN NONE',
  'UPDATE $m SET undone_at = $at, undone_by = $by RETURN NONE',
  `CREATE audit CONTENT { action: 'customer.unmerge', by: $by, subject: [$s, $a, $m], detail: { reason: $reason }, at: $at } RETURN NONE`,
  'RETURN { identities: $identities, conversations: $conversations, tickets: $tickets, tags: $tags }',
];

const MergeRecord = v.nullish(
  v.object({ id: v.instance(RecordId), survivor: v.instance(RecordId), absorbed: v.instance(RecordId), undone_at: v.optional(v.number()) }),
);

export async function unmerge(ctx: StoreContext, req: ParsedRequestOf<'unmerge'>): Promise<ReplyOf<'unmerge'>> {
  const m = parseId('merge', req.mergeId);
  return retryConflicts(async () => {
    const [raw] = await ctx.db.query<[unknown]>('RETURN $m.{ id, survivor, absorbed, undone_at }', { m }).collect();
    const rec = v.parse(MergeRecord, raw);
    if (!rec?.id) throw new StoreError(404, `no such merge: ${req.mergeId}`);
    if (rec.undone_at !== undefined) throw new StoreError(409, `merge ${req.mergeId} was already undone`);
    const [later] = await ctx.db.query<[unknown]>('RETURN $s.merged_into', { s: rec.survivor }).collect();
    if (later instanceof RecordId) throw new StoreError(409, `survivor ${idOf(rec.survivor)} was merged into ${idOf(later)} since; undo that merge first`);
    const at = ctx.now();
    const results = await runTx(ctx.db, UNMERGE_TX, { m, s: rec.survivor, a: rec.absorbed, at, by: req.by, how: `unmerge:${String(m.id)}`, reason: req.reason ?? '' }).catch(conflictOr409);
    const restored = v.parse(Moved, results[results.length - 1]);
    ctx.log.info({ merge: req.mergeId, survivor: idOf(rec.survivor), absorbed: idOf(rec.absorbed), by: req.by }, 'customers unmerged');
    return { mergeId: req.mergeId, survivor: idOf(rec.survivor), absorbed: idOf(rec.absorbed), restored: ids(restored) };
  });
}

function ids(m: v.InferOutput<typeof Moved>) {
  return {
    identities: m.identities.map(idOf),
    conversations: m.conversations.map(idOf),
    tickets: m.tickets.map(idOf),
    tags: m.tags.map((t) => String(t.id)),
  };
}

/** A THROW of ours inside the transaction means the state changed between the check and the write. */
function conflictOr409(e: unknown): never {
  const msg = (e as Error).message;
  const ours = /conflict: (.*)$/.exec(msg);
  if (ours && !/retr/i.test(msg)) throw new StoreError(409, ours[1].replace(/['"]$/, ''));
  throw e;
}
