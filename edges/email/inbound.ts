// A received mail (raw RFC 5322 bytes plus the SMTP envelope) → the canonical InboundMessage:
// threading hints, text and HTML, attachments put into the object store under the attachment
// policy, SPF/DKIM/DMARC verdicts the receiving MTA recorded. Refusals are EdgeRejections carrying
// the SMTP reply code (552 too big, 554 type not accepted, 550 no usable sender).
import * as v from 'valibot';
import { simpleParser, type ParsedMail, type Attachment as MailAttachment } from 'mailparser';
import { EdgeRejection, InboundMessageSchema, type Attachment, type InboundMessage } from '../message.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { messageIdConversation } from './address.ts';

export interface AttachmentPolicy {
  /** Largest single attachment (bytes). */
  maxBytes: number;
  /** Most attachments in one mail. */
  maxCount: number;
  /** When set, only these types (`image/png`, or `image/*`) are accepted. */
  allow?: string[];
  /** Types refused even when allowed. */
  deny: string[];
  /** File-name extensions refused whatever the declared type (senders lie about types). */
  denyExtensions: string[];
}

export const DEFAULT_ATTACHMENT_POLICY: AttachmentPolicy = {
  maxBytes: 10 * 1024 * 1024,
  maxCount: 20,
  deny: [
    'application/x-msdownload', 'application/x-msdos-program', 'application/x-dosexec', 'application/x-executable',
    'application/vnd.microsoft.portable-executable', 'application/x-sh', 'application/x-bat', 'application/x-msi',
    'application/x-ms-installer', 'application/java-archive', 'application/hta', 'application/javascript',
    'application/x-javascript', 'text/javascript', 'application/x-ms-shortcut',
  ],
  denyExtensions: ['exe', 'com', 'bat', 'cmd', 'scr', 'pif', 'msi', 'js', 'jse', 'vbs', 'vbe', 'wsf', 'hta', 'jar', 'ps1', 'cpl', 'lnk', 'dll'],
};

/** Largest text kept in the message itself (the schema's limit); the full mail stays in the store. */
const MAX_TEXT = 100_000;
const MIME = /^[\w.+-]+\/[\w.+-]+$/;

export interface Envelope {
  /** Our mailbox it came to (first of ours among the recipients). */
  account: string;
  /** From the plus-address token, when a recipient carried one. */
  conversationId?: string;
  /** Our other mailboxes among the recipients. */
  alsoTo: string[];
  /** SMTP MAIL FROM, for the record. */
  mailFrom?: string;
}

export interface ParseOptions {
  blobs: BlobStore;
  policy: AttachmentPolicy;
  /** Our mail domains: Message-IDs at them name conversations. */
  domains: ReadonlySet<string>;
  now?: () => number;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A file name fit for an object-store key segment. */
export function safeName(name: string | undefined): string {
  const cleaned = (name ?? '')
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._=+-]+/g, '_')
    .replace(/^[._]+/, '')
    .slice(-100);
  return cleaned || 'attachment';
}

function typeMatches(type: string, pattern: string): boolean {
  return pattern.endsWith('/*') ? type.startsWith(pattern.slice(0, -1)) : type === pattern;
}

/** Why the policy refuses this attachment, with the SMTP code, or undefined when it is fine. */
export function attachmentProblem(a: { filename?: string; contentType: string; size: number }, policy: AttachmentPolicy): EdgeRejection | undefined {
  const label = JSON.stringify(a.filename ?? '(unnamed)');
  if (a.size > policy.maxBytes) return new EdgeRejection(552, `attachment ${label} is ${a.size} bytes, over the ${policy.maxBytes} byte limit per attachment`);
  const type = a.contentType.toLowerCase();
  const ext = /\.([A-Za-z0-9]+)$/.exec(a.filename ?? '')?.[1]?.toLowerCase();
  if (ext && policy.denyExtensions.includes(ext)) return new EdgeRejection(554, `attachment ${label}: .${ext} files are not accepted`);
  if (policy.deny.some((p) => typeMatches(type, p))) return new EdgeRejection(554, `attachment ${label}: type ${type} is not accepted`);
  if (policy.allow && !policy.allow.some((p) => typeMatches(type, p))) return new EdgeRejection(554, `attachment ${label}: type ${type} is not accepted (accepted: ${policy.allow.join(', ')})`);
  return undefined;
}

/** SPF / DKIM / DMARC verdicts from Authentication-Results and Received-SPF, and whether a DKIM signature is present. */
export function authVerdicts(headerLines: ReadonlyArray<{ key: string; line: string }>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const { key, line } of headerLines) {
    const value = line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ');
    if (key === 'authentication-results') {
      // Only the first (topmost) verdict per method counts: it is the one our own MTA added.
      for (const m of value.matchAll(/\b(spf|dkim|dmarc)\s*=\s*([a-z]+)/gi)) {
        const method = m[1].toLowerCase();
        if (!(method in out)) out[method] = m[2].toLowerCase();
      }
    } else if (key === 'received-spf' && !('spf' in out)) {
      const m = /^\s*([a-z]+)/i.exec(value);
      if (m) out.spf = m[1].toLowerCase();
    } else if (key === 'dkim-signature') {
      out.dkimSigned = true;
    }
  }
  return out;
}

function references(p: ParsedMail): string[] | undefined {
  if (!p.references) return undefined;
  const list = (Array.isArray(p.references) ? p.references : [p.references]).flatMap((r) => r.split(/\s+/)).filter(Boolean);
  return list.length ? list : undefined;
}

async function storeAttachment(blobs: BlobStore, a: MailAttachment): Promise<Attachment> {
  const bytes = new Uint8Array(a.content.buffer, a.content.byteOffset, a.content.byteLength);
  const sha256 = await sha256Hex(bytes);
  const name = safeName(a.filename ?? (a.cid ? `inline-${a.cid}` : undefined));
  const declared = a.contentType.toLowerCase();
  const contentType = MIME.test(declared) ? declared : 'application/octet-stream';
  // Content-addressed: the same file sent twice is stored once.
  const key = `attachments/${sha256}/${name}`;
  await blobs.put(key, bytes, { contentType, size: bytes.byteLength });
  return { key, name: (a.filename ?? name).slice(0, 255), contentType, size: bytes.byteLength, sha256 };
}

/** Parses and checks a received mail, stores its attachments and the raw mail, and builds the InboundMessage. */
export async function mailToInbound(raw: Uint8Array, env: Envelope, opts: ParseOptions): Promise<InboundMessage> {
  let parsed: ParsedMail;
  try {
    parsed = await simpleParser(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), { keepCidLinks: true, skipTextToHtml: true });
  } catch (e) {
    throw new EdgeRejection(554, `malformed message: ${(e as Error).message}`);
  }
  const sender = parsed.from?.value.find((a) => a.address);
  if (!sender?.address || !/^[^@\s]+@[^@\s]+$/.test(sender.address)) throw new EdgeRejection(550, 'message has no usable From address');
  if (parsed.attachments.length > opts.policy.maxCount) {
    throw new EdgeRejection(552, `message has ${parsed.attachments.length} attachments, over the limit of ${opts.policy.maxCount}`);
  }
  // Check every attachment before storing any, so a refused mail leaves nothing behind.
  for (const a of parsed.attachments) {
    const problem = attachmentProblem(a, opts.policy);
    if (problem) throw problem;
  }
  const rawSha = await sha256Hex(raw);
  const rawKey = `mail/${rawSha.slice(0, 2)}/${rawSha}.eml`;
  await opts.blobs.put(rawKey, raw, { contentType: 'message/rfc822', size: raw.byteLength });
  const attachments: Attachment[] = [];
  for (const a of parsed.attachments) attachments.push(await storeAttachment(opts.blobs, a));

  const messageId = parsed.messageId && parsed.messageId.length <= 500 ? parsed.messageId : undefined;
  const refs = references(parsed);
  const conversationId =
    env.conversationId ??
    (parsed.inReplyTo ? messageIdConversation(parsed.inReplyTo, opts.domains) : undefined) ??
    [...(refs ?? [])].reverse().map((r) => messageIdConversation(r, opts.domains)).find(Boolean);
  let text = parsed.text;
  const meta: Record<string, string | number | boolean> = { rawKey, size: raw.byteLength, ...authVerdicts(parsed.headerLines) };
  if (text && text.length > MAX_TEXT) {
    text = text.slice(0, MAX_TEXT);
    meta.textTruncated = true;
  }
  if (env.alsoTo.length) meta.alsoTo = env.alsoTo.join(',');
  if (env.mailFrom) meta.mailFrom = env.mailFrom;
  const sentAt = parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date.getTime() : (opts.now ?? Date.now)();

  const candidate = {
    channel: 'email',
    account: env.account,
    // A mail without a Message-ID is named by its bytes, so a resend of the same bytes is still one message.
    channelMessageId: messageId ?? `sha256:${rawSha}`,
    from: {
      handle: sender.address.toLowerCase(),
      email: sender.address.toLowerCase(),
      ...(sender.name ? { displayName: sender.name.slice(0, 200) } : {}),
    },
    text,
    html: parsed.html || undefined,
    attachments,
    sentAt,
    thread: {
      messageId,
      inReplyTo: parsed.inReplyTo,
      references: refs,
      conversationId,
      subject: parsed.subject,
    },
    meta,
  };
  const r = v.safeParse(InboundMessageSchema, candidate);
  if (!r.success) {
    const issue = r.issues[0];
    throw new EdgeRejection(554, `message not acceptable: ${issue.path?.map((p) => String(p.key)).join('.') ?? 'message'}: ${issue.message}`);
  }
  return r.output;
}
