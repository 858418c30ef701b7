// What a call means to the engine: the caller resolved in the identity graph by their number (so VIPs
// are known before the menu), a voice conversation opened in the IVR's queue with its attributes, and
// the conversation told when the caller hangs up. Told to actors directly rather than through
// InboundSink.deliver: a call opens after the IVR, with the IVR's queue, attributes and language, which
// the sink's `open` does not carry.
import type { ActorClient } from '../../actors/client.ts';
import type { StoreClient } from '../../storage/client.ts';
import type { QueueExit } from '../../machines/ivr.ts';
import type { CallState } from '../../machines/conversation.ts';
import { keyOf } from '../inbound.ts';

export interface Caller {
  customer: string;
  identityId: string;
  customerRecord: string;
  tier: 'normal' | 'vip';
}

export interface VoiceEngine {
  caller(number: string, at: number): Promise<Caller>;
  open(o: { callId: string; caller: Caller; exit: QueueExit; language: string | null; at: number; account: string; number: string }): Promise<string>;
  hangup(conversationId: string, at: number): Promise<void>;
  /** An outbound call's progress, told to its conversation (durable; deduplicated per call and state). */
  progress(conversationId: string, p: { callId: string; state: CallState; reason?: string }, at: number): Promise<void>;
}

export function engineVoice(deps: { store: StoreClient; actors: Pick<ActorClient, 'tell' | 'ask'> }): VoiceEngine {
  const { store, actors } = deps;
  return {
    async caller(number, at) {
      const who = await store.resolve({ channel: 'phone', handle: number, phone: number, at });
      const customer = keyOf(who.customerId);
      const tier = await actors
        .ask<{ tier?: 'normal' | 'vip'; context?: { tier?: 'normal' | 'vip' } }>(`customer/${customer}`, { type: 'get', at }, { timeoutMs: 2000 })
        .then((c) => c.tier ?? c.context?.tier ?? 'normal')
        .catch(() => 'normal' as const);
      return { customer, identityId: who.identityId, customerRecord: who.customerId, tier };
    },
    async open({ callId, caller, exit, language, at, account, number }) {
      // The call itself is the conversation's first entry in the customer's history.
      const stored = await store.append({
        customerId: caller.customerRecord,
        identityId: caller.identityId,
        channel: 'voice',
        channelMessageId: callId,
        direction: 'in',
        text: '',
        at,
      });
      const conversation = keyOf(stored.conversationId);
      const attrs = { ...exit.attributes, callId };
      await actors.tell(
        `conversation/${conversation}`,
        { type: 'open', at, customer: caller.customer, channel: 'voice', queue: exit.queue, language: language ?? undefined, tier: caller.tier, attrs },
        { msgId: `open:${conversation}` },
      );
      await actors.tell(
        `conversation/${conversation}`,
        { type: 'customer.message', at, channel: 'voice', messageId: keyOf(stored.messageId), replyTo: { account, handle: number } },
        { msgId: `in:voice:${callId}` },
      );
      await actors.tell(`customer/${caller.customer}`, { type: 'message.inbound', channel: 'voice', at }, { msgId: `seen:voice:${callId}` });
      return conversation;
    },
    async hangup(conversationId, at) {
      const c = await actors.ask<{ value: string }>(`conversation/${conversationId}`, { type: 'get', at }, { timeoutMs: 3000 }).catch(() => undefined);
      // Answered calls end into wrap-up; anything still waiting was abandoned.
      const event = c && (c.value === 'active' || c.value === 'onHold') ? 'wrapup' : 'customer.left';
      await actors.tell(`conversation/${conversationId}`, { type: event, at }, { msgId: `hangup:${conversationId}` });
    },
    async progress(conversationId, p, at) {
      await actors.tell(`conversation/${conversationId}`, { type: 'call.progress', at, ...p }, { msgId: `call:${p.callId}:${p.state}` });
    },
  };
}
