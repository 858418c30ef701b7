// The outreach service's contract (edges/outreach.ts serves it on edge nodes): subjects, valibot schemas
// of requests and replies, the error, and a typed client. Subjects carry the API version.
//   cc.outreach.v1.open      one conversation to one customer (an agent's outreach)
//   cc.outreach.v1.campaign  a message template to a list of customers, each on their preferred channel
import type { NatsConnection } from '@nats-io/nats-core';
import { ServiceError } from '@nats-io/services';
import * as v from 'valibot';
import { ChannelSchema } from '../machines/routing.ts';

export const OUTREACH_PREFIX = 'cc.outreach.v1';
export const OUTREACH_SERVICE = 'cc-outreach';

const Text = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1, 'must not be empty'), v.maxLength(max, `must be at most ${max} characters`));
const Key = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -'));
export const CustomerRef = v.pipe(v.string(), v.regex(/^customer:[A-Za-z0-9_]{1,64}$/, 'must be customer:<key>'));

export const OpenRequest = v.object({
  customerId: CustomerRef,
  /** Unset: the customer's preferred channel now (machines/customer.ts), else their latest identity. */
  channel: v.optional(ChannelSchema),
  text: Text(20_000),
  /** Email subject. */
  subject: v.optional(Text(500)),
  /** Where the conversation queues for agents. */
  queue: v.optional(Key, 'support'),
  /** Who opens it (agent id), recorded as the message's author. */
  by: Text(128),
  /** Our sender (mailbox, SMS number, site key); default: this edge's first account on the channel. */
  account: v.optional(Text(256)),
  /** The customer's address on the channel; default: from the identity graph. */
  handle: v.optional(Text(256)),
});
export type OpenRequest = v.InferInput<typeof OpenRequest>;

export const OpenReply = v.object({
  conversationId: v.string(),
  messageId: v.string(),
  channel: ChannelSchema,
  /** Why this channel: chosen, or the preference's reason. */
  why: v.string(),
});
export type OpenReply = v.InferOutput<typeof OpenReply>;

export const CampaignRequest = v.object({
  /** Idempotency: each (campaign id, customer) is sent at most once, however often the request is repeated. */
  campaignId: Key,
  /** `{{name}}` and the recipient's own `vars` are filled in; a recipient missing one is skipped. */
  template: v.object({ text: Text(2000), subject: v.optional(Text(500)) }),
  /** Everyone on this channel (opted-out ones skipped); unset: each on their preferred channel. */
  channel: v.optional(ChannelSchema),
  /** Sends per second for this request, at most 50; default 5. */
  ratePerSec: v.optional(v.pipe(v.number(), v.minValue(0.1, 'must be at least 0.1'), v.maxValue(50, 'must be at most 50')), 5),
  recipients: v.pipe(
    v.array(v.object({ customerId: CustomerRef, vars: v.optional(v.record(v.pipe(v.string(), v.regex(/^\w{1,32}$/, 'variable names are 1-32 letters, digits or _')), v.pipe(v.string(), v.maxLength(500))), {}) })),
    v.minLength(1, 'needs at least one recipient'),
    v.maxLength(1000, 'at most 1000 recipients per request'),
  ),
});
export type CampaignRequest = v.InferInput<typeof CampaignRequest>;

export const RecipientResult = v.object({
  customerId: v.string(),
  status: v.picklist(['sent', 'skipped', 'failed']),
  channel: v.optional(ChannelSchema),
  conversationId: v.optional(v.string()),
  messageId: v.optional(v.string()),
  /** Why skipped or failed (or why this channel, when sent). */
  reason: v.optional(v.string()),
  /** Sent by an earlier run of this campaign: nothing was sent again. */
  repeat: v.optional(v.boolean()),
});
export type RecipientResult = v.InferOutput<typeof RecipientResult>;
export const CampaignReply = v.object({
  campaignId: v.string(),
  sent: v.number(),
  skipped: v.number(),
  failed: v.number(),
  results: v.array(RecipientResult),
});
export type CampaignReply = v.InferOutput<typeof CampaignReply>;

/** A refusal with an HTTP-like code: 400 bad request, 403 opted out, 404 no such customer, 409 no way to reach them, 503 unavailable. */
export class OutreachError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'OutreachError';
  }
}

export const reasonOf = (issues: readonly v.BaseIssue<unknown>[]) => {
  const path = v.getDotPath(issues[0]);
  return path ? `${path}: ${issues[0].message}` : issues[0].message;
};

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Asks whichever edge node runs the outreach service; failures throw OutreachError with the service's code and reason. */
export class OutreachClient {
  constructor(private readonly nc: NatsConnection) {}

  open(req: OpenRequest, timeoutMs = 10_000): Promise<OpenReply> {
    return this.call('open', OpenRequest, OpenReply, req, timeoutMs);
  }

  /** The reply comes once every recipient is done: the timeout defaults to the paced sending time plus 30 s. */
  campaign(req: CampaignRequest, timeoutMs?: number): Promise<CampaignReply> {
    const paced = (req.recipients.length / (req.ratePerSec ?? 5)) * 1000;
    return this.call('campaign', CampaignRequest, CampaignReply, req, timeoutMs ?? paced + 30_000);
  }

  private async call<I, O>(op: string, request: v.GenericSchema<I, unknown>, reply: v.GenericSchema<unknown, O>, req: I, timeoutMs: number): Promise<O> {
    const checked = v.safeParse(request, req);
    if (!checked.success) throw new OutreachError(400, reasonOf(checked.issues));
    let m;
    try {
      m = await this.nc.request(`${OUTREACH_PREFIX}.${op}`, enc.encode(JSON.stringify(checked.output)), { timeout: timeoutMs });
    } catch (e) {
      const why = (e as Error).message;
      if (/no responders|503/i.test(why)) throw new OutreachError(503, 'no edge node runs the outreach service');
      throw new OutreachError(503, `the outreach service did not answer within ${timeoutMs} ms`);
    }
    const se = ServiceError.toServiceError(m);
    if (se) {
      let reason = se.message;
      try {
        reason = (JSON.parse(dec.decode(m.data)) as { error?: { reason?: string } }).error?.reason ?? reason;
      } catch {
        // the header's reason stands
      }
      throw new OutreachError(se.code, reason);
    }
    const r = v.safeParse(reply, JSON.parse(dec.decode(m.data)));
    if (!r.success) throw new OutreachError(502, `${op}: reply does not match the contract: ${reasonOf(r.issues)}`);
    return r.output;
  }
}
