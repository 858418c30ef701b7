// The email edge: an SMTP listener for our mailboxes (inbound) and a relay client (outbound).
// Inbound refusals happen inside the SMTP dialogue, so the sending MTA bounces with our reason:
//   550 unknown mailbox (at RCPT TO) or no usable sender · 552 mail or attachment too big ·
//   554 malformed mail or attachment type not accepted · 451 the engine could not take it now (retry).
// A refused attachment refuses the whole mail (the sender learns why; nothing half-arrives).
import * as v from 'valibot';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Registry } from 'prom-client';
import type { BlobStore } from '../../storage/blobs/store.ts';
import { EdgeRejection, parseOutbound, oncePerMessage, type DeliveryUpdate, type Edge, type InboundSink, type OutboundMessage } from '../message.ts';
import { edgeCounters, silentEdgeLog, type EdgeCounters, type EdgeLog } from '../edge-metrics.ts';
import { EmailAccountsSchema, domainOf, parseRecipient, type EmailAccount } from './address.ts';
import { DEFAULT_ATTACHMENT_POLICY, mailToInbound, type AttachmentPolicy } from './inbound.ts';
import { DEFAULT_RETRY, emailSender, type RelayConfig, type RetryPolicy } from './outbound.ts';

export interface EmailEdgeOptions {
  /** Port of the SMTP listener (SMTP_PORT); 0 picks a free one. */
  smtpPort: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Mailboxes we accept for and send from: `support@example.test` or `{ address, name }`. */
  accounts: Array<string | { address: string; name?: string }>;
  relay: RelayConfig;
  sink: InboundSink;
  blobs: BlobStore;
  /** Largest mail accepted (bytes, the SMTP SIZE limit); default 25 MiB. */
  maxMessageBytes?: number;
  attachments?: Partial<AttachmentPolicy>;
  retry?: Partial<RetryPolicy>;
  /** STARTTLS certificate for the listener; without one STARTTLS is not offered (see tls.ts for one). */
  tls?: { key: string | Uint8Array; cert: string | Uint8Array };
  /**
   * Refuse MAIL FROM before STARTTLS (530). Off by default: a public MX must not require it (RFC 3207 4);
   * for a listener that only your own MTAs reach.
   */
  requireTLS?: boolean;
  /** Name in the SMTP greeting. */
  serverName?: string;
  metrics?: Registry;
  log?: EdgeLog;
  now?: () => number;
}

export interface EmailEdge extends Edge {
  readonly port: number;
  readonly counters: EdgeCounters;
}

type SmtpError = Error & { responseCode?: number };

function smtpError(code: number, reason: string): SmtpError {
  return Object.assign(new Error(reason), { responseCode: code });
}

function reasonLabel(code: number): string {
  return code === 552 ? 'too_big' : code === 550 ? 'bad_sender' : code === 451 ? 'engine_unavailable' : 'not_acceptable';
}

export async function startEmailEdge(o: EmailEdgeOptions): Promise<EmailEdge> {
  const parsedAccounts = v.safeParse(EmailAccountsSchema, o.accounts);
  if (!parsedAccounts.success) throw new Error(`email edge: accounts: ${parsedAccounts.issues[0].message}`);
  if (o.requireTLS && !o.tls) throw new Error('email edge: requireTLS needs a STARTTLS certificate (tls)');
  const accounts = new Map<string, EmailAccount>(parsedAccounts.output.map((a) => [a.address, a]));
  const accountSet = new Set(accounts.keys());
  const domains = new Set([...accountSet].map(domainOf));
  const log = o.log ?? silentEdgeLog;
  const counters = edgeCounters('email', o.metrics);
  const maxBytes = o.maxMessageBytes ?? 25 * 1024 * 1024;
  const policy: AttachmentPolicy = { ...DEFAULT_ATTACHMENT_POLICY, ...o.attachments };
  const now = o.now ?? Date.now;

  async function receive(raw: Uint8Array, session: SMTPServerSession): Promise<void> {
    const ours = session.envelope.rcptTo.map((r) => parseRecipient(r.address, accountSet)).filter((r) => r !== undefined);
    const first = ours[0];
    if (!first) throw smtpError(554, 'no valid recipients');
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined;
    const msg = await mailToInbound(
      raw,
      {
        account: first.account,
        conversationId: ours.find((r) => r.conversationId)?.conversationId,
        alsoTo: [...new Set(ours.map((r) => r.account))].filter((a) => a !== first.account),
        mailFrom: mailFrom || undefined,
      },
      { blobs: o.blobs, policy, domains, now },
    );
    let result;
    try {
      result = await o.sink.deliver(msg);
    } catch (e) {
      // The engine refusing the message is final (the sender learns why); anything else may pass later.
      if (e instanceof EdgeRejection) throw smtpError(550, e.message);
      log.error({ err: (e as Error).message, channelMessageId: msg.channelMessageId }, 'email: engine did not take the message');
      throw smtpError(451, 'temporary failure, please retry later');
    }
    counters.received.inc({ account: first.account });
    log.info({ channelMessageId: msg.channelMessageId, conversationId: result.conversationId, duplicate: result.duplicate }, 'email: received');
  }

  const server = new SMTPServer({
    name: o.serverName,
    banner: 'cc email edge',
    size: maxBytes,
    authOptional: true,
    disabledCommands: o.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(o.tls ? { key: Buffer.from(o.tls.key), cert: Buffer.from(o.tls.cert) } : {}),
    logger: false,
    disableReverseLookup: true,
    onMailFrom(_address, session, cb) {
      if (!o.requireTLS || session.secure) return cb();
      counters.rejected.inc({ reason: 'tls_required' });
      cb(smtpError(530, '5.7.0 Must issue a STARTTLS command first'));
    },
    onRcptTo(address, _session, cb) {
      if (parseRecipient(address.address, accountSet)) return cb();
      counters.rejected.inc({ reason: 'unknown_account' });
      cb(smtpError(550, `5.1.1 <${address.address}>: no such mailbox here`));
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (c: Buffer) => {
        // Past the limit keep draining (the client is still sending) but hold nothing more.
        bytes += c.length;
        if (bytes <= maxBytes) chunks.push(c);
      });
      stream.once('error', (e) => {
        counters.rejected.inc({ reason: 'stream_error' });
        cb(smtpError(451, `could not read the message: ${e.message}`));
      });
      stream.once('end', () => {
        if (stream.sizeExceeded || bytes > maxBytes) {
          counters.rejected.inc({ reason: 'too_big' });
          return cb(smtpError(552, `5.3.4 message is over the ${maxBytes} byte limit`));
        }
        const raw = Buffer.concat(chunks);
        receive(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), session).then(
          () => cb(),
          (e: unknown) => {
            const err = e instanceof EdgeRejection ? smtpError(e.status, e.message) : (e as SmtpError);
            if (!err.responseCode) log.error({ err: err.message }, 'email: could not take a message');
            const code = err.responseCode ?? 451;
            counters.rejected.inc({ reason: reasonLabel(code) });
            cb(err.responseCode ? err : smtpError(451, 'temporary failure, please retry later'));
          },
        );
      });
    },
  });
  server.on('error', (e: Error) => log.warn({ err: e.message }, 'email: smtp listener error'));

  const port = await new Promise<number>((ok, fail) => {
    server.server.once('error', fail);
    server.listen(o.smtpPort, o.host ?? '127.0.0.1', () => {
      server.server.off('error', fail);
      const a = server.server.address();
      ok(typeof a === 'object' && a ? a.port : o.smtpPort);
    });
  });
  log.info({ port }, 'email: smtp listener up');

  const send = emailSender({
    relay: o.relay,
    accounts,
    blobs: o.blobs,
    sink: o.sink,
    counters,
    log,
    retry: { ...DEFAULT_RETRY, ...o.retry },
    now,
  });
  const sendOnce = oncePerMessage(send);

  return {
    channel: 'email',
    port,
    counters,
    send(input: OutboundMessage): Promise<DeliveryUpdate> {
      let msg: OutboundMessage;
      try {
        msg = parseOutbound(input, 'email');
      } catch (e) {
        return Promise.reject(e);
      }
      if (!/^[^@\s<>]+@[^@\s<>]+$/.test(msg.to.handle)) return Promise.reject(new EdgeRejection(400, `outbound email: ${JSON.stringify(msg.to.handle)} is not an email address`));
      if (!msg.text && !msg.html && msg.attachments.length === 0) return Promise.reject(new EdgeRejection(400, 'outbound email: needs text, html or attachments'));
      return sendOnce(msg);
    },
    async close() {
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
