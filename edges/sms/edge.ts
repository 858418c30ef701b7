/// <reference path="./smpp.d.ts" />
// The SMS edge: an ESME bound to an SMSC over SMPP 3.4 (bind_transceiver).
// Inbound deliver_sm → InboundMessage (GSM 7-bit / UCS-2 decoded, concatenated parts reassembled);
// deliver_sm that are delivery receipts → DeliveryUpdates for the message whose submit_sm the SMSC
// answered with that message_id (the map lives in receipts.ts: NATS KV on an engine, so it survives a
// restart). Outbound submit_sm with UDH concatenation and registered_delivery.
// A deliver_sm is answered only once the engine has it, so a failure makes the SMSC deliver again;
// to an unknown number of ours it is answered ESME_RINVDSTADR.
import * as v from 'valibot';
import type smpp from 'smpp';
import type { Registry } from 'prom-client';
import { EdgeRejection, InboundMessageSchema, parseOutbound, oncePerMessage, type DeliveryUpdate, type Edge, type InboundMessage, type InboundSink, type OutboundMessage } from '../message.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { backoffMs, edgeCounters, silentEdgeLog, type EdgeCounters, type EdgeLog } from '../edge-metrics.ts';
import { EsmeLink, SmppError, type SmscConfig } from './esme.ts';
import { MESSAGE_STATES, SmsTooLong, concatInfo, encodeSms, parseReceipt, receiptOutcome, smppAddress, type SmsPart } from './encoding.ts';
import { DEFAULT_PART_TIMEOUT_MS, Reassembler, memoryParts, type Assembled, type PartOrigin, type PartStore } from './reassembly.ts';
import { memoryReceipts, type PartRef, type Progress, type ReceiptStore } from './receipts.ts';

/** Our sender numbers / short codes; TON/NPI are inferred unless given. */
export const SmsAccountSchema = v.object({
  number: v.pipe(v.string(), v.regex(/^\+?[0-9A-Za-z ]{2,20}$/, 'must be a phone number, short code or alphanumeric sender id')),
  ton: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(6))),
  npi: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(18))),
});
export type SmsAccount = v.InferOutput<typeof SmsAccountSchema>;

const ESME_ROK = 0x00;
const ESME_RINVDSTADR = 0x0b;
const ESME_RSYSERR = 0x08;
const ESME_RX_T_APPN = 0x64;
/** submit_sm statuses worth another try: queue full, system error, throttled, submit failed, temporary app error. */
const TRANSIENT = new Set([0x14, 0x08, 0x58, 0x45, 0x64]);

export interface SmsEdgeOptions {
  smsc: SmscConfig;
  /** Numbers we receive on and send from: `"10690001"`, `"+15550100"` or `{ number, ton, npi }`. */
  accounts: Array<string | SmsAccount>;
  sink: InboundSink;
  /** Not used by SMS itself (no attachments on SMPP); accepted so edges are wired alike. */
  blobs?: BlobStore;
  log?: EdgeLog;
  metrics?: Registry;
  /** How long to wait for missing parts of a concatenated message; default 5 minutes. */
  partTimeoutMs?: number;
  /** Most parts one outbound text may take; default 10. */
  maxParts?: number;
  retry?: { tries?: number; baseMs?: number; maxMs?: number };
  /** How long a send waits for a bound link per try; default 10 s. */
  bindWaitMs?: number;
  /** How long receipts are awaited for a sent message, when receipts live in memory; default 72 h. */
  receiptTtlMs?: number;
  /**
   * Where SMSC ids of sent parts and receipt progress are kept (receipts.ts): `kvReceipts` (NATS KV)
   * survives restarts and is shared by edge nodes; default: this edge's memory.
   */
  receipts?: ReceiptStore;
  /**
   * Where parts of concatenated inbound messages wait (reassembly.ts): `kvParts` (NATS KV, made with the
   * same partTimeoutMs) survives restarts and is shared by edge nodes; default: this edge's memory.
   */
  parts?: PartStore;
  now?: () => number;
}

export interface SmsEdge extends Edge {
  readonly counters: EdgeCounters;
  /** Binds so far (1 after start, +1 per rebind). */
  readonly binds: number;
  /** Resolves once bound to the SMSC (or rejects after timeoutMs). */
  ready(timeoutMs?: number): Promise<void>;
}

class Malformed extends Error {}

const sha256 = async (s: string) =>
  Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s))), (b) => b.toString(16).padStart(2, '0')).join('');

function inferTonNpi(a: SmsAccount): { ton: number; npi: number } {
  if (a.ton !== undefined && a.npi !== undefined) return { ton: a.ton, npi: a.npi };
  if (/[A-Za-z]/.test(a.number)) return { ton: a.ton ?? 5, npi: a.npi ?? 0 }; // alphanumeric sender id
  const digits = smppAddress(a.number);
  if (a.number.startsWith('+') || digits.length >= 10) return { ton: a.ton ?? 1, npi: a.npi ?? 1 }; // international
  return { ton: a.ton ?? 3, npi: a.npi ?? 0 }; // short code (network specific)
}

/** The text of a decoded short_message / message_payload field. */
function textOf(field: unknown): { text: string; udh?: Uint8Array[] } | undefined {
  if (field && typeof field === 'object' && 'message' in field) {
    const m = (field as smpp.DecodedMessage).message;
    return { text: typeof m === 'string' ? m : new TextDecoder().decode(m), udh: (field as smpp.DecodedMessage).udh };
  }
  return undefined;
}

export async function startSmsEdge(o: SmsEdgeOptions): Promise<SmsEdge> {
  const parsed = v.safeParse(v.pipe(v.array(v.union([v.pipe(v.string(), v.transform((number) => ({ number }))), SmsAccountSchema])), v.minLength(1, 'at least one sender number is needed'), v.array(SmsAccountSchema)), o.accounts);
  if (!parsed.success) throw new Error(`sms edge: accounts: ${parsed.issues[0].message}`);
  const accounts = new Map(parsed.output.map((a) => [smppAddress(a.number), a]));
  const log = o.log ?? silentEdgeLog;
  const counters = edgeCounters('sms', o.metrics);
  const now = o.now ?? Date.now;
  const retry = { tries: 5, baseMs: 1000, maxMs: 30_000, ...o.retry };
  // SMSC message_id → which part of which message; and each message's receipt progress.
  const ownReceipts = o.receipts ? undefined : memoryReceipts(o.receiptTtlMs, now);
  const receipts = o.receipts ?? ownReceipts!;
  // Content keys of inbound messages handed to the engine but not acknowledged to the SMSC: a
  // redelivery reuses the id, so the engine applies it once. (SMPP gives MO messages no id of their own.)
  const unacked = new Map<string, { id: string; at: number }>();
  let ref = Math.floor(Math.random() * 256);

  const normId = (id: string) => id.trim().toLowerCase().replace(/^0+(?=.)/, '');

  async function report(u: DeliveryUpdate): Promise<void> {
    try {
      await o.sink.delivery(u);
    } catch (e) {
      log.error({ err: (e as Error).message, messageId: u.messageId, state: u.state }, 'sms: delivery state not recorded');
      throw e;
    }
  }

  function respond(session: smpp.Session, pdu: smpp.PDU, status: number): Promise<boolean> {
    return new Promise((ok) => {
      // A socket that closes before flushing never calls back.
      const closed = () => ok(false);
      session.socket.once('close', closed);
      const flushed = (v: boolean) => {
        session.socket.off('close', closed);
        ok(v);
      };
      if (!session.send(pdu.response({ command_status: status }), undefined, () => flushed(true))) flushed(false);
    });
  }

  /** `since` names a reassembled message the same on every node (when its first part came). */
  async function deliverInbound(key: string, build: (id: string) => InboundMessage, since?: number): Promise<void> {
    const id = unacked.get(key)?.id ?? `sms:${key.slice(0, 32)}.${since ?? now()}`;
    unacked.set(key, { id, at: now() });
    const r = v.safeParse(InboundMessageSchema, build(id));
    if (!r.success) throw new Malformed(`${r.issues[0].path?.map((p) => String(p.key)).join('.') ?? 'message'}: ${r.issues[0].message}`);
    await o.sink.deliver(r.output);
  }

  const originOf = (account: string, pdu: smpp.PDU): PartOrigin => ({ account, src: String(pdu.source_addr ?? ''), sourceTon: Number(pdu.source_addr_ton ?? 0), dataCoding: Number(pdu.data_coding ?? 0) });

  function inboundMessage(id: string, origin: PartOrigin, text: string, meta: Record<string, string | number | boolean>): InboundMessage {
    const src = origin.src;
    const handle = origin.sourceTon === 1 && /^\d+$/.test(src) ? `+${src}` : src;
    return {
      channel: 'sms',
      account: origin.account,
      channelMessageId: id,
      from: { handle, ...(/^\+?\d{5,}$/.test(handle) ? { phone: handle } : {}) },
      text,
      attachments: [],
      sentAt: now(),
      meta: { sourceTon: origin.sourceTon, dataCoding: origin.dataCoding, ...meta },
    };
  }

  async function handOver(key: string, origin: PartOrigin, text: string, meta: Record<string, string | number | boolean>, since?: number): Promise<number> {
    try {
      await deliverInbound(key, (id) => inboundMessage(id, origin, text, meta), since);
      counters.received.inc({ account: origin.account });
      return ESME_ROK;
    } catch (e) {
      if (e instanceof Malformed) {
        log.warn({ err: e.message }, 'sms: deliver_sm is not a valid message');
        counters.rejected.inc({ reason: 'malformed' });
        return ESME_RSYSERR;
      }
      log.error({ err: (e as Error).message }, 'sms: engine did not take the message; the smsc will redeliver');
      counters.rejected.inc({ reason: 'engine_unavailable' });
      return ESME_RX_T_APPN;
    }
  }

  const ownParts = o.parts ? undefined : memoryParts();
  const parts = new Reassembler(o.parts ?? ownParts!, o.partTimeoutMs ?? DEFAULT_PART_TIMEOUT_MS, lateParts, {
    now,
    onError: (e) => log.error({ err: e.message }, 'sms: held parts could not be swept; trying again later'),
  });

  /** A group past the timeout (left by this or an earlier process): what came, gaps marked; the next sweep retries a failure. */
  async function lateParts(key: string, a: Assembled): Promise<boolean> {
    if (a.missing) log.warn({ missing: a.missing, total: a.total }, 'sms: parts missing after the timeout, delivering what came');
    const meta: Record<string, number> = a.missing ? { parts: a.total, partsMissing: a.missing } : { parts: a.total };
    const status = await handOver(key, a.first, a.text, meta, a.since);
    if (status === ESME_ROK) unacked.delete(key);
    return status === ESME_ROK;
  }

  async function onReceipt(session: smpp.Session, pdu: smpp.PDU, text: string): Promise<void> {
    const parsedReceipt = parseReceipt(text);
    const tlvId = typeof pdu.receipted_message_id === 'string' ? pdu.receipted_message_id : undefined;
    const id = tlvId ?? parsedReceipt?.id;
    const stat = parsedReceipt?.stat ?? (typeof pdu.message_state === 'number' ? MESSAGE_STATES[pdu.message_state] : undefined);
    const entry = id && stat ? await lookupReceipt(id) : undefined;
    if (!id || !stat || !entry) {
      // Answer anyway: refusing would only make the SMSC resend a receipt we cannot place.
      counters.rejected.inc({ reason: id && stat ? 'unknown_receipt' : 'bad_receipt' });
      log.warn({ id, stat }, 'sms: receipt for no message we know');
      await respond(session, pdu, ESME_ROK);
      return;
    }
    if (entry === 'unavailable') return void (await respond(session, pdu, ESME_RX_T_APPN)); // the SMSC tries again
    const outcome = receiptOutcome(stat);
    const { messageId, conversationId, part, total } = entry;
    const base = { messageId, conversationId, channel: 'sms' as const, at: now(), channelMessageId: id };
    // The progress change and the update it calls for; undone when the update cannot be recorded.
    let step: { change: (p: Progress) => Progress; undo: (p: Progress) => Progress; update: DeliveryUpdate } | undefined;
    if (outcome?.state === 'delivered') {
      step = {
        change: (p) => {
          const delivered = p.delivered.includes(part) ? p.delivered : [...p.delivered, part];
          return { delivered, finished: p.finished || delivered.length === total };
        },
        undo: (p) => ({ delivered: p.delivered.filter((x) => x !== part), finished: false }),
        update: { ...base, state: 'delivered' },
      };
    } else if (outcome?.state === 'failed') {
      const err = parsedReceipt?.err ? ` (error ${parsedReceipt.err})` : '';
      step = {
        change: (p) => ({ ...p, finished: true }),
        undo: (p) => ({ ...p, finished: false }),
        update: { ...base, state: 'failed', permanent: outcome.permanent, reason: `SMSC reports ${stat}${err}` },
      };
    }
    if (step) {
      let moved: { before: Progress; after: Progress };
      try {
        moved = await receipts.progress(messageId, step.change);
      } catch (e) {
        log.error({ err: (e as Error).message, id }, 'sms: receipt progress not recorded; the smsc will resend the receipt');
        return void (await respond(session, pdu, ESME_RX_T_APPN));
      }
      // Reported once: by whichever receipt finished the message.
      if (!moved.before.finished && moved.after.finished) {
        if (step.update.state === 'failed') counters.failed.inc({ permanent: String(step.update.permanent) });
        try {
          await report(step.update);
        } catch {
          await receipts.progress(messageId, step.undo).catch(() => undefined);
          await respond(session, pdu, ESME_RX_T_APPN);
          return;
        }
      }
    }
    await respond(session, pdu, ESME_ROK);
  }

  /** The part an SMSC id names; 'unavailable' when the store cannot be read now. */
  async function lookupReceipt(id: string): Promise<PartRef | 'unavailable' | undefined> {
    try {
      return await receipts.lookup(normId(id));
    } catch (e) {
      log.error({ err: (e as Error).message, id }, 'sms: receipt store unavailable');
      return 'unavailable';
    }
  }

  async function onDeliver(session: smpp.Session, pdu: smpp.PDU): Promise<void> {
    const esm = Number(pdu.esm_class ?? 0);
    const body = textOf(pdu.short_message) ?? textOf(pdu.message_payload);
    const type = esm & 0x3c;
    if (type === 0x04 || type === 0x20) return onReceipt(session, pdu, body?.text ?? '');
    if (type !== 0) return void (await respond(session, pdu, ESME_ROK)); // SME acknowledgements: nothing to do
    const account = smppAddress(String(pdu.destination_addr ?? ''));
    if (!accounts.has(account)) {
      counters.rejected.inc({ reason: 'unknown_account' });
      log.warn({ destination: account }, 'sms: deliver_sm for a number that is not ours');
      await respond(session, pdu, ESME_RINVDSTADR);
      return;
    }
    if (!body) {
      counters.rejected.inc({ reason: 'malformed' });
      await respond(session, pdu, ESME_RSYSERR);
      return;
    }
    const src = String(pdu.source_addr ?? '');
    const concat = concatInfo(body.udh);
    const umr = pdu.user_message_reference ?? '';
    if (concat && concat.total > 1) {
      const key = await sha256(`${src}|${account}|${concat.ref}|${concat.total}|${umr}`);
      let whole: Assembled | undefined;
      try {
        whole = await parts.add(key, concat.total, concat.seq, body.text, originOf(account, pdu));
      } catch (e) {
        log.error({ err: (e as Error).message }, 'sms: part not held; the smsc will redeliver');
        counters.rejected.inc({ reason: 'part_not_stored' });
        return void (await respond(session, pdu, ESME_RX_T_APPN));
      }
      if (!whole) return void (await respond(session, pdu, ESME_ROK)); // held until the rest comes
      const status = await handOver(key, whole.first, whole.text, { parts: whole.total }, whole.since);
      // Parts left behind are handed over again by the sweep, under the same id: applied once.
      if (status === ESME_ROK) await parts.done(key).catch((e: Error) => log.warn({ err: e.message }, 'sms: delivered parts not dropped'));
      if ((await respond(session, pdu, status)) && status === ESME_ROK) unacked.delete(key);
      return;
    }
    const key = await sha256(`${src}|${account}|${umr}|${body.text}`);
    const status = await handOver(key, originOf(account, pdu), body.text, {});
    if ((await respond(session, pdu, status)) && status === ESME_ROK) unacked.delete(key);
  }

  const link = new EsmeLink(o.smsc, log, (session, pdu) => {
    onDeliver(session, pdu).catch((e: Error) => {
      log.error({ err: e.message }, 'sms: deliver_sm handling failed');
      void respond(session, pdu, ESME_RSYSERR);
    });
  });
  link.start();

  // Forget stale redelivery keys (receipts expire in their store).
  const sweep = setInterval(() => {
    const t = now();
    for (const [k, e] of unacked) if (t - e.at > 3600_000) unacked.delete(k);
  }, 60_000);
  sweep.unref?.();

  async function submit(msg: OutboundMessage, account: SmsAccount, list: SmsPart[]): Promise<DeliveryUpdate> {
    const base = { messageId: msg.messageId, conversationId: msg.conversationId, channel: 'sms' as const };
    const { ton, npi } = inferTonNpi(account);
    const ids: string[] = [];
    let last: SmppError = new SmppError('not tried');
    let attempt = 0;
    // Parts accepted stay accepted: a retry resumes at the first part the SMSC has not taken.
    while (ids.length < list.length && attempt < retry.tries) {
      attempt++;
      try {
        const session = await link.whenBound(o.bindWaitMs ?? 10_000);
        for (let i = ids.length; i < list.length; i++) {
          const p = list[i];
          const resp = await link.request(session, 'submit_sm', {
            source_addr: smppAddress(account.number),
            source_addr_ton: ton,
            source_addr_npi: npi,
            destination_addr: smppAddress(msg.to.handle),
            dest_addr_ton: msg.to.handle.startsWith('+') ? 1 : 0,
            dest_addr_npi: 1,
            esm_class: p.esmClass,
            data_coding: p.dataCoding,
            registered_delivery: 1,
            short_message: Buffer.from(p.bytes),
          });
          const smscId = String(resp.message_id ?? '');
          ids.push(smscId);
          // Not remembered means its receipt cannot be placed later: said loudly, the send still stands.
          await receipts.remember(normId(smscId), { messageId: msg.messageId, conversationId: msg.conversationId, part: i, total: list.length, at: now() }).catch((e: Error) => {
            counters.rejected.inc({ reason: 'receipt_not_stored' });
            log.error({ err: e.message, messageId: msg.messageId, smscId }, 'sms: could not remember the smsc id; its receipt will be unknown');
          });
        }
      } catch (e) {
        last = e instanceof SmppError ? e : new SmppError((e as Error).message);
        if (last.status !== undefined && !TRANSIENT.has(last.status)) break;
        log.warn({ messageId: msg.messageId, attempt, err: last.message }, 'sms: submit failed, will retry');
        if (attempt < retry.tries) await new Promise((r) => setTimeout(r, backoffMs(attempt, retry.baseMs, retry.maxMs)));
      }
    }
    if (ids.length === list.length) {
      counters.sent.inc({ account: smppAddress(account.number) });
      const u: DeliveryUpdate = { ...base, state: 'sent', at: now(), channelMessageId: ids.join(',') };
      await report(u).catch(() => undefined);
      return u;
    }
    const permanent = last.status !== undefined && !TRANSIENT.has(last.status);
    const partial = ids.length ? ` (${ids.length} of ${list.length} parts were accepted)` : '';
    const reason = permanent ? `SMSC refused the message: ${last.message}${partial}` : `gave up after ${attempt} tries: ${last.message}${partial}`;
    // Receipts for parts that did go out must not make a failed message delivered.
    if (ids.length) await receipts.progress(msg.messageId, (p) => ({ ...p, finished: true })).catch(() => undefined);
    counters.failed.inc({ permanent: String(permanent) });
    const u: DeliveryUpdate = { ...base, state: 'failed', at: now(), permanent, reason };
    await report(u).catch(() => undefined);
    return u;
  }


  const sendOnce = oncePerMessage(send);

  async function send(msg: OutboundMessage): Promise<DeliveryUpdate> {
    const base = { messageId: msg.messageId, conversationId: msg.conversationId, channel: 'sms' as const };
    const account = accounts.get(smppAddress(msg.account));
    const fail = async (reason: string): Promise<DeliveryUpdate> => {
      counters.failed.inc({ permanent: 'true' });
      const u: DeliveryUpdate = { ...base, state: 'failed', at: now(), permanent: true, reason };
      await report(u).catch(() => undefined);
      return u;
    };
    if (!account) return fail(`no SMS sender number ${JSON.stringify(msg.account)} is configured`);
    if (msg.attachments.length) return fail('SMS cannot carry attachments');
    let list: SmsPart[];
    try {
      ref = (ref + 1) & 0xff;
      list = encodeSms(msg.text ?? '', { ref, maxParts: o.maxParts ?? 10 });
    } catch (e) {
      if (e instanceof SmsTooLong) return fail(e.message);
      throw e;
    }
    await report({ ...base, state: 'queued', at: now() }).catch(() => undefined);
    return submit(msg, account, list);
  }

  return {
    channel: 'sms',
    counters,
    get binds() {
      return link.binds;
    },
    async ready(timeoutMs = 10_000) {
      await link.whenBound(timeoutMs);
    },
    send(input: OutboundMessage): Promise<DeliveryUpdate> {
      let msg: OutboundMessage;
      try {
        msg = parseOutbound(input, 'sms');
      } catch (e) {
        return Promise.reject(e);
      }
      if (!/^\+?\d{3,20}$/.test(smppAddress(msg.to.handle))) return Promise.reject(new EdgeRejection(400, `outbound sms: ${JSON.stringify(msg.to.handle)} is not a phone number`));
      if (!msg.text) return Promise.reject(new EdgeRejection(400, 'outbound sms: text is required'));
      return sendOnce(msg);
    },
    async close() {
      clearInterval(sweep);
      await parts.close();
      await link.close();
      await ownReceipts?.close();
      await ownParts?.close();
    },
  };
}
