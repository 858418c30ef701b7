// Tags on customers and conversations: `tag:<name>` records and `tagged` edges (target -> tag), so
// "customers tagged vip" is a walk from the tag over an index instead of a scan of every customer.
import { RecordId } from 'surrealdb';
import { StoreError, type ParsedRequestOf, type ReplyOf } from './api.ts';
import type { StoreContext } from './context.ts';
import { isUniqueViolation, retryConflicts, runTx } from './records.ts';

function target(s: string): RecordId<string> {
  const [table, key] = s.split(':');
  return new RecordId(table, key);
}

export async function addTag(ctx: StoreContext, req: ParsedRequestOf<'tag.add'>): Promise<ReplyOf<'tag.add'>> {
  const t = target(req.target);
  const tag = new RecordId('tag', req.tag);
  const at = ctx.now();
  await retryConflicts(async () => {
    try {
      await runTx(
        ctx.db,
        [
          // Read into variables first: an IF condition that reads a record fails on the embedded engine.
          'LET $exists = $t.id',
          `IF $exists = NONE { THROW 'missing' }`,
          'INSERT IGNORE INTO tag { id: $tag, name: $name, created_at: $at } RETURN NONE',
          'LET $has = (SELECT VALUE id FROM tagged WHERE in = $t AND out = $tag)',
          'IF array::len($has) = 0 { RELATE $t->tagged->$tag SET at = $at, by = $by }',
        ],
        { t, tag, name: req.tag, at, by: req.by },
      );
    } catch (e) {
      if (/missing/.test((e as Error).message)) throw new StoreError(404, `no such ${t.table.name}: ${req.target}`);
      if (!isUniqueViolation(e, 'tagged_pair')) throw e; // already tagged by a concurrent add: done
    }
  });
  return { target: req.target, tags: await tagsOf(ctx, t) };
}

export async function removeTag(ctx: StoreContext, req: ParsedRequestOf<'tag.remove'>): Promise<ReplyOf<'tag.remove'>> {
  const t = target(req.target);
  const [exists] = await ctx.db.query<[unknown]>('RETURN $t.id', { t }).collect();
  if (!(exists instanceof RecordId)) throw new StoreError(404, `no such ${t.table.name}: ${req.target}`);
  await ctx.db.query('DELETE tagged WHERE in = $t AND out = $tag', { t, tag: new RecordId('tag', req.tag) }).collect();
  return { target: req.target, tags: await tagsOf(ctx, t) };
}

async function tagsOf(ctx: StoreContext, t: RecordId): Promise<string[]> {
  const [names] = await ctx.db.query<[unknown]>('RETURN $t->tagged->tag.name', { t }).collect();
  return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string').sort() : [];
}
