// Conversations and messages: idempotent append, and the customer view (one query, newest first).
//
// Append is idempotent on (channel, channel_message_id): a duplicate is found before writing, and a
// duplicate racing with the first copy loses on the UNIQUE index and is answered with the stored message.
// A message's key is [conversation, at, ulid] (see schema.ts), so the view reads each of the customer's
// conversations as one key range, newest first, and merges the ranges. The conversation is the given one (created with that id if new: the conversation actor
// names it), else the customer's latest open conversation on that channel, else (for a customer's message)
// the one closed most recently within the reopen window, which the message reopens, else a new one. A
// customer writing to a named thread that closed longer ago than the window starts afresh the same way.
//
// The view pages messages by keyset on (at, id), newest first: the cursor is the last message's
// (at, id), so a page is an index range and never an OFFSET that grows with history.
import * as v from 'valibot';
import { RecordId } from 'surrealdb';
import { StoreError, type ParsedRequestOf, type ReplyOf } from './api.ts';
import { DEFAULT_REOPEN_WINDOW_MS, openSealed, type StoreContext } from './context.ts';
import { canSee, show } from './mask.ts';
import { fromBase64Url, toBase64Url } from './crypto.ts';
import { idOf, isUniqueViolation, messageIdOf, newId, newMessageId, parseId, retryConflicts, runTx } from './records.ts';

const Lookup = v.object({
  customer: v.nullish(v.object({ id: v.instance(RecordId), merged_into: v.optional(v.instance(RecordId)) })),
  conversation: v.nullish(v.object({ id: v.instance(RecordId), customer: v.instance(RecordId), status: v.string(), channel: v.string(), closed_at: v.optional(v.number()) })),
  open: v.array(v.instance(RecordId)),
  recent: v.array(v.instance(RecordId)),
  dup: v.array(v.object({ id: v.instance(RecordId), conversation: v.instance(RecordId) })),
});

export async function appendMessage(ctx: StoreContext, req: ParsedRequestOf<'append'>): Promise<ReplyOf<'append'>> {
  const customerRef = parseId('customer', req.customerId);
  const convRef = req.conversationId ? parseId('conversation', req.conversationId) : undefined;
  const windowMs = ctx.reopenWindowMs ?? DEFAULT_REOPEN_WINDOW_MS;
  const inbound = req.direction === 'in';
  return retryConflicts(async () => {
    const [raw] = await ctx.db
      .query<[unknown]>(
        `RETURN {
           customer: $customer.{ id, merged_into },
           conversation: $conv.{ id, customer, status, channel, closed_at },
           open: (SELECT id, last_at FROM conversation WHERE customer = $customer AND channel = $channel AND status = 'open' ORDER BY last_at DESC LIMIT 1).id,
           recent: IF $inbound THEN (SELECT id, closed_at FROM conversation WHERE customer = $customer AND channel = $channel AND status = 'closed' AND closed_at >= $since ORDER BY closed_at DESC LIMIT 1).id ELSE [] END,
           dup: (SELECT id, conversation FROM message WHERE channel = $channel AND channel_message_id = $cmid LIMIT 1)
         }`,
        { customer: customerRef, conv: convRef, channel: req.channel, cmid: req.channelMessageId, inbound, since: req.at - windowMs },
      )
      .collect();
    const found = v.parse(Lookup, raw);
    if (found.dup.length) return { messageId: messageIdOf(found.dup[0].id), conversationId: idOf(found.dup[0].conversation), duplicate: true, created: false, reopened: false };
    if (!found.customer?.id) throw new StoreError(404, `no such customer: ${req.customerId}`);
    const closedAt = (c: { status: string; closed_at?: number }) => (c.status === 'closed' ? (c.closed_at ?? -Infinity) : undefined);
    // The thread a message names wins, unless the customer writes to it after it closed beyond the
    // window: then it is treated like a message without a thread (the open one, a recent one, or new).
    const named = found.conversation?.id ? found.conversation : undefined;
    const namedClosedAt = named ? closedAt(named) : undefined;
    const tooOld = inbound && namedClosedAt !== undefined && namedClosedAt < req.at - windowMs;
    // The conversation's customer is the truth (a merge may have moved it); a merged customer means its survivor.
    const customer = (tooOld ? undefined : named?.customer) ?? found.customer.merged_into ?? found.customer.id;
    let conversation: RecordId;
    let isNew = false;
    let reopen = false;
    if (convRef && !tooOld) {
      conversation = convRef;
      isNew = !named;
      reopen = inbound && namedClosedAt !== undefined;
    } else if (found.open[0]) {
      conversation = found.open[0];
    } else if (found.recent[0]) {
      conversation = found.recent[0];
      reopen = true;
    } else {
      conversation = newId('conversation', req.at);
      isNew = true;
    }

    const messageId = newMessageId(conversation, req.at);
    const statements: string[] = [];
    const vars: Record<string, unknown> = { conv: conversation, customer, msg: messageId, at: req.at };
    if (isNew) {
      statements.push('CREATE $conv CONTENT $newConv RETURN NONE');
      vars.newConv = { customer, channel: req.channel, identity: req.identityId ? parseId('identity', req.identityId) : undefined, subject: req.subject, status: 'open', status_at: req.at, started_at: req.at, last_at: req.at, message_count: 0 };
    }
    const attachments = (req.attachments ?? []).map((a) => ({ id: newId('attachment', req.at), message: messageId, object_key: a.objectKey, content_type: a.contentType, size: a.size, name: a.name, created_at: req.at }));
    if (attachments.length) {
      statements.push('INSERT INTO attachment $attachments RETURN NONE');
      vars.attachments = attachments;
    }
    vars.message = {
      conversation,
      channel: req.channel,
      channel_message_id: req.channelMessageId,
      direction: req.direction,
      author: req.author,
      text: req.sensitive ? undefined : req.text,
      text_sealed: req.sensitive && req.text !== undefined ? await ctx.cipher.seal(req.text) : undefined,
      attachments: attachments.map((a) => a.id),
      at: req.at,
    };
    statements.push('CREATE $msg CONTENT $message RETURN NONE', 'UPDATE $conv SET last_at = math::max([last_at, $at]), message_count += 1 RETURN NONE');
    if (reopen) {
      // Reopened as the conversation actor reopens on this message; a reopen is never earlier than 1 ms
      // after the close it undoes, so a late copy of that close (status_at order) cannot undo it.
      statements.push(
        "UPDATE $conv SET status = 'open', status_at = math::max([status_at ?? 0, (closed_at ?? 0) + 1, $at]), closed_at = NONE, closed_by = NONE, disposition = NONE WHERE status = 'closed' RETURN NONE",
      );
    }
    try {
      await runTx(ctx.db, statements, vars);
    } catch (e) {
      if (isUniqueViolation(e, 'message_channel_id')) {
        // The same channel message id was stored meanwhile by a concurrent append: answer with that one.
        const [rows] = await ctx.db.query<[{ id: RecordId; conversation: RecordId }[]]>('SELECT id, conversation FROM message WHERE channel = $channel AND channel_message_id = $cmid LIMIT 1', { channel: req.channel, cmid: req.channelMessageId }).collect();
        if (rows.length) return { messageId: messageIdOf(rows[0].id), conversationId: idOf(rows[0].conversation), duplicate: true, created: false, reopened: false };
      }
      throw e;
    }
    if (reopen) ctx.log.debug({ conversation: idOf(conversation), at: req.at }, 'conversation reopened by a customer message');
    return {
      messageId: messageIdOf(messageId),
      conversationId: idOf(conversation),
      duplicate: false,
      created: isNew,
      reopened: reopen,
      ...(tooOld && req.conversationId ? { previousConversationId: req.conversationId } : {}),
    };
  });
}

// customer view ------------------------------------------------------------------------------------

const CONVERSATIONS_SHOWN = 50;

const ViewRow = v.object({
  id: v.instance(RecordId),
  name: v.optional(v.string()),
  phone: v.optional(v.string()),
  email: v.optional(v.string()),
  address: v.optional(v.string()),
  phone_verified: v.boolean(),
  email_verified: v.boolean(),
  merged_into: v.optional(v.instance(RecordId)),
  created_at: v.number(),
  tags: v.array(v.string()),
  identities: v.array(
    v.object({
      id: v.instance(RecordId),
      channel: v.string(),
      handle: v.optional(v.string()),
      handle_sealed: v.optional(v.string()),
      display_name: v.optional(v.string()),
      created_at: v.number(),
      last_seen_at: v.number(),
    }),
  ),
  conversations: v.array(
    v.object({
      id: v.instance(RecordId),
      channel: v.string(),
      status: v.string(),
      subject: v.optional(v.string()),
      started_at: v.number(),
      last_at: v.number(),
      message_count: v.number(),
      tags: v.array(v.string()),
    }),
  ),
  messages: v.array(
    v.array(
    v.object({
      id: v.instance(RecordId),
      conversation: v.instance(RecordId),
      channel: v.string(),
      direction: v.picklist(['in', 'out', 'system']),
      author: v.optional(v.string()),
      text: v.optional(v.string()),
      text_sealed: v.optional(v.string()),
      at: v.number(),
      attachments: v.array(v.object({ object_key: v.string(), content_type: v.string(), size: v.number(), name: v.optional(v.string()) })),
    }),
    ),
  ),
  suggested: v.array(v.object({ id: v.instance(RecordId), customer: v.instance(RecordId), candidate: v.instance(RecordId), reason: v.picklist(['phone', 'email']) })),
});

/**
 * The whole customer view in one statement: profile, identities, conversation summaries, open suggestions,
 * and for each conversation that began before the cursor its newest messages before the cursor (a key
 * range [conversation, NONE] .. [conversation, cursor at, cursor ulid], read backwards); the caller merges
 * those lists newest first and keeps one page.
 */
export const VIEW_QUERY = `
SELECT id, name, phone, email, address, phone_verified, email_verified, merged_into, created_at,
  array::sort(->tagged->tag.name) AS tags,
  <-identifies<-identity.{ id, channel, handle, handle_sealed, display_name, created_at, last_seen_at } AS identities,
  (SELECT id, channel, status, subject, started_at, last_at, message_count, array::sort(->tagged->tag.name) AS tags
     FROM conversation WHERE customer = $c ORDER BY last_at DESC LIMIT $convs) AS conversations,
  (SELECT VALUE (SELECT id, conversation, channel, direction, author, text, text_sealed, at,
                         attachments.{ object_key, content_type, size, name } AS attachments
                    FROM message:[$parent.id, NONE]..[$parent.id, $cat, $cid] ORDER BY id DESC LIMIT $n)
     FROM conversation WHERE customer = $c AND started_at <= $cat) AS messages,
  array::concat(
    (SELECT id, customer, candidate, reason FROM suggestion WHERE customer = $c AND status = 'open'),
    (SELECT id, customer, candidate, reason FROM suggestion WHERE candidate = $c AND status = 'open')
  ) AS suggested
FROM ONLY $c`;

// The first page starts above every real message: at = 2^53 - 1 and an id key no ULID reaches.
const TOP = { at: Number.MAX_SAFE_INTEGER, key: '~' };

export async function customerView(ctx: StoreContext, req: ParsedRequestOf<'view'>): Promise<ReplyOf<'view'>> {
  const limit = req.limit ?? 50;
  const cursor = req.cursor ? decodeCursor(req.cursor) : TOP;
  let c = parseId('customer', req.customerId);
  let redirectedFrom: string | undefined;
  let row = await viewRow(ctx, c, cursor, limit);
  if (row?.merged_into) {
    // An absorbed customer's view is its survivor's: that is where its identities and history went.
    redirectedFrom = req.customerId;
    c = row.merged_into;
    row = await viewRow(ctx, c, cursor, limit);
  }
  if (!row) throw new StoreError(404, `no such customer: ${req.customerId}`);
  const viewer = req.viewer;
  const newestFirst = row.messages.flat().sort((a, b) => b.at - a.at || (keyOf(b.id) < keyOf(a.id) ? -1 : keyOf(b.id) > keyOf(a.id) ? 1 : 0));
  const page = newestFirst.slice(0, limit);
  const last = page[page.length - 1];
  const [phone, email, address] = await Promise.all([openSealed(ctx, row.phone, 'customer.phone'), openSealed(ctx, row.email, 'customer.email'), openSealed(ctx, row.address, 'customer.address')]);
  const seeText = canSee(viewer, 'text');
  return {
    customer: {
      id: idOf(row.id),
      ...(row.name !== undefined ? { name: row.name } : {}),
      ...(phone !== undefined ? { phone: show(viewer, 'phone', phone) } : {}),
      ...(email !== undefined ? { email: show(viewer, 'email', email) } : {}),
      ...(address !== undefined ? { address: show(viewer, 'address', address) } : {}),
      phoneVerified: row.phone_verified,
      emailVerified: row.email_verified,
      tags: row.tags,
      createdAt: row.created_at,
    },
    ...(redirectedFrom ? { redirectedFrom } : {}),
    identities: await Promise.all(
      row.identities.map(async (i) => {
        const clear = i.handle ?? (await openSealed(ctx, i.handle_sealed, 'identity.handle_sealed'));
        const field = i.channel === 'phone' ? 'phone' : i.channel === 'email' ? 'email' : undefined;
        return {
          id: idOf(i.id),
          channel: i.channel as ReplyOf<'view'>['identities'][number]['channel'],
          handle: clear === undefined ? '***' : field ? show(viewer, field, clear) : clear,
          ...(i.display_name !== undefined ? { displayName: i.display_name } : {}),
          createdAt: i.created_at,
          lastSeenAt: i.last_seen_at,
        };
      }),
    ),
    conversations: row.conversations.map((cv) => ({
      id: idOf(cv.id),
      channel: cv.channel as ReplyOf<'view'>['conversations'][number]['channel'],
      status: cv.status,
      ...(cv.subject !== undefined ? { subject: cv.subject } : {}),
      startedAt: cv.started_at,
      lastAt: cv.last_at,
      messageCount: cv.message_count,
      tags: cv.tags,
    })),
    messages: await Promise.all(
      page.map(async (m) => {
        const sensitive = m.text_sealed !== undefined;
        // Sensitive text is decrypted only for viewers who may read it; the others get the mask.
        const text = sensitive ? (seeText ? await openSealed(ctx, m.text_sealed, 'message.text_sealed') : show(viewer, 'text', 'x')) : m.text;
        return {
          id: messageIdOf(m.id),
          conversationId: idOf(m.conversation),
          channel: m.channel as ReplyOf<'view'>['messages'][number]['channel'],
          direction: m.direction,
          ...(m.author !== undefined ? { author: m.author } : {}),
          ...(text !== undefined ? { text } : {}),
          sensitive,
          at: m.at,
          attachments: m.attachments.map((a) => ({ objectKey: a.object_key, contentType: a.content_type, size: a.size, ...(a.name !== undefined ? { name: a.name } : {}) })),
        };
      }),
    ),
    suggestions: row.suggested.map((s) => ({ id: idOf(s.id), customerId: idOf(s.customer.toString() === row!.id.toString() ? s.candidate : s.customer), reason: s.reason })),
    ...(newestFirst.length > limit && last ? { nextCursor: encodeCursor(last.at, keyOf(last.id)) } : {}),
  };
}

/** The ulid part of a message id [conversation, at, ulid]: the tie-break after `at`. */
function keyOf(id: RecordId): string {
  return Array.isArray(id.id) ? String(id.id[2]) : String(id.id);
}

async function viewRow(ctx: StoreContext, c: RecordId, cursor: { at: number; key: string }, limit: number) {
  const [raw] = await ctx.db
    .query<[unknown]>(VIEW_QUERY, { c, cat: cursor.at, cid: cursor.key, n: limit + 1, convs: CONVERSATIONS_SHOWN })
    .collect();
  if (raw === undefined || raw === null) return undefined;
  const r = v.safeParse(ViewRow, raw);
  if (!r.success) throw new StoreError(500, `customer view of ${idOf(c)} is malformed: ${r.issues[0].message} at ${v.getDotPath(r.issues[0]) ?? '?'}`);
  return r.output;
}

export function encodeCursor(at: number, key: string): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([at, key])));
}

const Cursor = v.tuple([v.pipe(v.number(), v.integer(), v.minValue(0)), v.pipe(v.string(), v.regex(/^[A-Za-z0-9_]{1,64}$/))]);

export function decodeCursor(s: string): { at: number; key: string } {
  const bytes = fromBase64Url(s);
  let parsed: unknown;
  try {
    parsed = bytes ? JSON.parse(new TextDecoder().decode(bytes)) : undefined;
  } catch {
    parsed = undefined;
  }
  const r = v.safeParse(Cursor, parsed);
  if (!r.success) throw new StoreError(400, 'cursor: not a cursor this service gave out');
  return { at: r.output[0], key: r.output[1] };
}
