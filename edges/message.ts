// The one message model every channel edge speaks: inbound messages from a channel's wire format,
// outbound replies to it, and delivery states coming back. A conversation never sees a wire format.
import * as v from 'valibot';
import { ChannelSchema } from '../machines/routing.ts';

const Text = v.pipe(v.string(), v.minLength(1));
const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(512));

/** A file that came with a message, already in the object store (the edge puts it there first). */
export const AttachmentSchema = v.object({
  /** Object store key (storage/blobs). */
  key: Id,
  name: v.pipe(v.string(), v.maxLength(255)),
  contentType: v.pipe(v.string(), v.regex(/^[\w.+-]+\/[\w.+-]+$/, 'must be a MIME type such as image/png')),
  size: v.pipe(v.number(), v.integer(), v.minValue(0)),
  sha256: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
});
export type Attachment = v.InferOutput<typeof AttachmentSchema>;

/** What the customer is on this channel, as the channel names them. */
export const SenderSchema = v.object({
  /** The channel's own handle: phone number, email address, openid, visitor id, app user id… */
  handle: Id,
  displayName: v.optional(v.pipe(v.string(), v.maxLength(200))),
  /** Contact points the channel vouches for (e.g. an app user's verified phone), for linking across channels. */
  phone: v.optional(v.string()),
  email: v.optional(v.string()),
  verified: v.optional(v.object({ phone: v.optional(v.boolean()), email: v.optional(v.boolean()) })),
});
export type Sender = v.InferOutput<typeof SenderSchema>;

export const InboundMessageSchema = v.object({
  channel: ChannelSchema,
  /** The channel account it arrived on (a WeCom corp app, an SMS number, a mailbox, a web chat site). */
  account: Id,
  /** The channel's id of this message: a second delivery with the same id is applied once. */
  channelMessageId: Id,
  from: SenderSchema,
  text: v.optional(v.pipe(v.string(), v.maxLength(100_000))),
  /** Formatted body where the channel has one (email HTML), kept beside the text. */
  html: v.optional(v.string()),
  attachments: v.optional(v.array(AttachmentSchema), []),
  /** When the channel says it was sent (ms since epoch). */
  sentAt: v.number(),
  /** Hints that tie it to an existing thread: email Message-ID/In-Reply-To/References, a conversation token. */
  thread: v.optional(
    v.object({
      messageId: v.optional(v.string()),
      inReplyTo: v.optional(v.string()),
      references: v.optional(v.array(v.string())),
      conversationId: v.optional(v.string()),
      subject: v.optional(v.string()),
    }),
  ),
  /** Channel facts worth keeping (SPF/DKIM results, SMSC ids…), never secrets. */
  meta: v.optional(v.record(v.string(), v.union([v.string(), v.number(), v.boolean()])), {}),
});
export type InboundMessage = v.InferOutput<typeof InboundMessageSchema>;

export const OutboundMessageSchema = v.object({
  channel: ChannelSchema,
  account: Id,
  conversationId: Id,
  /** Our id of this message: the edge's idempotency key and the key of its delivery states. */
  messageId: Id,
  to: v.object({ handle: Id, displayName: v.optional(v.string()) }),
  text: v.optional(v.string()),
  html: v.optional(v.string()),
  attachments: v.optional(v.array(AttachmentSchema), []),
  thread: v.optional(
    v.object({
      inReplyTo: v.optional(v.string()),
      references: v.optional(v.array(v.string())),
      subject: v.optional(v.string()),
      /** The first message of a conversation we open (outreach): its subject is not a reply's. */
      opens: v.optional(v.boolean()),
    }),
  ),
});
export type OutboundMessage = v.InferOutput<typeof OutboundMessageSchema>;

export const DELIVERY_STATES = ['queued', 'sent', 'delivered', 'read', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export const DeliveryUpdateSchema = v.object({
  messageId: Id,
  conversationId: v.optional(Id),
  channel: ChannelSchema,
  state: v.picklist(DELIVERY_STATES),
  at: v.number(),
  /** Why it failed, in words an agent can act on. */
  reason: v.optional(v.string()),
  /** Failed for good (bad address, opted out) or worth another try later. */
  permanent: v.optional(v.boolean()),
  /** The channel's id of what was sent (SMSC message id, SMTP queue id…). */
  channelMessageId: v.optional(v.string()),
});
export type DeliveryUpdate = v.InferOutput<typeof DeliveryUpdateSchema>;

/** Where an edge hands what it received; the engine resolves the customer and the conversation. */
export interface InboundSink {
  deliver(msg: InboundMessage): Promise<{ conversationId: string; duplicate: boolean }>;
  delivery(update: DeliveryUpdate): Promise<void>;
}

/** What every edge offers the engine for replies. */
export interface Edge {
  readonly channel: v.InferOutput<typeof ChannelSchema>;
  /** Sends one reply; resolves with the first delivery state (sent or failed), later states go to the sink. */
  send(msg: OutboundMessage): Promise<DeliveryUpdate>;
  close(): Promise<void>;
}

/** Validates a reply handed to one channel's edge; a bad one is an EdgeRejection naming the field. */
export function parseOutbound(input: unknown, channel: v.InferOutput<typeof ChannelSchema>): OutboundMessage {
  const r = v.safeParse(OutboundMessageSchema, input);
  if (!r.success) {
    const issue = r.issues[0];
    throw new EdgeRejection(400, `outbound ${channel}: ${issue.path?.map((p) => String(p.key)).join('.') ?? 'message'}: ${issue.message}`);
  }
  if (r.output.channel !== channel) throw new EdgeRejection(400, `outbound ${channel}: channel is ${r.output.channel}, not ${channel}`);
  return r.output;
}

/**
 * Sends each reply once: a second send of the same message id answers with the first one's outcome
 * (the latest 10,000 are remembered), so a redelivered reply never reaches the customer twice.
 */
export function oncePerMessage(send: (msg: OutboundMessage) => Promise<DeliveryUpdate>, remember = 10_000): (msg: OutboundMessage) => Promise<DeliveryUpdate> {
  const sent = new Map<string, Promise<DeliveryUpdate>>();
  return (msg) => {
    const known = sent.get(msg.messageId);
    if (known) return known;
    const p = send(msg);
    sent.set(msg.messageId, p);
    if (sent.size > remember) sent.delete(sent.keys().next().value as string);
    return p;
  };
}

/** A clear, typed rejection of bad input at an edge: the HTTP status or protocol code and the reason. */
export class EdgeRejection extends Error {
  constructor(
    readonly status: number,
    reason: string,
  ) {
    super(reason);
  }
}
