// The identity graph's schema in SurrealQL, applied by storage/migrations.ts.
//
// Tables (all SCHEMAFULL; times are whole milliseconds since the epoch, like `at` on every event):
// - customer: profile. phone, email and address are sealed (FieldCipher.seal, AES-256-GCM with the key id
//   inside the value); phone_hash / email_hash are keyed hashes (FieldCipher.lookupHash) with an index, so a
//   lookup by phone or email never decrypts. *_verified says whether the value was proven (OTP, carrier).
//   A customer absorbed by a merge keeps its record with merged_into = the survivor.
// - identity: one handle on one channel kind (`channel` + handle). Unique on (channel, handle_hash) for every
//   channel, so the rule holds for sealed handles too: phone and email handles live only in handle_sealed,
//   other handles (open ids, visitor ids: not personal data) in clear in `handle`, all hashed the same way.
// - identifies: relation identity -> customer, unique on `in` (an identity names exactly one customer).
// - conversation: belongs to a customer (moved by merges); last_at orders the customer view's summaries.
// - message: its record id is [conversation, at, ulid], so a conversation's messages are one contiguous
//   key range in time order: the customer view reads each conversation's newest messages with one range
//   scan instead of one random read per message (3x faster on 2M messages), and a merge, which moves
//   conversations, never touches messages. Unique on (channel, channel_message_id): an append repeated
//   by a retry or a redelivery is stored once.
//   Text marked sensitive lives sealed in text_sealed, never in `text`.
// - attachment: metadata of an object in object storage (object_key), linked from its message.
// - ticket, tag, tagged (customer|conversation -> tag, unique pair), suggestion (possible same person,
//   shown to agents, never merged without one), merge (what a merge moved, so unmerge restores exactly that),
//   audit (who merged or unmerged what, when, why).
import type { RotationTarget } from './rotation.ts';
import { CHANNELS } from '../machines/routing.ts';

/** Kinds of identity handle; phone and email handles are personal data and stored sealed. */
export const IDENTITY_CHANNELS = ['phone', 'email', 'wecom', 'wechat_openid', 'wechat_unionid', 'dingtalk', 'douyin', 'xiaohongshu', 'web', 'app'] as const;
export type IdentityChannel = (typeof IDENTITY_CHANNELS)[number];
export const SEALED_HANDLE_CHANNELS: readonly IdentityChannel[] = ['phone', 'email'];

export const TICKET_STATUSES = ['open', 'pending', 'solved', 'closed'] as const;
export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;

/** Every field that holds sealed values, for key rotation (storage/rotation.ts). */
export const SEALED_FIELDS: RotationTarget[] = [
  { table: 'customer', fields: ['phone', 'email', 'address'] },
  { table: 'identity', fields: ['handle_sealed'] },
  { table: 'message', fields: ['text_sealed'] },
];

const list = (xs: readonly string[]) => `[${xs.map((x) => `'${x}'`).join(', ')}]`;

/** Version 1: every table, field and index. Each statement is IF NOT EXISTS, so a re-run changes nothing. */
export const SCHEMA_V1 = `
DEFINE TABLE IF NOT EXISTS customer SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS name ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS name_lc ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS phone ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS phone_hash ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS phone_verified ON customer TYPE bool DEFAULT false;
DEFINE FIELD IF NOT EXISTS email ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS email_hash ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS email_verified ON customer TYPE bool DEFAULT false;
DEFINE FIELD IF NOT EXISTS address ON customer TYPE option<string>;
DEFINE FIELD IF NOT EXISTS merged_into ON customer TYPE option<record<customer>>;
DEFINE FIELD IF NOT EXISTS created_at ON customer TYPE int;
DEFINE FIELD IF NOT EXISTS updated_at ON customer TYPE int;
DEFINE INDEX IF NOT EXISTS customer_phone ON customer FIELDS phone_hash;
DEFINE INDEX IF NOT EXISTS customer_email ON customer FIELDS email_hash;
DEFINE INDEX IF NOT EXISTS customer_name ON customer FIELDS name_lc;

DEFINE TABLE IF NOT EXISTS identity SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS channel ON identity TYPE string ASSERT $value IN ${list(IDENTITY_CHANNELS)};
DEFINE FIELD IF NOT EXISTS handle ON identity TYPE option<string>;
DEFINE FIELD IF NOT EXISTS handle_sealed ON identity TYPE option<string>;
DEFINE FIELD IF NOT EXISTS handle_hash ON identity TYPE string;
DEFINE FIELD IF NOT EXISTS display_name ON identity TYPE option<string>;
DEFINE FIELD IF NOT EXISTS created_at ON identity TYPE int;
DEFINE FIELD IF NOT EXISTS last_seen_at ON identity TYPE int;
DEFINE INDEX IF NOT EXISTS identity_handle ON identity FIELDS channel, handle_hash UNIQUE;

DEFINE TABLE IF NOT EXISTS identifies TYPE RELATION IN identity OUT customer SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS at ON identifies TYPE int;
DEFINE FIELD IF NOT EXISTS by ON identifies TYPE string;
DEFINE INDEX IF NOT EXISTS identifies_in ON identifies FIELDS in UNIQUE;
DEFINE INDEX IF NOT EXISTS identifies_out ON identifies FIELDS out;

DEFINE TABLE IF NOT EXISTS conversation SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS customer ON conversation TYPE record<customer>;
DEFINE FIELD IF NOT EXISTS channel ON conversation TYPE string ASSERT $value IN ${list(CHANNELS)};
DEFINE FIELD IF NOT EXISTS identity ON conversation TYPE option<record<identity>>;
DEFINE FIELD IF NOT EXISTS subject ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS status ON conversation TYPE string ASSERT $value IN ['open', 'closed'];
DEFINE FIELD IF NOT EXISTS started_at ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS last_at ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS message_count ON conversation TYPE int DEFAULT 0;
DEFINE INDEX IF NOT EXISTS conversation_customer ON conversation FIELDS customer, last_at;

DEFINE TABLE IF NOT EXISTS message SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS conversation ON message TYPE record<conversation>;
DEFINE FIELD IF NOT EXISTS channel ON message TYPE string ASSERT $value IN ${list(CHANNELS)};
DEFINE FIELD IF NOT EXISTS channel_message_id ON message TYPE string;
DEFINE FIELD IF NOT EXISTS direction ON message TYPE string ASSERT $value IN ['in', 'out'];
DEFINE FIELD IF NOT EXISTS author ON message TYPE option<string>;
DEFINE FIELD IF NOT EXISTS text ON message TYPE option<string>;
DEFINE FIELD IF NOT EXISTS text_sealed ON message TYPE option<string>;
DEFINE FIELD IF NOT EXISTS attachments ON message TYPE array<record<attachment>> DEFAULT [];
DEFINE FIELD IF NOT EXISTS at ON message TYPE int;
DEFINE INDEX IF NOT EXISTS message_channel_id ON message FIELDS channel, channel_message_id UNIQUE;

DEFINE TABLE IF NOT EXISTS attachment SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS message ON attachment TYPE option<record<message>>;
DEFINE FIELD IF NOT EXISTS object_key ON attachment TYPE string;
DEFINE FIELD IF NOT EXISTS content_type ON attachment TYPE string;
DEFINE FIELD IF NOT EXISTS size ON attachment TYPE int;
DEFINE FIELD IF NOT EXISTS name ON attachment TYPE option<string>;
DEFINE FIELD IF NOT EXISTS created_at ON attachment TYPE int;

DEFINE TABLE IF NOT EXISTS ticket SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS subject ON ticket TYPE string;
DEFINE FIELD IF NOT EXISTS status ON ticket TYPE string ASSERT $value IN ${list(TICKET_STATUSES)};
DEFINE FIELD IF NOT EXISTS priority ON ticket TYPE string ASSERT $value IN ${list(TICKET_PRIORITIES)};
DEFINE FIELD IF NOT EXISTS assignee ON ticket TYPE option<string>;
DEFINE FIELD IF NOT EXISTS customer ON ticket TYPE option<record<customer>>;
DEFINE FIELD IF NOT EXISTS conversations ON ticket TYPE array<record<conversation>> DEFAULT [];
DEFINE FIELD IF NOT EXISTS tags ON ticket TYPE array<string> DEFAULT [];
DEFINE FIELD IF NOT EXISTS created_by ON ticket TYPE string;
DEFINE FIELD IF NOT EXISTS created_at ON ticket TYPE int;
DEFINE FIELD IF NOT EXISTS updated_at ON ticket TYPE int;
DEFINE INDEX IF NOT EXISTS ticket_customer ON ticket FIELDS customer;
DEFINE INDEX IF NOT EXISTS ticket_assignee ON ticket FIELDS assignee;
DEFINE INDEX IF NOT EXISTS ticket_status ON ticket FIELDS status, updated_at;

DEFINE TABLE IF NOT EXISTS tag SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS name ON tag TYPE string;
DEFINE FIELD IF NOT EXISTS created_at ON tag TYPE int;

DEFINE TABLE IF NOT EXISTS tagged TYPE RELATION IN customer | conversation OUT tag SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS at ON tagged TYPE int;
DEFINE FIELD IF NOT EXISTS by ON tagged TYPE string;
DEFINE INDEX IF NOT EXISTS tagged_pair ON tagged FIELDS in, out UNIQUE;
DEFINE INDEX IF NOT EXISTS tagged_out ON tagged FIELDS out;

DEFINE TABLE IF NOT EXISTS suggestion SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS customer ON suggestion TYPE record<customer>;
DEFINE FIELD IF NOT EXISTS candidate ON suggestion TYPE record<customer>;
DEFINE FIELD IF NOT EXISTS reason ON suggestion TYPE string ASSERT $value IN ['phone', 'email'];
DEFINE FIELD IF NOT EXISTS status ON suggestion TYPE string ASSERT $value IN ['open', 'merged', 'dismissed'];
DEFINE FIELD IF NOT EXISTS created_at ON suggestion TYPE int;
DEFINE INDEX IF NOT EXISTS suggestion_pair ON suggestion FIELDS customer, candidate, reason UNIQUE;
DEFINE INDEX IF NOT EXISTS suggestion_candidate ON suggestion FIELDS candidate;

DEFINE TABLE IF NOT EXISTS merge SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS survivor ON merge TYPE record<customer>;
DEFINE FIELD IF NOT EXISTS absorbed ON merge TYPE record<customer>;
DEFINE FIELD IF NOT EXISTS identities ON merge TYPE array<record<identity>>;
DEFINE FIELD IF NOT EXISTS conversations ON merge TYPE array<record<conversation>>;
DEFINE FIELD IF NOT EXISTS tickets ON merge TYPE array<record<ticket>>;
DEFINE FIELD IF NOT EXISTS tags_added ON merge TYPE array<record<tag>>;
DEFINE FIELD IF NOT EXISTS by ON merge TYPE string;
DEFINE FIELD IF NOT EXISTS reason ON merge TYPE string;
DEFINE FIELD IF NOT EXISTS at ON merge TYPE int;
DEFINE FIELD IF NOT EXISTS undone_at ON merge TYPE option<int>;
DEFINE FIELD IF NOT EXISTS undone_by ON merge TYPE option<string>;
DEFINE INDEX IF NOT EXISTS merge_survivor ON merge FIELDS survivor;
DEFINE INDEX IF NOT EXISTS merge_absorbed ON merge FIELDS absorbed;

DEFINE TABLE IF NOT EXISTS audit SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS action ON audit TYPE string;
DEFINE FIELD IF NOT EXISTS by ON audit TYPE string;
DEFINE FIELD IF NOT EXISTS subject ON audit TYPE array<record>;
DEFINE FIELD IF NOT EXISTS detail ON audit TYPE object FLEXIBLE;
DEFINE FIELD IF NOT EXISTS at ON audit TYPE int;
DEFINE INDEX IF NOT EXISTS audit_subject ON audit FIELDS subject;
`;

/**
 * Version 2: a conversation's status history in the graph. The conversation actor's close and reopen
 * reach the store (storage/events.ts) as `conversation.status`; status_at orders those changes so a late
 * or repeated one never undoes a newer one, and closed_at decides whether a customer's next message
 * reopens the conversation or starts a new one. Rows from version 1 get status_at = started_at.
 */
export const SCHEMA_V2 = `
DEFINE FIELD IF NOT EXISTS status_at ON conversation TYPE option<int>;
DEFINE FIELD IF NOT EXISTS closed_at ON conversation TYPE option<int>;
DEFINE FIELD IF NOT EXISTS closed_by ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS disposition ON conversation TYPE option<string>;
DEFINE INDEX IF NOT EXISTS conversation_channel_status ON conversation FIELDS customer, channel, status;
UPDATE conversation SET status_at = started_at WHERE status_at IS NONE RETURN NONE;
`;

/**
 * Version 3: messages the engine writes itself into a conversation's history (direction 'system'): a
 * call's recording (an attachment) and its transcript. They are neither the customer's nor an agent's,
 * so they never reopen a closed conversation nor count as a reply.
 */
export const SCHEMA_V3 = `
DEFINE FIELD OVERWRITE direction ON message TYPE string ASSERT $value IN ['in', 'out', 'system'];
`;
