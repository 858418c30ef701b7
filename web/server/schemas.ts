// Request bodies of the workspace API, each checked with valibot before anything acts on it.
import type { Context } from 'hono';
import * as v from 'valibot';
import { CHANNELS } from '../../machines/routing.ts';
import { IdentityId } from '../../storage/api.ts';
import { Password, ROLES, UserId } from './accounts.ts';

const Text = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1, 'must not be empty'), v.maxLength(max, `must be at most ${max} characters`));
const Key = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_=-]{1,64}$/, 'must be 1-64 letters, digits, _ = or -'));

export const LoginBody = v.object({ user: v.pipe(v.string(), v.maxLength(64, 'is too long')), password: v.pipe(v.string(), v.maxLength(200, 'is too long')) });
export const PresenceBody = v.object({ presence: v.picklist(['available', 'away', 'offline'], 'must be available, away or offline'), reason: v.optional(Text(100)) });
export const RejectBody = v.object({ reason: v.optional(Text(200)) });
export const ReplyAttachment = v.object({ key: v.pipe(v.string(), v.startsWith('workspace/', 'must be a key returned by /api/uploads'), v.maxLength(512)), name: Text(255), contentType: Text(255), size: v.pipe(v.number(), v.integer(), v.minValue(0)) });
export const ReplyBody = v.pipe(
  v.object({ text: v.optional(v.pipe(v.string(), v.maxLength(20_000, 'must be at most 20000 characters'))), attachments: v.optional(v.pipe(v.array(ReplyAttachment), v.maxLength(10, 'at most 10 attachments')), []), channel: v.optional(v.picklist(CHANNELS)) }),
  v.check((b) => Boolean(b.text?.trim()) || b.attachments.length > 0, 'a reply needs text or an attachment'),
);
export const TransferBody = v.object({ to: v.pipe(v.string(), v.regex(/^(agent|queue)\/[A-Za-z0-9_=-]{1,64}$/, 'must be agent/<id> or queue/<id>')), note: v.optional(v.pipe(v.string(), v.maxLength(1000)), '') });
/** No disposition: enter wrap-up; a disposition: close with it. */
export const WrapupBody = v.object({ disposition: v.optional(Text(200)) });
/** What an actor answers an ask with when its machine sends no reply of its own: its snapshot's view. */
export const StateView = v.looseObject({ value: v.unknown() });
const Tag = v.pipe(v.string(), v.trim(), v.regex(/^[\p{L}\p{N}_ :.-]{1,40}$/u, 'must be 1-40 letters, digits, spaces, _ : . or -'));
/** A customer's id as the actors and the workspace name it (the store's `customer:<id>` without its table). */
export const CustomerId = v.pipe(v.string('must be a customer id'), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a customer id'));
/** A supervisor's merge of the customer in the path into another (the survivor): they are one person. */
export const MergeBody = v.object({
  into: CustomerId,
  reason: v.pipe(v.optional(v.string('say why'), ''), v.trim(), v.minLength(1, 'say why'), v.maxLength(500, 'at most 500 characters')),
});
/** What an agent or supervisor changes about the customer of a conversation (tier: supervisors only). */
export const CustomerPatchBody = v.pipe(
  v.object({
    tier: v.optional(v.picklist(['normal', 'vip'], 'must be normal or vip')),
    addTags: v.optional(v.pipe(v.array(Tag), v.maxLength(20, 'at most 20 tags at once')), []),
    removeTags: v.optional(v.pipe(v.array(Tag), v.maxLength(20, 'at most 20 tags at once')), []),
    /** The customer said so (on the phone, in a chat): they take or stop messages on this channel. */
    consent: v.optional(v.object({ channel: v.picklist(CHANNELS), optedIn: v.boolean('must be true or false') })),
  }),
  v.check((b) => b.tier !== undefined || b.addTags.length > 0 || b.removeTags.length > 0 || b.consent !== undefined, 'name a change: tier, addTags, removeTags or consent'),
);
export const CannedBody = v.object({ id: Key, title: Text(100), text: Text(5000), lang: v.optional(v.picklist(['en', 'zh-CN'])) });
export const UserBody = v.object({
  id: UserId,
  name: v.optional(Text(100)),
  role: v.picklist(ROLES, `must be one of ${ROLES.join(', ')}`),
  password: Password,
  queues: v.optional(v.pipe(v.array(Key), v.maxLength(20)), ['support']),
  skills: v.optional(v.record(Key, v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10))), { en: 1, zh: 1 }),
});
const Skills = v.record(Key, v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10)));
export const UserPatchBody = v.pipe(
  v.object({
    name: v.optional(Text(100)),
    role: v.optional(v.picklist(ROLES, `must be one of ${ROLES.join(', ')}`)),
    queues: v.optional(v.pipe(v.array(Key), v.maxLength(20))),
    skills: v.optional(Skills),
    disabled: v.optional(v.boolean('must be true or false')),
  }),
  v.check((b) => Object.values(b).some((x) => x !== undefined), 'name a field to change: name, role, queues, skills or disabled'),
);
/**
 * A conversation an agent opens to a customer. The address is either `handle` (with `account`, the
 * sending site, mailbox or number) or `identity`, one of the customer's identities from their view (the
 * page shows handles masked, so it names the identity); the account then defaults to the channel's
 * first configured one. The queue defaults to the agent's first queue.
 */
export const OutreachBody = v.pipe(
  v.object({
    customerId: v.pipe(v.string(), v.regex(/^customer:[A-Za-z0-9_]{1,64}$/, 'must be customer:<key>')),
    // Unset: the customer's preferred channel and their address there (a message, not a call).
    channel: v.optional(v.picklist(CHANNELS, 'unknown channel')),
    account: v.optional(Text(256)),
    handle: v.optional(Text(256)),
    identity: v.optional(IdentityId),
    text: Text(20_000),
    queue: v.optional(Key),
  }),
  v.check((b) => !(b.handle && b.identity), 'give either handle or identity, not both'),
  v.check((b) => b.channel !== 'voice' || Boolean(b.handle || b.identity), 'a call needs handle or identity'),
  v.check((b) => Boolean(b.channel) || !(b.handle || b.identity), 'handle and identity go with a channel'),
);
export const ReportQuery = v.object({
  from: v.pipe(v.string(), v.transform(Number), v.number('must be ms since epoch'), v.integer('must be ms since epoch')),
  to: v.pipe(v.string(), v.transform(Number), v.number('must be ms since epoch'), v.integer('must be ms since epoch')),
});

/** "field: reason" of the first issue, for 400 answers. */
export function reasonOf(issues: readonly v.BaseIssue<unknown>[]): string {
  const path = v.getDotPath(issues[0]);
  return path ? `${path}: ${issues[0].message}` : issues[0].message;
}

/** A request's JSON body checked against its schema, or the 400 answer that says why not. */
export async function jsonBody<T extends v.GenericSchema>(c: Context, schema: T): Promise<v.InferOutput<T> | Response> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    return c.json({ error: 'the body must be JSON' }, 400);
  }
  const r = v.safeParse(schema, raw);
  return r.success ? r.output : c.json({ error: reasonOf(r.issues) }, 400);
}

export const isResponse = (x: unknown): x is Response => x instanceof Response;

/** What of an agent actor's `get` answer says whether a call fits: its voice load and capacity. */
export const AgentSlots = v.object({ load: v.object({ voice: v.number() }), capacity: v.object({ voice: v.number() }) });
