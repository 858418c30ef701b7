// The channel edges' peers on loopback, for tests: an SMSC (the `smpp` package's server) that accepts a
// bind (counted), answers enquire_link and unbind, and records every submit_sm (message ids SM1, SM2, …
// unless another prefix is asked for), and an SMTP relay
// (smtp-server) that records what it is given, parsed by mailparser.
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import smpp from 'smpp';
import { freePort } from '../../engine/nats-server.ts';

export interface TestSmsc {
  port: number;
  /** submit_sm PDUs in the order they came. */
  submits: smpp.PDU[];
  /** The latest bound session (a new edge's, after a restart), once one has bound. */
  readonly bound: smpp.Session | undefined;
  /** Binds so far. */
  readonly binds: number;
  close(): Promise<void>;
}

/** The text of a submit_sm (a plain string, or the message part of a decoded one). */
export const submittedText = (p: smpp.PDU): string => String((p.short_message as { message?: string })?.message ?? p.short_message);

export async function startSmsc(o: { messageIdPrefix?: string } = {}): Promise<TestSmsc> {
  const submits: smpp.PDU[] = [];
  let bound: smpp.Session | undefined;
  let binds = 0;
  const server = smpp.createServer({}, (session) => {
    session.on('error', () => undefined);
    session.on('bind_transceiver', (pdu) => {
      session.send(pdu.response());
      bound = session;
      binds++;
    });
    session.on('enquire_link', (pdu) => session.send(pdu.response()));
    session.on('unbind', (pdu) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('submit_sm', (pdu) => {
      submits.push(pdu);
      session.send(pdu.response({ message_id: `${o.messageIdPrefix ?? 'SM'}${submits.length}` }));
    });
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', () => ok()));
  return {
    port,
    submits,
    get bound() {
      return bound;
    },
    get binds() {
      return binds;
    },
    close: () =>
      new Promise<void>((ok) => {
        for (const s of [...server.sessions]) s.destroy();
        server.close(() => ok());
      }),
  };
}

export interface TestRelay {
  port: number;
  relayed: ParsedMail[];
  close(): Promise<void>;
}

export async function startSmtpRelay(): Promise<TestRelay> {
  const relayed: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _s, done) {
      simpleParser(stream).then((m) => (relayed.push(m), done()), done);
    },
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  return { port, relayed, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}
