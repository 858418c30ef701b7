// A conversation's status in the graph: open or closed, as its conversation actor last said.
//
// The actor is the truth; its close and reopen arrive here (storage/events.ts), possibly late, repeated
// or, with several store instances, out of order. Each change carries the time it happened, and the store
// keeps the time of the status it holds (status_at): a change to the other status at or after that time is
// applied, anything else (a repeat, older news) is answered with changed = false and writes nothing.
import * as v from 'valibot';
import { RecordId } from 'surrealdb';
import { StoreError, type ParsedRequestOf, type ReplyOf } from './api.ts';
import type { StoreContext } from './context.ts';
import { idOf, parseId, retryConflicts } from './records.ts';

const Row = v.object({ id: v.instance(RecordId), status: v.picklist(['open', 'closed']), status_at: v.optional(v.number()) });

export async function setConversationStatus(ctx: StoreContext, req: ParsedRequestOf<'conversation.status'>): Promise<ReplyOf<'conversation.status'>> {
  const conv = parseId('conversation', req.conversationId);
  return retryConflicts(async () => {
    const [written] = await ctx.db
      .query<[unknown]>(
        `UPDATE $conv SET
           status = $status,
           status_at = $at,
           closed_at = IF $status = 'closed' THEN $at ELSE NONE END,
           closed_by = IF $status = 'closed' THEN $by ELSE NONE END,
           disposition = IF $status = 'closed' THEN $disposition ELSE NONE END
         WHERE status != $status AND (status_at ?? 0) <= $at RETURN id, status, status_at`,
        { conv, status: req.status, at: req.at, by: req.by, disposition: req.disposition },
      )
      .collect();
    const rows = v.parse(v.array(Row), written);
    if (rows[0]) {
      ctx.log.debug({ conversation: req.conversationId, status: req.status, at: req.at }, 'conversation status changed');
      return { conversationId: idOf(rows[0].id), status: rows[0].status, statusAt: rows[0].status_at ?? req.at, changed: true };
    }
    // Nothing written: a repeat, older news, or no such conversation.
    const [now] = await ctx.db.query<[unknown]>('$conv.{ id, status, status_at }', { conv }).collect();
    const row = v.parse(v.nullish(Row), now);
    if (!row?.id) throw new StoreError(404, `no such conversation: ${req.conversationId}`);
    return { conversationId: idOf(row.id), status: row.status, statusAt: row.status_at ?? 0, changed: false };
  });
}
