// Proactive outreach: we write first. An agent opens one conversation to a customer; a campaign sends a
// template to a list. Either way the channel is the one asked for, else the customer's preferred channel
// now (learned by the customer actor per channel and hour), else their most recently seen identity; an
// opt-out on that channel refuses (403 with the recorded opt-out). Runs on edge nodes, which know our
// sender accounts, as the NATS service `cc-outreach` (contract and client: outreach-api.ts).
//
// The first message is stored in the identity graph in a new conversation (so the customer's reply, by
// SMS or to the mail's Reply-To token, lands in that same conversation) and published to `cc.out.<channel>`
// like any reply: the edges send it and its delivery states reach the conversation actor. An agent's
// conversation is opened at once (queued for agents); a campaign's is opened by the customer's reply, so
// a campaign to thousands occupies no agent until someone answers.
//
// Campaign idempotency: KV `cc_outreach` holds `<campaign>.<customer>` (pending, then sent; kept 30 days);
// the conversation and message ids derive from that pair, and the store and the stream drop repeats, so a
// repeated or resumed request never sends one customer the same campaign twice.
import { createHash, randomUUID } from 'node:crypto';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { Logger } from 'pino';
import * as v from 'valibot';
import type { ActorClient } from '../actors/client.ts';
import { contactCheck, type CustomerContext, type Preference } from '../machines/customer.ts';
import { ChannelSchema, type Channel } from '../machines/routing.ts';
import { StoreError, type ViewReply } from '../storage/api.ts';
import type { StoreClient } from '../storage/client.ts';
import { IDENTITY_OF, keyOf } from './inbound.ts';
import type { OutboundMessage } from './message.ts';
import { outSubject } from './outbound.ts';
import {
  CampaignRequest,
  OpenRequest,
  OUTREACH_PREFIX,
  OUTREACH_SERVICE,
  OutreachError,
  reasonOf,
  type CampaignReply,
  type OpenReply,
  type RecipientResult,
} from './outreach-api.ts';

export const OUTREACH_BUCKET = 'cc_outreach';
const CAMPAIGN_MEMORY_MS = 30 * 24 * 3600_000;

export interface OutreachDeps {
  nc: NatsConnection;
  store: Pick<StoreClient, 'view' | 'append'>;
  actors: Pick<ActorClient, 'ask' | 'tell'>;
  /** Our sender per channel (first mailbox, first SMS number, first site or app key). */
  accounts: Partial<Record<Channel, string>>;
  log: Logger;
  replicas?: number;
}

/** Who to write to, where, and why there. */
interface Plan {
  customer: string;
  channel: Channel;
  why: string;
  handle: string;
  displayName?: string;
  account: string;
  name?: string;
}

type CustomerView = CustomerContext & { preferredChannel: Preference };

/** Identity kinds back to the channel we write to them on (a phone is reached by SMS). */
const CHANNEL_OF: Partial<Record<string, Channel>> = Object.fromEntries(
  Object.entries(IDENTITY_OF)
    .filter(([ch]) => ch !== 'voice')
    .map(([ch, identity]) => [identity, ch as Channel]),
);

/** `{{name}}` placeholders filled from vars; the names with no value are listed instead. */
export function render(template: string, vars: Record<string, string | undefined>): { text: string; missing: string[] } {
  const missing = new Set<string>();
  const text = template.replace(/\{\{\s*(\w{1,32})\s*\}\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined || value === '') missing.add(name);
    return value ?? '';
  });
  return { text, missing: [...missing] };
}

const firstLine = (text: string) => {
  const line = text.trim().split(/\r?\n/)[0];
  return line.length > 78 ? `${line.slice(0, 77)}…` : line;
};

/** Waits so that calls are at most `perSec` a second. */
function pacer(perSec: number): () => Promise<void> {
  let next = 0;
  return async () => {
    const now = Date.now();
    const wait = next - now;
    next = Math.max(now, next) + 1000 / perSec;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
}

const CampaignRecord = v.object({
  status: v.picklist(['pending', 'sent']),
  channel: ChannelSchema,
  conversationId: v.string(),
  messageId: v.string(),
  at: v.number(),
});
type CampaignRecord = v.InferOutput<typeof CampaignRecord>;

const enc = new TextEncoder();
const dec = new TextDecoder();

export class Outreach {
  private constructor(
    private readonly deps: OutreachDeps,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
  ) {}

  static async start(deps: OutreachDeps): Promise<Outreach> {
    const kvm = new Kvm(deps.nc);
    const kv = await kvm.create(OUTREACH_BUCKET, { history: 1, replicas: deps.replicas ?? 1, ttl: CAMPAIGN_MEMORY_MS }).catch(() => kvm.open(OUTREACH_BUCKET));
    return new Outreach(deps, jetstream(deps.nc), kv);
  }

  /** One conversation to one customer, opened for agents at once; refusals are OutreachErrors. */
  async open(input: unknown): Promise<OpenReply> {
    const r = v.safeParse(OpenRequest, input);
    if (!r.success) throw new OutreachError(400, reasonOf(r.issues));
    const req = r.output;
    const at = Date.now();
    const plan = await this.plan(req.customerId, at, req);
    const id = `o${randomUUID().replace(/-/g, '')}`;
    const sent = await this.carry(plan, { conversationId: id, messageId: `${id}m`, text: req.text, subject: req.subject, by: req.by, at, open: { queue: req.queue, attrs: { outbound: true, by: req.by } } });
    this.deps.log.info({ conversation: sent.conversationId, channel: plan.channel, by: req.by }, 'outreach: conversation opened');
    return { ...sent, channel: plan.channel, why: plan.why };
  }

  /** A template to each recipient on their channel, paced, once per (campaign, customer); a report per recipient. */
  async campaign(input: unknown): Promise<CampaignReply> {
    const r = v.safeParse(CampaignRequest, input);
    if (!r.success) throw new OutreachError(400, reasonOf(r.issues));
    const req = r.output;
    const pace = pacer(req.ratePerSec);
    const results: RecipientResult[] = [];
    for (const who of req.recipients) results.push(await this.recipient(req, who, pace));
    const count = (s: RecipientResult['status']) => results.filter((x) => x.status === s).length;
    const reply = { campaignId: req.campaignId, sent: count('sent'), skipped: count('skipped'), failed: count('failed'), results };
    this.deps.log.info({ campaign: req.campaignId, sent: reply.sent, skipped: reply.skipped, failed: reply.failed }, 'outreach: campaign batch done');
    return reply;
  }

  private async recipient(req: v.InferOutput<typeof CampaignRequest>, who: { customerId: string; vars: Record<string, string> }, pace: () => Promise<void>): Promise<RecipientResult> {
    const customer = keyOf(who.customerId);
    const key = `${req.campaignId}.${customer}`;
    const base = { customerId: who.customerId };
    let record: CampaignRecord | undefined;
    let mine = false;
    try {
      record = await this.record(key);
      if (record?.status === 'sent') return { ...base, status: 'sent', repeat: true, channel: record.channel, conversationId: record.conversationId, messageId: record.messageId };
      const at = Date.now();
      // A pending record is a run that stopped half-way: finish it on the same channel, opt-outs re-checked.
      const plan = await this.plan(who.customerId, at, { channel: record?.channel ?? req.channel });
      const { text, missing } = render(req.template.text, { name: plan.name, ...who.vars });
      if (missing.length) throw new OutreachError(409, `the template needs ${missing.map((m) => `{{${m}}}`).join(', ')}, which this customer has no value for`);
      const id = `cp${createHash('sha256').update(`${req.campaignId}\0${plan.customer}`).digest('hex').slice(0, 32)}`;
      const ids = { conversationId: record?.conversationId ?? id, messageId: record?.messageId ?? `${id}m` };
      if (!record) {
        try {
          await this.kv.create(key, enc.encode(JSON.stringify({ status: 'pending', channel: plan.channel, ...ids, at } satisfies CampaignRecord)));
          mine = true;
        } catch {
          throw new OutreachError(409, 'another run of this campaign is sending to this customer');
        }
      }
      await pace();
      const sent = await this.carry(plan, { ...ids, text, subject: req.template.subject, by: `campaign/${req.campaignId}`, at });
      await this.kv.put(key, enc.encode(JSON.stringify({ status: 'sent', channel: plan.channel, conversationId: sent.conversationId, messageId: sent.messageId, at } satisfies CampaignRecord)));
      return { ...base, status: 'sent', channel: plan.channel, conversationId: sent.conversationId, messageId: sent.messageId, reason: plan.why };
    } catch (e) {
      if (e instanceof OutreachError && e.code < 500) {
        // Not sent and nothing half-done: a later run decides afresh (they may opt in again).
        if (mine || record?.status === 'pending') await this.kv.delete(key).catch(() => undefined);
        return { ...base, status: 'skipped', reason: e.reason };
      }
      // Left pending: a repeat of the request finishes it, without sending twice.
      const reason = e instanceof OutreachError ? e.reason : (e as Error).message;
      this.deps.log.warn({ campaign: req.campaignId, customer, reason }, 'outreach: recipient failed');
      return { ...base, status: 'failed', reason };
    }
  }

  private async record(key: string): Promise<CampaignRecord | undefined> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    const r = v.safeParse(CampaignRecord, JSON.parse(dec.decode(e.value)));
    return r.success ? r.output : undefined;
  }

  /** Decides channel, address and sender for one customer, or refuses with the reason. */
  private async plan(customerId: string, at: number, want: { channel?: Channel; account?: string; handle?: string }): Promise<Plan> {
    let customer = keyOf(customerId);
    let ctx = await this.customer(customer, at);
    // A merged customer is reached as the customer it was merged into.
    if (ctx.mergedInto) {
      customer = keyOf(ctx.mergedInto);
      ctx = await this.customer(customer, at);
    }
    let view: ViewReply;
    try {
      view = await this.deps.store.view({ customerId: `customer:${customer}`, viewer: 'system', limit: 1 });
    } catch (e) {
      if (e instanceof StoreError && e.code === 404) throw new OutreachError(404, `no such customer: ${customerId}`);
      throw new OutreachError(503, `the identity graph did not answer: ${(e as Error).message}`);
    }
    const identities = [...view.identities].sort((a, b) => b.lastSeenAt - a.lastSeenAt);

    let channel = want.channel;
    let why = 'chosen';
    if (!channel) {
      const pref = ctx.preferredChannel;
      if (pref.channel) {
        channel = pref.channel;
        why = `preferred: ${pref.reason}`;
      } else {
        // Nothing learned yet: the identity they used last, where they have not opted out.
        const seen = identities.map((i) => CHANNEL_OF[i.channel]).find((ch): ch is Channel => ch !== undefined && contactCheck(ctx, ch).allowed);
        if (!seen) {
          const optedOut = Object.values(ctx.consent).some((c) => c?.optedIn === false);
          throw new OutreachError(optedOut ? 403 : 409, optedOut ? `outreach refused: ${pref.reason}` : `no channel to reach this customer on: ${pref.reason}`);
        }
        channel = seen;
        why = 'no channel used yet: the identity seen most recently';
      }
    }
    if (channel === 'voice') throw new OutreachError(400, 'channel: voice outreach is a call, not a message');
    const check = contactCheck(ctx, channel);
    if (!check.allowed) throw new OutreachError(403, `outreach refused: ${check.reason}`);

    const identity = identities.find((i) => i.channel === IDENTITY_OF[channel]);
    const handle = want.handle ?? identity?.handle ?? (channel === 'sms' ? view.customer.phone : channel === 'email' ? view.customer.email : undefined);
    if (!handle) throw new OutreachError(409, `no ${channel} address is known for this customer`);
    const account = want.account ?? this.deps.accounts[channel];
    if (!account) throw new OutreachError(409, `no ${channel} sender account is configured on this edge`);
    return { customer, channel, why, handle, displayName: identity?.displayName ?? view.customer.name, account, name: view.customer.name };
  }

  private async customer(key: string, at: number): Promise<CustomerView> {
    try {
      return await this.deps.actors.ask<CustomerView>(`customer/${key}`, { type: 'get', at }, { timeoutMs: 3000 });
    } catch (e) {
      throw new OutreachError(503, `customer ${key} did not answer: ${(e as Error).message}`);
    }
  }

  /** Stores the first message, opens the conversation for agents if asked, and hands the message to its edge. */
  private async carry(
    plan: Plan,
    m: { conversationId: string; messageId: string; text: string; subject?: string; by: string; at: number; open?: { queue: string; attrs: Record<string, string | boolean> } },
  ): Promise<{ conversationId: string; messageId: string }> {
    const { store, actors } = this.deps;
    let stored;
    try {
      stored = await store.append({
        customerId: `customer:${plan.customer}`,
        conversationId: `conversation:${m.conversationId}`,
        channel: plan.channel,
        channelMessageId: m.messageId,
        direction: 'out',
        author: m.by,
        text: m.text,
        subject: m.subject,
        at: m.at,
      });
    } catch (e) {
      throw new OutreachError(503, `the identity graph did not store the message: ${(e as Error).message}`);
    }
    // A repeat finds the message where it was first stored.
    const conversationId = keyOf(stored.conversationId);
    if (m.open) {
      await actors.tell(
        `conversation/${conversationId}`,
        { type: 'open', at: m.at, customer: plan.customer, channel: plan.channel, queue: m.open.queue, attrs: m.open.attrs, replyTo: { account: plan.account, handle: plan.handle, displayName: plan.displayName, subject: m.subject } },
        { msgId: `open:${conversationId}` },
      );
    }
    const out: OutboundMessage = {
      channel: plan.channel,
      account: plan.account,
      conversationId,
      messageId: m.messageId,
      to: { handle: plan.handle, displayName: plan.displayName },
      text: m.text,
      attachments: [],
      // A mail needs a subject of its own: the text's first line when none was given.
      thread: { subject: m.subject ?? (plan.channel === 'email' ? firstLine(m.text) : undefined), opens: true },
    };
    await this.js.publish(outSubject(plan.channel), enc.encode(JSON.stringify(out)), { msgID: `outreach:${m.messageId}` });
    return { conversationId, messageId: m.messageId };
  }
}

/** Serves cc.outreach.v1.open and .campaign (queue group `cc-outreach`: one edge node takes each request). */
export async function startOutreachService(deps: OutreachDeps): Promise<{ outreach: Outreach; service: Service; stop(): Promise<void> }> {
  const outreach = await Outreach.start(deps);
  const service = await new Svcm(deps.nc).add({ name: OUTREACH_SERVICE, version: '1.0.0', description: 'cc outreach: conversations we open, campaigns', queue: OUTREACH_SERVICE });
  const group = service.addGroup(OUTREACH_PREFIX);
  const ops = { open: (x: unknown) => outreach.open(x), campaign: (x: unknown) => outreach.campaign(x) };
  for (const [name, run] of Object.entries(ops)) {
    group.addEndpoint(name, {
      subject: name,
      handler: (err, msg) => {
        if (!err) void answer(msg, run);
      },
    });
  }
  async function answer(msg: ServiceMsg, run: (x: unknown) => Promise<unknown>): Promise<void> {
    try {
      let input: unknown;
      try {
        input = JSON.parse(dec.decode(msg.data));
      } catch {
        throw new OutreachError(400, 'the request is not JSON');
      }
      msg.respond(enc.encode(JSON.stringify(await run(input))));
    } catch (e) {
      const code = e instanceof OutreachError ? e.code : 500;
      const reason = e instanceof OutreachError ? e.reason : `outreach: ${(e as Error).message}`;
      if (code >= 500) deps.log.error({ reason }, 'outreach request failed');
      msg.respondError(code, reason.replace(/[\r\n]+/g, ' ').slice(0, 500), enc.encode(JSON.stringify({ error: { code, reason } })));
    }
  }
  return {
    outreach,
    service,
    async stop() {
      await service.stop();
    },
  };
}
