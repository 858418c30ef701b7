// Customer satisfaction ratings as an edge takes them (the web chat's `csat` frame; any channel could use
// it). The conversation actor decides (its own customer, once, after an agent served it: machines/
// conversation.ts `csat.rated`); a taken rating then joins the conversation's history as a `system`
// message (author `csat`) keyed by the conversation, so a retry stores it once. The same rating sent
// again is answered as taken (duplicate) and stores the history message if the first try could not.
import * as v from 'valibot';
import type { ActorClient } from '../../actors/client.ts';
import type { Channel } from '../../machines/routing.ts';
import type { StoreClient } from '../../storage/client.ts';

export interface Rating {
  conversationId: string;
  score: number;
  comment?: string;
  /** Who rates, on which channel: the actor takes only the conversation's own customer handle. */
  by: { channel: Channel; handle: string };
  at: number;
}

export type RatingResult = { ok: true; duplicate: boolean; score: number } | { ok: false; reason: string };

export interface RatingTaker {
  /** Refusals come back as `ok: false` with the reason; an engine that cannot answer now throws. */
  rate(r: Rating): Promise<RatingResult>;
}

/** The actor's answer (CsatAnswer in machines/conversation.ts), checked at this boundary. */
const Answer = v.variant('ok', [
  v.object({
    ok: v.literal(true),
    duplicate: v.boolean(),
    conversation: v.string(),
    customer: v.pipe(v.string(), v.minLength(1)),
    csat: v.object({ score: v.number(), comment: v.optional(v.string()), at: v.number(), channel: v.string() }),
  }),
  v.object({ ok: v.literal(false), reason: v.string() }),
]);

const CONVERSATION_ID = /^[A-Za-z0-9_]{1,64}$/;

/** How a rating reads in the conversation's history. */
export const ratingText = (score: number, comment?: string) => `Customer rating: ${score} of 5${comment ? `\n“${comment}”` : ''}`;

export function ratingTaker(deps: { actors: Pick<ActorClient, 'ask'>; store: Pick<StoreClient, 'append'>; timeoutMs?: number }): RatingTaker {
  return {
    async rate(r) {
      if (!CONVERSATION_ID.test(r.conversationId)) return { ok: false, reason: 'no such conversation' };
      const a = await deps.actors.ask(`conversation/${r.conversationId}`, { type: 'csat.rated', at: r.at, score: r.score, ...(r.comment ? { comment: r.comment } : {}), by: r.by }, { timeoutMs: deps.timeoutMs ?? 5000, reply: Answer });
      if (!a.ok) return a;
      await deps.store.append({
        customerId: `customer:${a.customer}`,
        conversationId: `conversation:${a.conversation}`,
        channel: r.by.channel,
        channelMessageId: `csat:${a.conversation}`,
        direction: 'system',
        author: 'csat',
        text: ratingText(a.csat.score, a.csat.comment),
        at: a.csat.at,
      });
      return { ok: true, duplicate: a.duplicate, score: a.csat.score };
    },
  };
}
