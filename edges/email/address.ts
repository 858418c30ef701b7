// Mailboxes we accept for, and the conversation token carried in the addresses and Message-IDs we
// send, so a customer's reply finds its conversation even when their mail client drops the headers.
//   Reply-To:   support+c-<conversationId>@example.test   (plus addressing)
//   Message-ID: <c-<conversationId>.<messageId>@example.test>
// Ids outside [A-Za-z0-9_-] are hex-encoded with an "x-" prefix, so any id survives the trip.
import * as v from 'valibot';

export const EmailAccountSchema = v.object({
  address: v.pipe(v.string(), v.trim(), v.toLowerCase(), v.email('account must be an email address such as support@example.test'), v.check((a) => !a.split('@')[0].includes('+'), 'account must not contain "+" (it carries the conversation token)')),
  /** Display name on mail we send from it. */
  name: v.optional(v.pipe(v.string(), v.maxLength(100))),
});
export type EmailAccount = v.InferOutput<typeof EmailAccountSchema>;

export const EmailAccountsSchema = v.pipe(
  v.array(v.union([v.pipe(v.string(), v.transform((address) => ({ address }))), v.object({ address: v.string(), name: v.optional(v.string()) })])),
  v.minLength(1, 'at least one email account (mailbox) is needed'),
  v.array(EmailAccountSchema),
);

const SAFE = /^[A-Za-z0-9_-]{1,100}$/;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function hex(s: string): string {
  return Array.from(enc.encode(s), (b) => b.toString(16).padStart(2, '0')).join('');
}

function unhex(h: string): string | undefined {
  if (!/^(?:[0-9a-f]{2})+$/i.test(h)) return undefined;
  const bytes = new Uint8Array(h.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  try {
    return dec.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The token for a conversation id: `c-<id>` when the id is address-safe, else `x-<hex>`. */
export function conversationToken(conversationId: string): string {
  return SAFE.test(conversationId) ? `c-${conversationId}` : `x-${hex(conversationId)}`;
}

export function tokenConversation(token: string): string | undefined {
  if (token.startsWith('c-') && SAFE.test(token.slice(2))) return token.slice(2);
  if (token.startsWith('x-')) return unhex(token.slice(2));
  return undefined;
}

function split(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase() };
}

/** Which of our mailboxes an envelope recipient is, and the conversation its plus-tag names. */
export function parseRecipient(address: string, accounts: ReadonlySet<string>): { account: string; conversationId?: string } | undefined {
  const parts = split(address.trim());
  if (!parts) return undefined;
  const plus = parts.local.indexOf('+');
  const base = (plus < 0 ? parts.local : parts.local.slice(0, plus)).toLowerCase();
  const account = `${base}@${parts.domain}`;
  if (!accounts.has(account)) return undefined;
  const conversationId = plus < 0 ? undefined : tokenConversation(parts.local.slice(plus + 1));
  return conversationId ? { account, conversationId } : { account };
}

/** support@example.test + conversation → support+c-<id>@example.test */
export function replyAddress(account: string, conversationId: string): string {
  const p = split(account);
  if (!p) throw new Error(`not an email address: ${account}`);
  return `${p.local}+${conversationToken(conversationId)}@${p.domain}`;
}

/** Message-ID of a reply we send: names the conversation and our message id. */
export function outboundMessageId(account: string, conversationId: string, messageId: string): string {
  const p = split(account);
  if (!p) throw new Error(`not an email address: ${account}`);
  const m = SAFE.test(messageId) ? messageId : `x${hex(messageId)}`;
  return `<${conversationToken(conversationId)}.${m}@${p.domain}>`;
}

/** The conversation a Message-ID of ours names (only for our domains), else undefined. */
export function messageIdConversation(messageId: string, domains: ReadonlySet<string>): string | undefined {
  const m = /^<?([cx]-[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+@([^>\s]+)>?$/.exec(messageId.trim());
  if (!m || !domains.has(m[2].toLowerCase())) return undefined;
  return tokenConversation(m[1]);
}

export function domainOf(address: string): string {
  return split(address)?.domain ?? '';
}
