// `npm run bench -- webchat`: 1,000 web chat visitors on one engine, each with a conversation assigned to
// an agent whose workspace WebSocket (/ws) is open; every visitor then sends at a fixed pace, and each
// message is timed from the visitor's `send` to the arrival of its event at the agent's workspace socket.
// Baseline in the same run: the same clients on a raw WebSocket echo served by the same HTTP stack
// (platform/serve.ts + Hono's upgradeWebSocket, bench/ws-echo.ts), at the same pace.
//
// The engine runs as a child process (`node --import tsx main.ts`, ROLE=all on a real nats-server, mem://
// SurrealDB): its event loop is not shared with the 2,000 client sockets this process drives, as it would
// not be in production. The echo runs in its own process too, for the same reason.
//
// Correlation: the workspace forwards `{type:'conversation', event:'customer.message', unread}` to the
// assigned agent; `unread` is the number of customer messages the workspace has seen in that conversation
// (our agents never open it, so it is never reset). The conversation actor takes one customer's messages
// in order, so the n-th such event belongs to the n-th message the server accepted from that visitor.
//
// Knobs: WEBCHAT_CONNECTIONS (1000), WEBCHAT_RATE (total messages/s while pacing, 50: one per visitor
// every 20 s), WEBCHAT_SECONDS (20), WEBCHAT_CLOSED_SECONDS (15: the closed-loop throughput phase; 0 skips
// it), WEBCHAT_IN_FLIGHT (64, in that phase), WEBCHAT_AGENT_CHATS (50), WEBCHAT_HOPS=1 (where the time goes).
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as v from 'valibot';
import WebSocket from 'ws';
import type { NatsConnection } from '@nats-io/nats-core';
import { HDR_ACTOR } from '../actors/address.ts';
import { ActorClient } from '../actors/client.ts';
import { freePort } from '../engine/nats-server.ts';
import { startTestNats, tempDir } from '../tests/support/nats.ts';
import { percentile, report } from './report.ts';

const Knobs = v.object({
  WEBCHAT_CONNECTIONS: v.optional(v.pipe(v.string(), v.transform(Number), v.integer('must be a whole number'), v.minValue(1), v.maxValue(5000)), '1000'),
  WEBCHAT_RATE: v.optional(v.pipe(v.string(), v.transform(Number), v.number(), v.minValue(1), v.maxValue(20_000)), '50'),
  WEBCHAT_SECONDS: v.optional(v.pipe(v.string(), v.transform(Number), v.number(), v.minValue(1), v.maxValue(120)), '20'),
  WEBCHAT_CLOSED_SECONDS: v.optional(v.pipe(v.string(), v.transform(Number), v.number(), v.minValue(0), v.maxValue(120)), '15'),
  WEBCHAT_IN_FLIGHT: v.optional(v.pipe(v.string(), v.transform(Number), v.integer(), v.minValue(1), v.maxValue(5000)), '64'),
  WEBCHAT_HOPS: v.optional(v.pipe(v.string(), v.transform((x) => x === '1')), '0'),
  WEBCHAT_AGENT_CHATS: v.optional(v.pipe(v.string(), v.transform(Number), v.integer(), v.minValue(1), v.maxValue(500)), '50'),
});

// What the bench reads off the wire, checked like any other boundary.
const VisitorFrame = v.variant('type', [
  v.looseObject({ type: v.literal('welcome'), visitorId: v.string() }),
  v.looseObject({ type: v.literal('ack'), clientMessageId: v.string(), conversationId: v.string() }),
  v.looseObject({ type: v.literal('error'), code: v.string(), reason: v.string(), ref: v.optional(v.string()) }),
  v.looseObject({ type: v.string() }),
]);
const WorkspaceFrame = v.variant('type', [
  v.looseObject({ type: v.literal('offer'), offer: v.looseObject({ reservationId: v.string(), task: v.looseObject({ id: v.string() }) }) }),
  v.looseObject({
    type: v.literal('conversation'),
    event: v.string(),
    conversation: v.looseObject({ id: v.string(), state: v.string(), agent: v.optional(v.string()) }),
    unread: v.number(),
  }),
  v.looseObject({ type: v.string() }),
]);
const EchoFrame = v.object({ type: v.literal('message'), clientMessageId: v.string(), text: v.string() });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const SITE = 'bench';

/** Runs fn over items with at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

async function until(what: string, ms: number, fn: () => boolean, every = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`webchat bench: timed out waiting for ${what}`);
    await sleep(every);
  }
}

function open(url: string, headers?: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  return new Promise((ok, fail) => {
    ws.once('open', () => ok(ws));
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) => fail(new Error(`${url}: HTTP ${res.statusCode} ${String(res.headers['x-cc-reason'] ?? '')}`)));
  });
}

function child(args: string[], env: Record<string, string>, readyLine: RegExp): { proc: ChildProcess; ready: Promise<RegExpMatchArray | null> } {
  // The child's stdout (pino lines, `ready`) goes to our stderr: our stdout is the bench's JSON lines only.
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<RegExpMatchArray | null>((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`${args.join(' ')} exited with ${code}`)));
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      process.stderr.write(d);
      buf += d.toString();
      const m = buf.match(readyLine);
      if (m) ok(m);
    });
    if (readyLine.source === '^$') ok(null);
  });
  return { proc, ready };
}

async function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(t);
}

/** A visitor: its web chat socket, its conversation, and what it sent (in order, with send times). */
class Visitor {
  ws!: WebSocket;
  echo?: WebSocket;
  conversationId?: string;
  agent?: string;
  /** Messages the server has accepted or may still accept, in send order: their send times. */
  sent: { id: string; at: number; rejected?: string }[] = [];
  /** Arrival times at the agent's socket, by ordinal (1 = the first customer message). */
  arrived = new Map<number, number>();
  echoSent = new Map<string, number>();
  echoRtt: number[] = [];
  onEcho?: () => void;
  frames = new Map<string, number>();
  errors: string[] = [];
  /** Called on each arrival at the agent (the closed-loop phase sends the next message from here). */
  onArrive?: () => void;

  constructor(readonly i: number) {}

  onFrame(raw: WebSocket.RawData): void {
    let json: unknown;
    try {
      json = JSON.parse(String(raw));
    } catch {
      this.errors.push('non-JSON frame');
      return;
    }
    const f = v.safeParse(VisitorFrame, json);
    if (!f.success) return void this.errors.push(`bad frame: ${v.summarize(f.issues)}`);
    const frame = f.output;
    this.frames.set(frame.type, (this.frames.get(frame.type) ?? 0) + 1);
    if (frame.type === 'ack' && 'conversationId' in frame) this.conversationId ??= frame.conversationId as string;
    if (frame.type === 'error' && 'code' in frame) {
      const ref = (frame as { ref?: string }).ref;
      const m = ref ? this.sent.find((s) => s.id === ref) : undefined;
      if (m) m.rejected = String(frame.code);
      this.errors.push(`${String(frame.code)}: ${String((frame as { reason?: string }).reason)}`);
      // A refused message will not arrive: the closed loop moves on.
      if (m) this.onArrive?.();
    }
  }

  send(id: string, text: string): void {
    const at = now();
    this.sent.push({ id, at });
    this.ws.send(JSON.stringify({ type: 'message', clientMessageId: id, text }));
  }

  sendEcho(id: string, text: string): void {
    this.echoSent.set(id, now());
    this.echo!.send(JSON.stringify({ type: 'message', clientMessageId: id, text }));
  }
}

/** An agent signed in to the workspace with one tab open, accepting every offer it gets. */
class Agent {
  ws!: WebSocket;
  offers = 0;
  accepted = 0;
  failures: string[] = [];
  constructor(
    readonly id: string,
    readonly cookie: string,
    private readonly base: string,
    private readonly byConversation: Map<string, Visitor>,
  ) {}

  onFrame(raw: WebSocket.RawData): void {
    const t = now();
    let json: unknown;
    try {
      json = JSON.parse(String(raw));
    } catch {
      return void this.failures.push('non-JSON workspace frame');
    }
    const f = v.safeParse(WorkspaceFrame, json);
    if (!f.success) return void this.failures.push(`bad workspace frame: ${v.summarize(f.issues)}`);
    const e = f.output;
    if (e.type === 'offer' && 'offer' in e) {
      this.offers++;
      const rid = (e.offer as { reservationId: string }).reservationId;
      void fetch(`${this.base}/api/offers/${encodeURIComponent(rid)}/accept`, { method: 'POST', headers: { cookie: this.cookie } }).then(
        async (r) => (r.ok ? this.accepted++ : this.failures.push(`accept ${rid}: ${r.status} ${await r.text()}`)),
        (err: Error) => this.failures.push(`accept ${rid}: ${err.message}`),
      );
      return;
    }
    if (e.type !== 'conversation' || !('conversation' in e)) return;
    const c = e.conversation as { id: string; state: string; agent?: string };
    const visitor = this.byConversation.get(c.id);
    if (!visitor || c.agent !== this.id) return;
    if (c.state === 'active') visitor.agent = this.id;
    if (e.event === 'customer.message') {
      visitor.arrived.set(e.unread as number, t);
      visitor.onArrive?.();
    }
  }
}

export async function benchWebchat(): Promise<void> {
  const knobs = v.safeParse(Knobs, Object.fromEntries(Object.keys(Knobs.entries).filter((k) => process.env[k]).map((k) => [k, process.env[k]])));
  if (!knobs.success) throw new Error(`webchat bench: ${v.getDotPath(knobs.issues[0])} ${knobs.issues[0].message}`);
  const { WEBCHAT_CONNECTIONS: N, WEBCHAT_RATE: RATE, WEBCHAT_SECONDS: SECONDS, WEBCHAT_CLOSED_SECONDS: CLOSED_SECONDS, WEBCHAT_AGENT_CHATS: CHATS, WEBCHAT_IN_FLIGHT: IN_FLIGHT, WEBCHAT_HOPS: HOPS } = knobs.output;
  const AGENTS = Math.ceil((N * 1.25) / CHATS);
  const t0 = Date.now();
  const stage = (what: string) => process.stderr.write(`webchat bench: ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);

  const nats = await startTestNats();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const adminPassword = crypto.randomUUID();
  const engineEnv = {
    ROLE: 'all',
    ACTOR_SHARDS: String(SHARDS),
    NATS_URL: nats.urls[0],
    DATA_DIR: tempDir('bench-webchat'),
    SURREAL_URL: 'mem://',
    PORT: String(port),
    SMTP_PORT: String(await freePort()),
    SIP_PORT: String(await freePort()),
    SMPP_PORT: String(await freePort()),
    MEDIA_WORKERS: '1',
    LOG_LEVEL: 'warn',
    ADMIN_PASSWORD: adminPassword,
    WEBCHAT_SITES: `${SITE}:Bench`,
  };
  const engine = child(['--import', 'tsx', 'main.ts'], engineEnv, /^$/);
  engine.ready.catch(() => undefined);
  const echo = child(['--import', 'tsx', 'bench/ws-echo.ts'], {}, /ready (\d+)/);
  const proc = [engine.proc, echo.proc];
  const nc = await nats.connect();
  const visitors = Array.from({ length: N }, (_, i) => new Visitor(i));
  const byConversation = new Map<string, Visitor>();
  const agents: Agent[] = [];
  const hops = HOPS ? watchHops(nc) : undefined;
  try {
    // ---- the engine, the echo, the agents -----------------------------------------------------------
    const up = Date.now();
    for (;;) {
      if (engine.proc.exitCode !== null) throw new Error('webchat bench: the engine exited during start-up (its log is above)');
      if (await fetch(`${base}/healthz`).then((r) => r.status === 200, () => false)) break;
      if (Date.now() - up > 120_000) throw new Error('webchat bench: the engine did not answer /healthz with 200 within 120 s');
      await sleep(200);
    }
    const echoPort = Number((await echo.ready)![1]);
    stage('engine and echo up');
    const admin = await login(base, 'admin', adminPassword);
    const actors = new ActorClient(nc, SHARDS);
    const agentPassword = crypto.randomUUID();
    await pool(Array.from({ length: AGENTS }, (_, i) => `bench-a${i}`), 4, async (id) => {
      const r = await fetch(`${base}/api/users`, { method: 'POST', headers: { cookie: admin, 'content-type': 'application/json' }, body: JSON.stringify({ id, role: 'agent', password: agentPassword, queues: ['support'], skills: { en: 1, zh: 1 } }) });
      if (r.status !== 201) throw new Error(`webchat bench: creating ${id}: ${r.status} ${await r.text()}`);
      // The workspace's user form has no capacity: the agent actor takes it directly.
      await actors.tell(`agent/${id}`, { type: 'profile.set', queues: ['support'], skills: { en: 1, zh: 1 }, capacity: { voice: 1, chat: CHATS, email: 5 } });
      const agent = new Agent(id, await login(base, id, agentPassword), base, byConversation);
      agent.ws = await open(`ws://127.0.0.1:${port}/ws`, { cookie: agent.cookie });
      agent.ws.on('message', (d) => agent.onFrame(d));
      const p = await fetch(`${base}/api/presence`, { method: 'POST', headers: { cookie: agent.cookie, 'content-type': 'application/json' }, body: JSON.stringify({ presence: 'available' }) });
      if (!p.ok) throw new Error(`webchat bench: ${id} available: ${p.status} ${await p.text()}`);
      agents.push(agent);
    });
    stage(`${AGENTS} agents signed in, workspace sockets open, ${CHATS} chats each`);

    // ---- visitors: hello, a first message, an agent -----------------------------------------------
    const setupT0 = now();
    await pool(visitors, 50, async (vis) => {
      vis.ws = await open(`ws://127.0.0.1:${port}/webchat/v1/ws?site=${SITE}`);
      vis.ws.on('message', (d) => vis.onFrame(d));
      vis.ws.send(JSON.stringify({ type: 'hello', v: 1, name: `Visitor ${vis.i}` }));
      await until(`welcome for visitor ${vis.i}`, 30_000, () => vis.frames.has('welcome'), 5);
      vis.send('m0', `Hello, I need help with order ${1000 + vis.i}`);
      await until(`ack for visitor ${vis.i}`, 30_000, () => vis.conversationId !== undefined || vis.errors.length > 0, 5);
      if (!vis.conversationId) throw new Error(`webchat bench: visitor ${vis.i}'s first message was refused: ${vis.errors[0]}`);
      byConversation.set(vis.conversationId, vis);
    });
    const connectedS = (now() - setupT0) / 1000;
    stage(`${N} visitors connected, first messages taken in ${connectedS.toFixed(1)} s`);
    await until(`all ${N} conversations active with an agent`, 120_000, () => visitors.every((x) => x.agent !== undefined), 200).catch((e: Error) => {
      const missing = visitors.filter((x) => !x.agent).length;
      throw new Error(`${e.message} (${missing} without an agent; offers ${sum(agents.map((a) => a.offers))}, accepted ${sum(agents.map((a) => a.accepted))}; ${agents.flatMap((a) => a.failures).slice(0, 3).join('; ')})`);
    });
    const assignedS = (now() - setupT0) / 1000;
    stage(`all ${N} conversations assigned in ${assignedS.toFixed(1)} s`);

    // ---- baseline: raw echo, same clients, same pace -----------------------------------------------
    await pool(visitors, 50, async (vis) => {
      vis.echo = await open(`ws://127.0.0.1:${echoPort}/echo`);
      vis.echo.on('message', (d) => {
        const t = now();
        const f = v.safeParse(EchoFrame, safeJson(String(d)));
        const id = f.success ? f.output.clientMessageId : '';
        const sentAt = vis.echoSent.get(id);
        if (sentAt === undefined) return void vis.errors.push('echo frame not ours');
        vis.echoRtt.push(t - sentAt);
        vis.echoSent.delete(id);
        vis.onEcho?.();
      });
    });
    const echoPaced = await paced(visitors, RATE, SECONDS, (vis, k) => vis.sendEcho(`e${k}`, `message ${k} from visitor ${vis.i}`));
    await until('echo replies', 10_000, () => visitors.every((x) => x.echoSent.size === 0), 20).catch(() => undefined);
    const echoLat = visitors.flatMap((x) => x.echoRtt);
    const echoLost = sum(visitors.map((x) => x.echoSent.size));
    stage(`echo paced: ${echoLat.length} replies`);
    let echoClosed: { perSec: number; count: number } | undefined;
    if (CLOSED_SECONDS) {
      for (const x of visitors) x.echoRtt = [];
      echoClosed = await closedLoop(visitors, CLOSED_SECONDS, IN_FLIGHT, (vis, k) => vis.sendEcho(`c${k}`, `message ${k} from visitor ${vis.i}`), (vis, fn) => (vis.onEcho = fn), (vis) => vis.echoRtt.length);
      for (const x of visitors) x.onEcho = undefined;
      stage(`echo closed loop: ${echoClosed.perSec.toFixed(0)}/s`);
    }
    for (const x of visitors) x.echo!.close();

    // ---- web chat: the same pace, then the closed loop ----------------------------------------------
    const mark = visitors.map((x) => x.sent.length);
    const phaseT0 = now();
    const chatPaced = await paced(visitors, RATE, SECONDS, (vis, k) => vis.send(`p${k}`, `message ${k} from visitor ${vis.i}`));
    const phaseEnd = now();
    await settle(visitors);
    const lat = latencies(visitors, mark);
    const hopsFigure = hops?.figure(visitors, mark, visitors.map((x) => accepted(x).length));
    const inWindow = lat.arrivals.filter((t) => t <= phaseEnd).length;
    stage(`web chat paced: ${lat.samples.length} of ${chatPaced.sent} arrived`);
    let chatClosed: { perSec: number; count: number } | undefined;
    if (CLOSED_SECONDS) {
      chatClosed = await closedLoop(visitors, CLOSED_SECONDS, IN_FLIGHT, (vis, k) => vis.send(`c${k}`, `message ${k} from visitor ${vis.i}`), (vis, fn) => (vis.onArrive = fn), (vis) => vis.arrived.size);
      stage(`web chat closed loop: ${chatClosed.perSec.toFixed(0)}/s`);
      // What is still in flight lands before the engine stops.
      await settle(visitors);
    }
    const rejected = visitors.flatMap((x) => x.sent.filter((s) => s.rejected).map((s) => s.rejected!));

    const common = { connections: N, agents: AGENTS, engine: 'child process (node main.ts, ROLE=all)' };
    if (hopsFigure) report(hopsFigure);
    report({
      name: 'webchat_p99_ms',
      value: percentile(lat.samples, 99),
      unit: 'ms',
      baseline: 'raw_ws_echo_p99_ms',
      baseline_value: percentile(echoLat, 99),
      goal: 'value <= 50',
      p50_ms: round(percentile(lat.samples, 50)),
      baseline_p50_ms: round(percentile(echoLat, 50)),
      max_ms: round(Math.max(...lat.samples)),
      messages: lat.samples.length,
      sent: chatPaced.sent,
      unmatched: lat.unmatched,
      rejected: rejected.length,
      echo_replies: echoLat.length,
      echo_lost: echoLost,
      offered_per_s: RATE,
      seconds: SECONDS,
      ...common,
    });
    report({
      name: 'webchat_msgs_per_s',
      value: chatClosed ? chatClosed.perSec : inWindow / ((phaseEnd - phaseT0) / 1000),
      unit: 'msg/s',
      baseline: chatClosed ? 'raw_ws_echo_msgs_per_s (closed loop, same in-flight)' : 'raw_ws_echo_msgs_per_s',
      baseline_value: chatClosed && echoClosed ? echoClosed.perSec : echoPaced.sent / SECONDS,
      mode: chatClosed ? `closed loop: ${IN_FLIGHT} messages in flight over the ${N} connections (one per connection), ${CLOSED_SECONDS} s` : `paced at ${RATE}/s`,
      paced_delivered_per_s: round(inWindow / ((phaseEnd - phaseT0) / 1000)),
      paced_offered_per_s: RATE,
      ...common,
    });
    report({ name: 'webchat_setup_s', value: assignedS, unit: 's', first_messages_taken_s: round(connectedS), ...common });
  } finally {
    for (const x of visitors) {
      x.ws?.terminate();
      x.echo?.terminate();
    }
    for (const a of agents) a.ws?.terminate();
    await Promise.all(proc.map(stopChild));
    await nats.stop();
    rmSync(engineEnv.DATA_DIR, { recursive: true, force: true });
  }

}

/** The engine's default ACTOR_SHARDS: the client addresses mail by shard. */
const SHARDS = 32;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round = (x: number) => Math.round(x * 1000) / 1000;
const safeJson = (s: string): unknown => {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
};
const accepted = (x: Visitor) => x.sent.filter((s) => !s.rejected);

/** Waits (at most 30 s) until every accepted message has arrived at its agent: its ordinal was seen. */
const settle = (visitors: Visitor[]) => until('web chat messages at the agents', 30_000, () => visitors.every((x) => x.arrived.has(accepted(x).length)), 50).catch(() => undefined);

async function login(base: string, user: string, password: string): Promise<string> {
  const r = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
  if (!r.ok) throw new Error(`webchat bench: login ${user}: ${r.status} ${await r.text()}`);
  return (r.headers.get('set-cookie') ?? '').split(';')[0];
}

/**
 * Open loop at `rate` messages/s in total for `seconds`: connection i sends at offsets i/rate, i/rate +
 * N/rate, … (evenly spread, so no burst). Sends are not held back by slow answers.
 */
async function paced(visitors: Visitor[], rate: number, seconds: number, send: (v: Visitor, k: number) => void): Promise<{ sent: number }> {
  const total = Math.floor(rate * seconds);
  const start = now();
  let j = 0;
  while (j < total) {
    const t = now() - start;
    while (j < total && (j / rate) * 1000 <= t) {
      send(visitors[j % visitors.length], Math.floor(j / visitors.length) + 1);
      j++;
    }
    await sleep(1);
  }
  return { sent: total };
}

/**
 * Closed loop: `inFlight` messages outstanding at any time, spread round-robin over all connections (one
 * per connection at a time); the next leaves when one arrives (or is refused, or is given up after 10 s).
 */
async function closedLoop(
  visitors: Visitor[],
  seconds: number,
  inFlight: number,
  send: (v: Visitor, k: number) => void,
  hook: (v: Visitor, fn: (() => void) | undefined) => void,
  count: (v: Visitor) => number,
): Promise<{ perSec: number; count: number }> {
  const before = sum(visitors.map(count));
  const start = now();
  const end = start + seconds * 1000;
  const busy = new Set<Visitor>();
  const k = new Map<Visitor, number>();
  let rr = 0;
  await Promise.all(Array.from({ length: Math.min(inFlight, visitors.length) }, async () => {
    while (now() < end) {
      let vis = visitors[rr++ % visitors.length];
      while (busy.has(vis)) vis = visitors[rr++ % visitors.length];
      busy.add(vis);
      await new Promise<void>((done) => {
        const t = setTimeout(done, 10_000);
        hook(vis, () => {
          clearTimeout(t);
          done();
        });
        k.set(vis, (k.get(vis) ?? 0) + 1);
        send(vis, k.get(vis)!);
      });
      hook(vis, undefined);
      busy.delete(vis);
    }
  }));
  const done = sum(visitors.map(count)) - before;
  return { perSec: done / ((now() - start) / 1000), count: done };
}

/**
 * Where the time goes (WEBCHAT_HOPS=1): this process also listens on NATS for the conversation's mail as
 * it is published (`open`, then `customer.message`: core subscribers see every JetStream publish) and for
 * the conversation actor's inspection event, all on this process's clock. Per paced message:
 * edge = send → `open` mail (socket, frame, identity resolve, store append, customer ask);
 * tell = `open` → `customer.message` mail (one JetStream publish-ack); actor = mail → inspection (consume,
 * step, snapshot write, publish); workspace = inspection → agent socket (index, hub, ws, this process).
 */
function watchHops(nc: NatsConnection) {
  const mail = new Map<string, { open: number[]; message: number[] }>();
  const inspected = new Map<string, number[]>();
  const of = (id: string) => mail.get(id) ?? mail.set(id, { open: [], message: [] }).get(id)!;
  const Mail = v.looseObject({ type: v.string() });
  const Inspection = v.looseObject({ actorRef: v.string(), event: v.looseObject({ type: v.string() }) });
  const subs = [
    nc.subscribe('cc.mail.conversation.>', {
      callback: (err, m) => {
        const t = now();
        const id = m.headers?.get(HDR_ACTOR);
        const r = v.safeParse(Mail, safeJson(m.string()));
        if (err || !id || !r.success) return;
        if (r.output.type === 'open') of(id).open.push(t);
        if (r.output.type === 'customer.message') of(id).message.push(t);
      },
    }),
    nc.subscribe('cc.inspect.conversation.*', {
      callback: (err, m) => {
        const t = now();
        const r = v.safeParse(Inspection, safeJson(m.string()));
        if (err || !r.success || r.output.event.type !== 'customer.message') return;
        const id = r.output.actorRef.slice('conversation/'.length);
        (inspected.get(id) ?? inspected.set(id, []).get(id)!).push(t);
      },
    }),
  ];
  return {
    /** The paced messages: accepted ones from mark (sent before the phase) up to end (accepted by its end). */
    figure(visitors: Visitor[], mark: number[], end: number[]) {
      for (const s of subs) s.unsubscribe();
      const parts = { edge: [] as number[], tell: [] as number[], actor: [] as number[], workspace: [] as number[] };
      for (const vis of visitors) {
        const m = mail.get(vis.conversationId ?? '');
        const ins = inspected.get(vis.conversationId ?? '') ?? [];
        const ok = accepted(vis);
        const firstPaced = vis.sent.slice(0, mark[vis.i]).filter((s) => !s.rejected).length;
        for (let idx = firstPaced; idx < end[vis.i]; idx++) {
          const open = m?.open[idx];
          const msg = m?.message[idx];
          const seen = ins[idx];
          const at = vis.arrived.get(idx + 1);
          if (open === undefined || msg === undefined || seen === undefined || at === undefined) continue;
          parts.edge.push(open - ok[idx].at);
          parts.tell.push(msg - open);
          parts.actor.push(seen - msg);
          parts.workspace.push(at - seen);
        }
      }
      const stat = (xs: number[]) => ({ p50: round(percentile(xs, 50)), p99: round(percentile(xs, 99)) });
      return {
        name: 'webchat_hops_ms',
        value: parts.edge.length,
        unit: 'messages traced',
        edge: stat(parts.edge),
        tell: stat(parts.tell),
        actor: stat(parts.actor),
        workspace: stat(parts.workspace),
      };
    },
  };
}

/** Send → arrival for every paced message, matched by ordinal among the messages the server accepted. */
function latencies(visitors: Visitor[], mark: number[]): { samples: number[]; arrivals: number[]; unmatched: number } {
  const samples: number[] = [];
  const arrivals: number[] = [];
  let unmatched = 0;
  for (const vis of visitors) {
    const ok = accepted(vis);
    const firstPaced = vis.sent.slice(0, mark[vis.i]).filter((s) => !s.rejected).length;
    ok.forEach((s, idx) => {
      if (idx < firstPaced) return;
      const at = vis.arrived.get(idx + 1);
      if (at === undefined) return void unmatched++;
      samples.push(at - s.at);
      arrivals.push(at);
    });
  }
  return { samples, arrivals, unmatched };
}
