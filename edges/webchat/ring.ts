// The agent calls the web chat visitor (issue 7): the workspace rings the widget instead of dialling a phone.
//
// The visitor's sockets live on whichever edge node holds them, so the ring goes out on core NATS (like the
// agent hang-up subject): `ringWidget` asks WIDGET_RING_SUBJECT; every node holding a socket (protocol v2+)
// of the conversation pushes `call.incoming` to it and replies at once. No reply within a moment means no
// live widget: the caller falls back to the phone. The outcome (accepted, declined, no answer after 30 s)
// comes back on `ringOutcomeSubject(invite)`. Accepting runs the widget's own call (call.start with the
// invite, call.produce → call.request); because the agent placed the call, the reservation that follows is
// accepted for them at once (edges/webchat/call.ts).
import type { NatsConnection } from '@nats-io/nats-core';
import * as v from 'valibot';

export const WIDGET_RING_SUBJECT = 'cc.webchat.call.ring';
export const ringOutcomeSubject = (invite: string) => `cc.webchat.call.ring.${invite}.outcome`;
/** How long the widget rings before the agent hears "no answer". */
export const RING_MS = 30_000;

export const RingRequest = v.object({
  conversationId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/)),
  agent: v.pipe(v.string(), v.minLength(1)),
  agentName: v.optional(v.string()),
  invite: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)),
});
export type RingRequest = v.InferOutput<typeof RingRequest>;
export const RingReply = v.object({ sockets: v.number() });
export const RingOutcome = v.object({ outcome: v.picklist(['accepted', 'declined', 'no-answer']), reason: v.string() });
export type RingOutcome = v.InferOutput<typeof RingOutcome>;

/**
 * Rings the widget(s) of a conversation. `undefined`: no widget of it is connected now (call the phone
 * instead); otherwise the visitor's answer, once given or once the ring timed out.
 */
export async function ringWidget(nc: NatsConnection, o: Omit<RingRequest, 'invite'>, opts: { answerMs?: number; waitMs?: number } = {}): Promise<RingOutcome | undefined> {
  const invite = crypto.randomUUID().replace(/-/g, '').slice(0, 20);
  // Listen before ringing: a quick visitor answers before the ring's reply is read.
  const outcome = nc.subscribe(ringOutcomeSubject(invite), { max: 1, timeout: (opts.waitMs ?? RING_MS) + 5000 });
  try {
    const reply = await nc.request(WIDGET_RING_SUBJECT, JSON.stringify({ ...o, invite }), { timeout: opts.answerMs ?? 1500 }).catch(() => undefined);
    const rung = reply ? v.safeParse(RingReply, reply.json()) : undefined;
    if (!rung?.success || rung.output.sockets < 1) return undefined;
    for await (const m of outcome) {
      const r = v.safeParse(RingOutcome, m.json());
      return r.success ? r.output : { outcome: 'no-answer', reason: 'the widget answered something unreadable' };
    }
    return { outcome: 'no-answer', reason: 'the visitor did not answer' };
  } catch {
    // The subscription's timeout: the edge holding the widget went away while it rang.
    return { outcome: 'no-answer', reason: 'the visitor did not answer' };
  } finally {
    outcome.unsubscribe();
  }
}
