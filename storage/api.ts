// The storage service's contract: subjects, and a valibot schema for every request and reply.
// The service parses requests with these, the client parses replies with them; both sides see the
// same reasons. Subjects carry the API version (cc.store.v1.*): a breaking change is a v2 beside v1.
import * as v from 'valibot';
import { CHANNELS } from '../machines/routing.ts';
import { IDENTITY_CHANNELS, TICKET_PRIORITIES, TICKET_STATUSES } from './schema.ts';

export const SERVICE_NAME = 'cc-store';
export const SERVICE_VERSION = '1.0.0';
export const SUBJECT_PREFIX = 'cc.store.v1';

/** A failure with an HTTP-like code (400 bad request, 404 not found, 409 conflict, 500 internal) and a reason. */
export class StoreError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'StoreError';
  }
}

const recordId = (table: string) => v.pipe(v.string(), v.regex(new RegExp(`^${table}:[A-Za-z0-9_]{1,64}$`), `must be a ${table} id (${table}:<key>)`));
export const CustomerId = recordId('customer');
export const IdentityId = recordId('identity');
export const ConversationId = recordId('conversation');
// A message's record id is [conversation, at, ulid]; outside the store it is message:<conversation key>-<at>-<ulid>.
export const MessageId = v.pipe(v.string(), v.regex(/^message:[A-Za-z0-9_]{1,64}-\d{1,16}-[0-9A-Z]{26}$/, 'must be a message id (message:<conversation>-<at>-<ulid>)'));
export const TicketId = recordId('ticket');
export const MergeId = recordId('merge');
export const SuggestionId = recordId('suggestion');

const Text = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1, 'must not be empty'), v.maxLength(max, `must be at most ${max} characters`));
const Ms = v.pipe(v.number(), v.integer('must be whole milliseconds'), v.minValue(0, 'must not be negative'));
const Limit = (max: number) => v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(max, `must be at most ${max}`)));
export const Actor = Text(128); // who did it: an agent, supervisor or system id
export const Viewer = v.picklist(['agent', 'supervisor', 'admin', 'system'], 'must be agent, supervisor, admin or system');
export const IdentityChannel = v.picklist(IDENTITY_CHANNELS, `must be one of ${IDENTITY_CHANNELS.join(', ')}`);
export const Channel = v.picklist(CHANNELS, `must be one of ${CHANNELS.join(', ')}`);
export const TagName = v.pipe(v.string(), v.trim(), v.toLowerCase(), v.regex(/^[\p{L}\p{N}][\p{L}\p{N} _.\-]{0,63}$/u, 'must be 1-64 letters, digits, spaces, _ . - (starting with a letter or digit)'));

// resolve ------------------------------------------------------------------------------------------

export const ResolveRequest = v.object({
  channel: IdentityChannel,
  handle: Text(256),
  displayName: v.optional(Text(200)),
  phone: v.optional(Text(40)),
  email: v.optional(Text(254)),
  verified: v.optional(v.object({ phone: v.optional(v.boolean()), email: v.optional(v.boolean()) })),
  at: v.optional(Ms),
});
export const Suggestion = v.object({ customerId: CustomerId, reason: v.picklist(['phone', 'email']) });
export const ResolveReply = v.object({
  customerId: CustomerId,
  identityId: IdentityId,
  created: v.boolean(),
  linkedBy: v.optional(v.picklist(['identity', 'phone', 'email'])),
  suggestions: v.array(Suggestion),
});

// append -------------------------------------------------------------------------------------------

export const Attachment = v.object({
  objectKey: Text(1024),
  contentType: Text(255),
  size: v.pipe(v.number(), v.integer(), v.minValue(0)),
  name: v.optional(Text(255)),
});
export const AppendRequest = v.pipe(
  v.object({
    customerId: CustomerId,
    conversationId: v.optional(ConversationId),
    identityId: v.optional(IdentityId),
    channel: Channel,
    channelMessageId: Text(256),
    direction: v.picklist(['in', 'out', 'system'], 'must be in, out or system'),
    author: v.optional(Text(128)),
    text: v.optional(v.pipe(v.string(), v.maxLength(100_000, 'must be at most 100000 characters'))),
    sensitive: v.optional(v.boolean()),
    subject: v.optional(Text(500)),
    at: Ms,
    attachments: v.optional(v.pipe(v.array(Attachment), v.maxLength(50, 'at most 50 attachments'))),
  }),
  v.check((r) => r.text !== undefined || (r.attachments?.length ?? 0) > 0, 'a message needs text or attachments'),
);
export const AppendReply = v.object({
  messageId: MessageId,
  conversationId: ConversationId,
  duplicate: v.boolean(),
  // What this call did (a duplicate did neither). Optional so a newer client still reads an older
  // store's replies; this store always sends them.
  /** The message started a new conversation. */
  created: v.optional(v.boolean()),
  /** The message reopened a conversation closed within the reopen window. */
  reopened: v.optional(v.boolean()),
  /** The closed conversation the message named (its thread) but was too old to reopen: it went to a new one. */
  previousConversationId: v.optional(ConversationId),
});

// conversation status -----------------------------------------------------------------------------

export const CONVERSATION_STATUSES = ['open', 'closed'] as const;
export const ConversationStatusRequest = v.object({
  conversationId: ConversationId,
  status: v.picklist(CONVERSATION_STATUSES, 'must be open or closed'),
  /** When it happened (the conversation actor's event time): older news than the stored status is ignored. */
  at: Ms,
  by: v.optional(Actor),
  disposition: v.optional(Text(1000)),
});
export const ConversationStatusReply = v.object({
  conversationId: ConversationId,
  status: v.picklist(CONVERSATION_STATUSES),
  statusAt: v.number(),
  /** False when the request was a repeat or older than the stored status (nothing written). */
  changed: v.boolean(),
});

// customer view ------------------------------------------------------------------------------------

export const ViewRequest = v.object({
  customerId: CustomerId,
  viewer: Viewer,
  limit: Limit(200),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(200))),
});
const CustomerProfile = v.object({
  id: CustomerId,
  name: v.optional(v.string()),
  phone: v.optional(v.string()),
  email: v.optional(v.string()),
  address: v.optional(v.string()),
  phoneVerified: v.boolean(),
  emailVerified: v.boolean(),
  mergedInto: v.optional(CustomerId),
  tags: v.array(v.string()),
  createdAt: v.number(),
});
export const ViewReply = v.object({
  customer: CustomerProfile,
  redirectedFrom: v.optional(CustomerId),
  identities: v.array(v.object({ id: IdentityId, channel: IdentityChannel, handle: v.string(), displayName: v.optional(v.string()), createdAt: v.number(), lastSeenAt: v.number() })),
  conversations: v.array(
    v.object({ id: ConversationId, channel: Channel, status: v.string(), subject: v.optional(v.string()), startedAt: v.number(), lastAt: v.number(), messageCount: v.number(), tags: v.array(v.string()) }),
  ),
  messages: v.array(
    v.object({
      id: MessageId,
      conversationId: ConversationId,
      channel: Channel,
      direction: v.picklist(['in', 'out', 'system']),
      author: v.optional(v.string()),
      text: v.optional(v.string()),
      sensitive: v.boolean(),
      at: v.number(),
      attachments: v.array(v.object({ objectKey: v.string(), contentType: v.string(), size: v.number(), name: v.optional(v.string()) })),
    }),
  ),
  suggestions: v.array(v.object({ id: SuggestionId, customerId: CustomerId, reason: v.picklist(['phone', 'email']) })),
  nextCursor: v.optional(v.string()),
});

// search -------------------------------------------------------------------------------------------

export const SearchRequest = v.pipe(
  v.object({
    viewer: Viewer,
    namePrefix: v.optional(Text(100)),
    phone: v.optional(Text(40)),
    email: v.optional(Text(254)),
    tag: v.optional(TagName),
    limit: Limit(100),
  }),
  v.check((r) => [r.namePrefix, r.phone, r.email, r.tag].filter((x) => x !== undefined).length === 1, 'give exactly one of namePrefix, phone, email, tag'),
);
export const SearchReply = v.object({
  customers: v.array(v.object({ id: CustomerId, name: v.optional(v.string()), phone: v.optional(v.string()), email: v.optional(v.string()), tags: v.array(v.string()) })),
});

// tickets ------------------------------------------------------------------------------------------

const Status = v.picklist(TICKET_STATUSES, `must be one of ${TICKET_STATUSES.join(', ')}`);
const Priority = v.picklist(TICKET_PRIORITIES, `must be one of ${TICKET_PRIORITIES.join(', ')}`);
export const Ticket = v.object({
  id: TicketId,
  subject: v.string(),
  status: Status,
  priority: Priority,
  assignee: v.optional(v.string()),
  customerId: v.optional(CustomerId),
  conversationIds: v.array(ConversationId),
  tags: v.array(v.string()),
  createdBy: v.string(),
  createdAt: v.number(),
  updatedAt: v.number(),
});
export const TicketCreateRequest = v.object({
  subject: Text(500),
  status: v.optional(Status),
  priority: v.optional(Priority),
  assignee: v.optional(Text(128)),
  customerId: v.optional(CustomerId),
  conversationIds: v.optional(v.pipe(v.array(ConversationId), v.maxLength(100))),
  tags: v.optional(v.pipe(v.array(TagName), v.maxLength(20))),
  by: Actor,
});
export const TicketGetRequest = v.object({ ticketId: TicketId });
export const TicketUpdateRequest = v.pipe(
  v.object({
    ticketId: TicketId,
    by: Actor,
    subject: v.optional(Text(500)),
    status: v.optional(Status),
    priority: v.optional(Priority),
    assignee: v.optional(v.nullable(Text(128))), // null unassigns
    conversationIds: v.optional(v.pipe(v.array(ConversationId), v.maxLength(100))),
    tags: v.optional(v.pipe(v.array(TagName), v.maxLength(20))),
  }),
  v.check((r) => ['subject', 'status', 'priority', 'assignee', 'conversationIds', 'tags'].some((k) => k in r), 'nothing to update'),
);
export const TicketListRequest = v.object({
  customerId: v.optional(CustomerId),
  status: v.optional(Status),
  assignee: v.optional(Text(128)),
  tag: v.optional(TagName),
  limit: Limit(200),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(200))),
});
export const TicketReply = Ticket;
export const TicketListReply = v.object({ tickets: v.array(Ticket), nextCursor: v.optional(v.string()) });

// tags ---------------------------------------------------------------------------------------------

export const TagRequest = v.object({ target: v.union([CustomerId, ConversationId], 'must be a customer or conversation id'), tag: TagName, by: Actor });
export const TagReply = v.object({ target: v.string(), tags: v.array(v.string()) });

// merges -------------------------------------------------------------------------------------------

export const MergeRequest = v.pipe(
  v.object({ survivor: CustomerId, absorbed: CustomerId, by: Actor, reason: Text(500) }),
  v.check((r) => r.survivor !== r.absorbed, 'survivor and absorbed must be different customers'),
);
const Moved = v.object({ identities: v.array(IdentityId), conversations: v.array(ConversationId), tickets: v.array(TicketId), tags: v.array(v.string()) });
export const MergeReply = v.object({ mergeId: MergeId, survivor: CustomerId, absorbed: CustomerId, moved: Moved });
export const UnmergeRequest = v.object({ mergeId: MergeId, by: Actor, reason: v.optional(Text(500)) });
export const UnmergeReply = v.object({ mergeId: MergeId, survivor: CustomerId, absorbed: CustomerId, restored: Moved });

export type ResolveRequest = v.InferInput<typeof ResolveRequest>;
export type ResolveReply = v.InferOutput<typeof ResolveReply>;
export type AppendRequest = v.InferInput<typeof AppendRequest>;
export type AppendReply = v.InferOutput<typeof AppendReply>;
export type ConversationStatusRequest = v.InferInput<typeof ConversationStatusRequest>;
export type ConversationStatusReply = v.InferOutput<typeof ConversationStatusReply>;
export type ViewRequest = v.InferInput<typeof ViewRequest>;
export type ViewReply = v.InferOutput<typeof ViewReply>;
export type SearchRequest = v.InferInput<typeof SearchRequest>;
export type SearchReply = v.InferOutput<typeof SearchReply>;
export type Ticket = v.InferOutput<typeof Ticket>;
export type TicketCreateRequest = v.InferInput<typeof TicketCreateRequest>;
export type TicketGetRequest = v.InferInput<typeof TicketGetRequest>;
export type TicketUpdateRequest = v.InferInput<typeof TicketUpdateRequest>;
export type TicketListRequest = v.InferInput<typeof TicketListRequest>;
export type TicketListReply = v.InferOutput<typeof TicketListReply>;
export type TagRequest = v.InferInput<typeof TagRequest>;
export type TagReply = v.InferOutput<typeof TagReply>;
export type MergeRequest = v.InferInput<typeof MergeRequest>;
export type MergeReply = v.InferOutput<typeof MergeReply>;
export type UnmergeRequest = v.InferInput<typeof UnmergeRequest>;
export type UnmergeReply = v.InferOutput<typeof UnmergeReply>;

/**
 * Every operation: its endpoint name (subject `cc.store.v1.<name>`), request and reply schemas.
 * The service registers one endpoint per entry; the client's methods are typed from the same table.
 */
export const OPERATIONS = {
  resolve: { request: ResolveRequest, reply: ResolveReply },
  append: { request: AppendRequest, reply: AppendReply },
  'conversation.status': { request: ConversationStatusRequest, reply: ConversationStatusReply },
  view: { request: ViewRequest, reply: ViewReply },
  search: { request: SearchRequest, reply: SearchReply },
  'ticket.create': { request: TicketCreateRequest, reply: TicketReply },
  'ticket.get': { request: TicketGetRequest, reply: TicketReply },
  'ticket.update': { request: TicketUpdateRequest, reply: TicketReply },
  'ticket.list': { request: TicketListRequest, reply: TicketListReply },
  'tag.add': { request: TagRequest, reply: TagReply },
  'tag.remove': { request: TagRequest, reply: TagReply },
  merge: { request: MergeRequest, reply: MergeReply },
  unmerge: { request: UnmergeRequest, reply: UnmergeReply },
} as const;
export type Operation = keyof typeof OPERATIONS;
export type RequestOf<O extends Operation> = v.InferInput<(typeof OPERATIONS)[O]['request']>;
export type ParsedRequestOf<O extends Operation> = v.InferOutput<(typeof OPERATIONS)[O]['request']>;
export type ReplyOf<O extends Operation> = v.InferOutput<(typeof OPERATIONS)[O]['reply']>;

/** The first issue of a failed parse as one line: "handle: must not be empty". */
export function reasonOf(issues: readonly v.BaseIssue<unknown>[]): string {
  const i = issues[0];
  const path = v.getDotPath(i);
  return path ? `${path}: ${i.message}` : i.message;
}

export function parseOrThrow<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (!r.success) throw new StoreError(400, `${what}: ${reasonOf(r.issues)}`);
  return r.output;
}
