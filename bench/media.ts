// `npm run bench -- media`: concurrent two-party G.711 calls one mediasoup worker carries with loss under
// 1%, against a raw UDP relay in Node forwarding the same packets at the same rates, in one run.
// A call is what the engine builds (media/workers.ts): its own router, two comedia PlainTransports (legs A
// and B), A's producer consumed on B's transport and B's on A's. The phones are Node UDP sockets in child
// processes (bench/media-phones.ts); they share the machine's cores with the worker, which is reported.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { Producer, Router } from 'mediasoup/types';
import { WorkerPool } from '../media/workers.ts';
import { report } from './report.ts';
import type { PhonesReport } from './media-phones.ts';

const STEPS = (process.env.MEDIA_STEPS ?? '25,50,100,150,200,300,400,600,800,1000,1200').split(',').map(Number);
const MEASURE_MS = Number(process.env.MEDIA_MEASURE_S ?? 5) * 1000;
const WARM_MS = 1000; // comedia latches each leg's address from its first packet; loss before that is set-up, not load
const BUDGET_MS = Number(process.env.MEDIA_BUDGET_S ?? 85) * 1000; // per side, so the whole run stays near 3 minutes
const SENDERS = Number(process.env.MEDIA_SENDERS ?? 2);
const PPS_PER_CALL = 100; // two legs at 50 packets/s, each forwarded once
const LOSS_LIMIT = 1; // %
const CPU_SATURATED = 95; // % of one core: the worker (and the relay) is one thread

interface StepResult {
  calls: number;
  loss_pct: number;
  sent: number;
  received: number;
  /** The forwarder's CPU (mediasoup worker or Node relay), % of one core. */
  forwarder_cpu_pct: number;
  /** The phones' child processes, % of one core each, summed. */
  phones_cpu_pct: number;
  bench_cpu_pct: number;
  phones_max_late_ms: number;
}

interface Forwarder {
  name: string;
  /** Sets up `n` calls; the ports each call's leg A and leg B send to. */
  setup(n: number, step: number): Promise<Array<{ a: number; b: number }>>;
  /** Cumulative CPU milliseconds of the forwarding process. */
  cpuMs(): Promise<number>;
  teardown(): Promise<void>;
}

// ---- child processes over IPC ----

function start(script: string): Promise<ChildProcess> {
  const p = fork(new URL(script, import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((ok, fail) => {
    p.once('spawn', () => ok(p));
    p.once('error', fail);
  });
}

function ask<T extends { type: string }>(p: ChildProcess, msg: object, want: string, timeoutMs = 60_000): Promise<T> {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => done(new Error(`${want} from pid ${p.pid}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => done(new Error(`pid ${p.pid} exited with ${code} while waiting for ${want}`));
    const onMessage = (m: T) => {
      if (m && m.type === want) done(undefined, m);
    };
    function done(e?: Error, m?: T) {
      clearTimeout(timer);
      p.off('message', onMessage);
      p.off('exit', onExit);
      if (e) fail(e);
      else ok(m!);
    }
    p.on('message', onMessage);
    p.once('exit', onExit);
    p.send(msg);
  });
}

function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.disconnect();
  return exited;
}

// ---- CPU of another process, from /proc (utime + stime, in clock ticks) ----

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK;
}

// ---- the two forwarders ----

async function mediasoupForwarder(): Promise<{ fwd: Forwarder; pid: number; payloadType: number; stop: () => Promise<void> }> {
  const pool = await WorkerPool.start({ size: 1, logLevel: 'error' });
  const pid = pool.pids()[0];
  let ids: string[] = [];
  const probe = await pool.router('bench-probe');
  const payloadType = probe.rtpCapabilities.codecs!.find((c) => c.mimeType === 'audio/PCMU')!.preferredPayloadType!;
  await pool.close('bench-probe');

  async function call(router: Router, ssrcA: number, ssrcB: number): Promise<{ a: number; b: number }> {
    const listenInfo = { protocol: 'udp' as const, ip: '127.0.0.1' };
    const [ta, tb] = await Promise.all([
      router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: true }),
      router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: true }),
    ]);
    const produce = (ssrc: number): Parameters<typeof ta.produce>[0] => ({
      kind: 'audio',
      rtpParameters: { codecs: [{ mimeType: 'audio/PCMU', clockRate: 8000, payloadType }], encodings: [{ ssrc }] },
    });
    const [pa, pb]: Producer[] = await Promise.all([ta.produce(produce(ssrcA)), tb.produce(produce(ssrcB))]);
    await Promise.all([
      tb.consume({ producerId: pa.id, rtpCapabilities: router.rtpCapabilities }),
      ta.consume({ producerId: pb.id, rtpCapabilities: router.rtpCapabilities }),
    ]);
    return { a: ta.tuple.localPort, b: tb.tuple.localPort };
  }

  const fwd: Forwarder = {
    name: 'mediasoup',
    async setup(n, step) {
      ids = Array.from({ length: n }, (_, i) => `bench-${step}-${i}`);
      const ports: Array<{ a: number; b: number }> = [];
      for (let i = 0; i < n; i += 50) {
        const batch = ids.slice(i, i + 50);
        ports.push(...(await Promise.all(batch.map(async (id, k) => call(await pool.router(id), ssrcOf(i + k, 0), ssrcOf(i + k, 1))))));
      }
      return ports;
    },
    cpuMs: async () => procCpuMs(pid),
    async teardown() {
      await Promise.all(ids.map((id) => pool.close(id)));
      ids = [];
    },
  };
  return { fwd, pid, payloadType, stop: () => pool.stop() };
}

async function relayForwarder(): Promise<{ fwd: Forwarder; pid: number; stop: () => Promise<void> }> {
  const relay = await start('./media-relay.ts');
  const fwd: Forwarder = {
    name: 'node-udp-relay',
    setup: async (n) => (await ask<{ type: 'ready'; ports: Array<{ a: number; b: number }> }>(relay, { type: 'setup', calls: n }, 'ready')).ports,
    cpuMs: async () => procCpuMs(relay.pid!),
    teardown: async () => void (await ask(relay, { type: 'close' }, 'closed')),
  };
  return { fwd, pid: relay.pid!, stop: () => stopChild(relay) };
}

function ssrcOf(call: number, leg: 0 | 1): number {
  return 0x10000000 + call * 2 + leg;
}

// ---- one step: n calls for MEASURE_MS ----

async function step(fwd: Forwarder, phones: ChildProcess[], n: number, stepNo: number, payloadType: number): Promise<StepResult> {
  const ports = await fwd.setup(n, stepNo);
  const calls = ports.map((p, i) => ({ ...p, ssrcA: ssrcOf(i, 0), ssrcB: ssrcOf(i, 1) }));
  const share = Math.ceil(n / phones.length);
  const used = phones.filter((_, k) => k * share < n);
  await Promise.all(used.map((p, k) => ask(p, { type: 'setup', calls: calls.slice(k * share, (k + 1) * share), payloadType }, 'ready')));
  for (const p of used) p.send({ type: 'send' });
  await new Promise((r) => setTimeout(r, WARM_MS));

  const cpu0 = await fwd.cpuMs();
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  for (const p of used) p.send({ type: 'measure' });
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  const reports = Promise.all(used.map((p) => ask<PhonesReport>(p, { type: 'stop' }, 'report')));
  const cpu1 = await fwd.cpuMs();
  const own = process.cpuUsage(own0);
  const wall = performance.now() - t0;
  const rs = await reports;
  await Promise.all(used.map((p) => ask(p, { type: 'close' }, 'closed')));
  await fwd.teardown();

  const sent = rs.reduce((s, r) => s + r.sent, 0);
  const received = rs.reduce((s, r) => s + r.received, 0);
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    calls: n,
    loss_pct: sent ? Math.round(((sent - received) / sent) * 100 * 1000) / 1000 : 100,
    sent,
    received,
    forwarder_cpu_pct: r1(((cpu1 - cpu0) / wall) * 100),
    phones_cpu_pct: r1(rs.reduce((s, r) => s + r.cpuPct, 0)),
    bench_cpu_pct: r1(((own.user + own.system) / 1000 / wall) * 100),
    phones_max_late_ms: r1(Math.max(...rs.map((r) => r.maxLateMs))),
  };
}

/** Steps up the call count until loss reaches 1%, the forwarder's CPU saturates, or the time budget is spent. */
async function ramp(fwd: Forwarder, phones: ChildProcess[], payloadType: number): Promise<{ steps: StepResult[]; best: number; stopped: string }> {
  const steps: StepResult[] = [];
  const t0 = Date.now();
  let best = 0;
  let stopped = `the last step (${STEPS[STEPS.length - 1]} calls) passed`;
  for (const [i, n] of STEPS.entries()) {
    const r = await step(fwd, phones, n, i, payloadType);
    steps.push(r);
    console.error(`media bench: ${fwd.name} ${JSON.stringify(r)}`);
    if (r.loss_pct < LOSS_LIMIT) best = n;
    if (r.loss_pct >= LOSS_LIMIT) {
      stopped = `loss ${r.loss_pct}% at ${n} calls`;
      break;
    }
    if (r.forwarder_cpu_pct >= CPU_SATURATED) {
      stopped = `${fwd.name} CPU ${r.forwarder_cpu_pct}% at ${n} calls`;
      break;
    }
    if (Date.now() - t0 > BUDGET_MS) {
      stopped = `time budget (${BUDGET_MS / 1000} s) spent after ${n} calls`;
      break;
    }
  }
  return { steps, best, stopped };
}

export async function benchMedia(): Promise<void> {
  const phones = await Promise.all(Array.from({ length: SENDERS }, () => start('./media-phones.ts')));
  const ms = await mediasoupForwarder();
  let relay: Awaited<ReturnType<typeof relayForwarder>> | undefined;
  try {
    const worker = await ramp(ms.fwd, phones, ms.payloadType);
    await ms.stop();
    relay = await relayForwarder();
    const node = await ramp(relay.fwd, phones, ms.payloadType);

    const note = `2 cores shared: the forwarder, ${SENDERS} phone processes (Node, 2 x 50 pps per call) and this process; CPU in % of one core`;
    report({
      name: 'calls_per_worker',
      value: worker.best,
      unit: 'calls',
      goal: 'value >= 150',
      stopped: worker.stopped,
      steps: worker.steps,
      note,
    });
    report({
      name: 'rtp_forward_pps',
      value: worker.best * PPS_PER_CALL,
      unit: 'packets/s',
      baseline: 'node_udp_relay_pps',
      baseline_value: node.best * PPS_PER_CALL,
      relay_calls: node.best,
      relay_stopped: node.stopped,
      relay_steps: node.steps,
      note,
    });
  } finally {
    await ms.stop();
    await relay?.stop();
    await Promise.all(phones.map(stopChild));
  }
}
