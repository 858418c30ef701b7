// Replies leave through the configured SMTP relay (nodemailer): text and HTML parts, threading
// headers (In-Reply-To, References, "Re:" subject), a Message-ID and Reply-To that name the
// conversation, attachments streamed from the object store. Transient failures (4xx, connection
// trouble) retry with backoff up to `tries`; 5xx fails for good. Each state goes to the sink.
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { BlobStore } from '../../storage/blobs/store.ts';
import type { DeliveryUpdate, InboundSink, OutboundMessage } from '../message.ts';
import { backoffMs, type EdgeCounters, type EdgeLog } from '../edge-metrics.ts';
import { outboundMessageId, replyAddress, type EmailAccount } from './address.ts';

export interface RelayConfig {
  host: string;
  port: number;
  /** Implicit TLS (port 465); otherwise STARTTLS is used when the relay offers it. */
  secure?: boolean;
  /** Refuse to send without STARTTLS. */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  /** Accept a self-signed relay certificate (tests, private relays). */
  allowSelfSigned?: boolean;
  timeoutMs?: number;
}

export interface RetryPolicy {
  tries: number;
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { tries: 5, baseMs: 1000, maxMs: 30_000 };

export interface SenderDeps {
  relay: RelayConfig;
  accounts: ReadonlyMap<string, EmailAccount>;
  blobs?: BlobStore;
  sink: InboundSink;
  counters: EdgeCounters;
  log: EdgeLog;
  retry: RetryPolicy;
  now: () => number;
}

interface SmtpError {
  message: string;
  code?: string;
  responseCode?: number;
  response?: string;
}

/** 5xx is a permanent refusal; everything else (4xx, refused or dropped connections, timeouts) may pass later. */
export function isPermanent(e: SmtpError): boolean {
  return typeof e.responseCode === 'number' && e.responseCode >= 500;
}

function reasonOf(e: SmtpError): string {
  const r = (e.response ?? e.message).replace(/\s+/g, ' ').trim().slice(0, 300);
  return e.responseCode ? `relay answered ${r}` : `${e.code ? `${e.code}: ` : ''}${r}`;
}

export function replySubject(subject: string | undefined): string {
  const s = (subject ?? '').trim();
  if (!s) return 'Re: your message';
  return /^re:/i.test(s) ? s : `Re: ${s}`;
}

export function emailSender(d: SenderDeps): (msg: OutboundMessage) => Promise<DeliveryUpdate> {
  const transport = nodemailer.createTransport({
    host: d.relay.host,
    port: d.relay.port,
    secure: d.relay.secure ?? false,
    requireTLS: d.relay.requireTLS ?? false,
    auth: d.relay.auth,
    tls: d.relay.allowSelfSigned ? { rejectUnauthorized: false } : undefined,
    connectionTimeout: d.relay.timeoutMs ?? 10_000,
    greetingTimeout: d.relay.timeoutMs ?? 10_000,
    socketTimeout: (d.relay.timeoutMs ?? 10_000) * 3,
  });

  async function report(u: DeliveryUpdate): Promise<void> {
    try {
      await d.sink.delivery(u);
    } catch (e) {
      d.log.error({ err: (e as Error).message, messageId: u.messageId, state: u.state }, 'email: delivery state not recorded');
    }
  }

  async function attachmentsFor(msg: OutboundMessage) {
    const list = [];
    for (const a of msg.attachments) {
      if (!d.blobs) throw Object.assign(new Error('attachments need an object store, none configured'), { responseCode: 554 });
      let got;
      try {
        got = await d.blobs.get(a.key);
      } catch (e) {
        const notFound = (e as { code?: string }).code === 'not_found';
        throw Object.assign(new Error(`attachment ${JSON.stringify(a.name)}: ${(e as Error).message}`), notFound ? { responseCode: 554 } : { code: 'EBLOB' });
      }
      list.push({ filename: a.name, contentType: a.contentType, content: Readable.fromWeb(got.body as import('node:stream/web').ReadableStream<Uint8Array>) });
    }
    return list;
  }

  return async (msg) => {
    const base = { messageId: msg.messageId, conversationId: msg.conversationId, channel: 'email' as const };
    const account = d.accounts.get(msg.account.toLowerCase());
    if (!account) {
      const u: DeliveryUpdate = { ...base, state: 'failed', at: d.now(), permanent: true, reason: `no email account ${JSON.stringify(msg.account)} is configured` };
      d.counters.failed.inc({ permanent: 'true' });
      await report(u);
      return u;
    }
    const headerId = outboundMessageId(account.address, msg.conversationId, msg.messageId);
    const refs = [...(msg.thread?.references ?? [])];
    if (msg.thread?.inReplyTo && !refs.includes(msg.thread.inReplyTo)) refs.push(msg.thread.inReplyTo);
    await report({ ...base, state: 'queued', at: d.now(), channelMessageId: headerId });

    let last: SmtpError = { message: 'not tried' };
    for (let attempt = 1; attempt <= d.retry.tries; attempt++) {
      try {
        const info = await transport.sendMail({
          from: { name: account.name ?? '', address: account.address },
          to: { name: msg.to.displayName ?? '', address: msg.to.handle },
          replyTo: replyAddress(account.address, msg.conversationId),
          // A message that opens the thread (outreach) answers nothing: its subject stays as given.
          subject: msg.thread?.opens && msg.thread.subject?.trim() ? msg.thread.subject.trim() : replySubject(msg.thread?.subject),
          text: msg.text,
          html: msg.html,
          messageId: headerId,
          inReplyTo: msg.thread?.inReplyTo,
          references: refs.length ? refs : undefined,
          attachments: await attachmentsFor(msg),
        });
        d.counters.sent.inc({ account: account.address });
        d.log.info({ messageId: msg.messageId, attempt, response: info.response }, 'email: sent');
        const u: DeliveryUpdate = { ...base, state: 'sent', at: d.now(), channelMessageId: headerId };
        await report(u);
        return u;
      } catch (e) {
        last = e as SmtpError;
        if (isPermanent(last)) break;
        d.log.warn({ messageId: msg.messageId, attempt, err: reasonOf(last) }, 'email: relay failed, will retry');
        if (attempt < d.retry.tries) await new Promise((r) => setTimeout(r, backoffMs(attempt, d.retry.baseMs, d.retry.maxMs)));
      }
    }
    const permanent = isPermanent(last);
    const reason = permanent ? reasonOf(last) : `gave up after ${d.retry.tries} tries: ${reasonOf(last)}`;
    d.counters.failed.inc({ permanent: String(permanent) });
    d.log.warn({ messageId: msg.messageId, reason, permanent }, 'email: not sent');
    const u: DeliveryUpdate = { ...base, state: 'failed', at: d.now(), permanent, reason, channelMessageId: headerId };
    await report(u);
    return u;
  };
}
