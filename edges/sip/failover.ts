// Channel failover for callers nobody can answer: the IVR asks (through the edge) whether anyone in the
// queue can take the call; if not, and the caller accepts the offer, the call's conversation continues by
// SMS and web chat. The conversation is the call's: the call is its first entry in the customer's history,
// then the SMS with the chat link, sent as the conversation's own message (`system.reply` → cc.out.sms →
// the SMS edge), and it waits in the digital queue for an agent who takes chats. Its store record is an
// SMS conversation, so a reply by SMS from the same number lands in it too; the link (a signed token,
// edges/webchat/link.ts) opens it in web chat.
import type { ActorClient } from '../../actors/client.ts';
import type { StoreClient } from '../../storage/client.ts';
import { CHAT_LINK_TTL_SEC, signChatLink } from '../webchat/link.ts';
import { keyOf } from '../inbound.ts';
import { announceLanguage } from './announce.ts';
import type { Caller } from './voice.ts';

export interface Staffing {
  staffed: boolean;
  /** Why nobody can take the call (logs, the IVR's `unstaffed`). */
  reason?: string;
}

export interface FailoverEngine {
  /** Whether anyone in the queue can take a call now or soon (an agent with voice capacity on duty). */
  staffing(queue: string, at: number): Promise<Staffing>;
  /** Moves the call's conversation to SMS and web chat and sends the link; returns the conversation id. */
  continueOn(o: { callId: string; caller: Caller; number: string; language: string | null; attrs: Record<string, string | number | boolean>; callAt: number; at: number }): Promise<{ conversationId: string; messageId: string; text: string }>;
}

/** Only numbers can get an SMS: the caller id must be one. */
export const isPhoneNumber = (s: string) => /^\+?[0-9]{3,20}$/.test(s);

export interface FailoverSettings {
  store: StoreClient;
  actors: Pick<ActorClient, 'tell' | 'ask'>;
  /** Our SMS sender (an SMS_ACCOUNTS entry). */
  smsAccount: string;
  /** Where the conversation waits once it is a chat (CHANNEL_QUEUES' sms queue). */
  queue: string;
  /** Web chat links: the page with the widget (the token goes in `cc_link`) and the signing secret. */
  link: { url: string; secret: string; ttlSec?: number };
}

/** The SMS the caller gets, in the call's language. */
export function failoverText(language: string | null, url: string): string {
  return announceLanguage(language) === 'zh'
    ? `抱歉未能接听您的来电。点击链接继续在线交流：${url} 也可直接回复本短信。`
    : `Sorry we could not take your call. Continue in chat: ${url} or reply to this message.`;
}

export function engineFailover(s: FailoverSettings): FailoverEngine {
  return {
    async staffing(queue, at) {
      const r = await s.actors.ask<{ onDuty?: number; free?: number }>(`queue/${queue}`, { type: 'staffing', channel: 'voice', at }, { timeoutMs: 2000 });
      return (r.onDuty ?? 0) > 0 ? { staffed: true } : { staffed: false, reason: `no agent with voice capacity on duty in queue ${queue}` };
    },

    async continueOn({ callId, caller, number, language, attrs, callAt, at }) {
      // The conversation is made by its first stored message, the SMS: a fresh id, unless this call's SMS
      // was stored already (a retry), whose conversation it then is.
      const linkOf = async (conversationId: string) => {
        const token = await signChatLink(s.link.secret, { conversationId, phone: number, expSec: Math.floor(at / 1000) + (s.link.ttlSec ?? CHAT_LINK_TTL_SEC) });
        const u = new URL(s.link.url);
        u.searchParams.set('cc_link', token);
        return u.toString();
      };
      const fresh = crypto.randomUUID().replace(/-/g, '');
      const channelMessageId = `failover:${callId}`;
      let text = failoverText(language, await linkOf(fresh));
      const sms = await s.store.append({ customerId: caller.customerRecord, identityId: caller.identityId, conversationId: `conversation:${fresh}`, channel: 'sms', channelMessageId, direction: 'out', author: 'system', text, at });
      const conversationId = keyOf(sms.conversationId);
      if (conversationId !== fresh) text = failoverText(language, await linkOf(conversationId));
      // The call itself, at the time it came in: the history reads call, then SMS.
      await s.store.append({ customerId: caller.customerRecord, identityId: caller.identityId, conversationId: `conversation:${conversationId}`, channel: 'voice', channelMessageId: callId, direction: 'in', text: '', at: callAt });
      const messageId = `failover-${conversationId}`;
      const to = `conversation/${conversationId}`;
      await s.actors.tell(
        to,
        {
          type: 'open',
          at,
          customer: caller.customer,
          channel: 'sms',
          queue: s.queue,
          language: announceLanguage(language),
          tier: caller.tier,
          attrs: { ...attrs, callId, failoverFrom: 'voice' },
          replyTo: { account: s.smsAccount, handle: number },
        },
        { msgId: `open:${conversationId}` },
      );
      await s.actors.tell(to, { type: 'system.reply', at, messageId, channel: 'sms', text }, { msgId: `failover:${conversationId}` });
      await s.actors.tell(`customer/${caller.customer}`, { type: 'message.inbound', channel: 'voice', at: callAt }, { msgId: `seen:voice:${callId}` });
      return { conversationId, messageId, text };
    },
  };
}
