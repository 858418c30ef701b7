/// <reference path="./smpp.d.ts" />
// One ESME link to an SMSC: bind_transceiver, enquire_link keep-alive (a link that stops answering
// is dropped), and reconnect + rebind with backoff whenever the SMSC drops us, refuses the bind or
// unbinds. Requests wait for a bound link and time out; a lost link fails what was in flight.
import smpp from 'smpp';
import { backoffMs, type EdgeLog } from '../edge-metrics.ts';

export interface SmscConfig {
  host: string;
  port: number;
  systemId: string;
  password: string;
  systemType?: string;
  enquireLinkMs?: number;
  /** How long a request (bind, submit_sm, enquire_link) may wait for its response. */
  responseTimeoutMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
}

export class SmppError extends Error {
  constructor(
    message: string,
    /** The SMPP command_status, when the SMSC answered with one. */
    readonly status?: number,
  ) {
    super(message);
  }
}

type Waiter = { ok: (s: smpp.Session) => void; fail: (e: Error) => void; timer: ReturnType<typeof setTimeout> };

export class EsmeLink {
  private session: smpp.Session | undefined;
  private boundSession: smpp.Session | undefined;
  private waiters = new Set<Waiter>();
  private pending = new Map<number, (e: Error) => void>();
  private failures = 0;
  private closing = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private enquireTimer: ReturnType<typeof setInterval> | undefined;
  /** Successful binds so far (the first plus every rebind). */
  binds = 0;

  constructor(
    private readonly cfg: SmscConfig,
    private readonly log: EdgeLog,
    /** Requests from the SMSC (deliver_sm…), with the session to answer on. */
    private readonly onRequest: (session: smpp.Session, pdu: smpp.PDU) => void,
  ) {}

  get isBound(): boolean {
    return this.boundSession !== undefined;
  }

  start(): void {
    this.connect();
  }

  private get timeoutMs(): number {
    return this.cfg.responseTimeoutMs ?? 10_000;
  }

  private connect(): void {
    if (this.closing) return;
    const s = smpp.connect({ host: this.cfg.host, port: this.cfg.port });
    this.session = s;
    s.on('connect', () => {
      this.request(s, 'bind_transceiver', { system_id: this.cfg.systemId, password: this.cfg.password, system_type: this.cfg.systemType ?? '', interface_version: 0x34 }).then(
        () => this.bound(s),
        (e: Error) => {
          this.log.warn({ err: e.message }, 'sms: bind refused');
          s.destroy();
        },
      );
    });
    // Any error (refused connection, unparsable PDU) ends this link; 'close' follows and reconnects.
    s.on('error', (e: Error) => {
      this.log.warn({ err: e.message }, 'sms: smsc link error');
      s.destroy();
    });
    s.on('close', () => this.lost(s));
    s.on('enquire_link', (pdu: smpp.PDU) => s.send(pdu.response()));
    s.on('unbind', (pdu: smpp.PDU) => {
      this.log.info({}, 'sms: smsc unbound us');
      s.send(pdu.response(), undefined, () => s.close());
    });
    s.on('deliver_sm', (pdu: smpp.PDU) => this.onRequest(s, pdu));
    s.on('data_sm', (pdu: smpp.PDU) => s.send(pdu.response({ command_status: smpp.errors.ESME_RINVCMDID })));
    s.on('unknown', (pdu: smpp.PDU) => s.send(pdu.response()));
  }

  private bound(s: smpp.Session): void {
    if (this.session !== s) return;
    this.boundSession = s;
    this.failures = 0;
    this.binds++;
    this.log.info({ host: this.cfg.host, port: this.cfg.port, binds: this.binds }, 'sms: bound to smsc');
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.ok(s);
    }
    this.waiters.clear();
    clearInterval(this.enquireTimer);
    this.enquireTimer = setInterval(() => {
      this.request(s, 'enquire_link', {}).catch((e: Error) => {
        this.log.warn({ err: e.message }, 'sms: smsc stopped answering enquire_link, reconnecting');
        s.destroy();
      });
    }, this.cfg.enquireLinkMs ?? 30_000);
  }

  private lost(s: smpp.Session): void {
    if (this.session !== s) return;
    this.session = undefined;
    this.boundSession = undefined;
    clearInterval(this.enquireTimer);
    for (const fail of this.pending.values()) fail(new SmppError('link to the smsc was lost'));
    this.pending.clear();
    if (this.closing) return;
    this.failures++;
    const delay = backoffMs(this.failures, this.cfg.reconnectBaseMs ?? 500, this.cfg.reconnectMaxMs ?? 30_000);
    this.log.warn({ inMs: delay, failures: this.failures }, 'sms: smsc link down, reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** The bound session, waiting up to timeoutMs for a (re)bind. */
  whenBound(timeoutMs: number): Promise<smpp.Session> {
    if (this.boundSession) return Promise.resolve(this.boundSession);
    if (this.closing) return Promise.reject(new SmppError('sms edge is closed'));
    return new Promise((ok, fail) => {
      const w: Waiter = {
        ok,
        fail,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          fail(new SmppError(`not bound to the smsc within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.add(w);
    });
  }

  /** Sends a request on a session and resolves with its response (status 0), else rejects with the status. */
  request(s: smpp.Session, command: string, params: Record<string, unknown>): Promise<smpp.PDU> {
    return new Promise((ok, fail) => {
      const pdu = new smpp.PDU(command, params);
      let seq = 0;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        fail(new SmppError(`no ${command}_resp within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const sent = s.send(pdu, (resp) => {
        clearTimeout(timer);
        this.pending.delete(seq);
        if (resp.command_status === 0) ok(resp);
        else fail(new SmppError(`${command} refused with status 0x${resp.command_status.toString(16)}`, resp.command_status));
      });
      if (!sent) {
        clearTimeout(timer);
        return fail(new SmppError('link to the smsc is not writable'));
      }
      seq = pdu.sequence_number;
      this.pending.set(seq, (e) => {
        clearTimeout(timer);
        fail(e);
      });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.enquireTimer);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.fail(new SmppError('sms edge is closed'));
    }
    this.waiters.clear();
    const s = this.session;
    if (!s || s.socket.destroyed) return;
    if (this.boundSession === s) await this.request(s, 'unbind', {}).catch(() => undefined);
    await new Promise<void>((ok) => {
      const t = setTimeout(() => s.destroy(), 2000);
      s.socket.once('close', () => {
        clearTimeout(t);
        ok();
      });
      s.close();
    });
  }
}
