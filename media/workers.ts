// The media node's pool of mediasoup workers: one router per voice conversation, placed on the least
// loaded live worker. A worker that dies takes its calls with it: each is reported failed with the
// reason, new routers go to the survivors, and a replacement worker starts in the dead one's slot.
import { availableParallelism } from 'node:os';
import * as v from 'valibot';
import { createWorker } from 'mediasoup';
import type { Router, RouterRtpCodecCapability, Worker, WorkerLogLevel } from 'mediasoup/types';
import { findWorkerBin } from './worker-bin.ts';

/** Codecs of every voice router: opus for WebRTC, G.711 for SIP trunks, DTMF (RFC 4733) at both clock rates. */
export const VOICE_CODECS: RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'audio', mimeType: 'audio/PCMU', clockRate: 8000 },
  { kind: 'audio', mimeType: 'audio/PCMA', clockRate: 8000 },
  { kind: 'audio', mimeType: 'audio/telephone-event', clockRate: 48000 },
  { kind: 'audio', mimeType: 'audio/telephone-event', clockRate: 8000 },
];

const Port = v.pipe(v.number(), v.integer(), v.minValue(1024), v.maxValue(65535));
const PoolSettings = v.pipe(
  v.object({
    size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(256))),
    workerBin: v.optional(v.pipe(v.string(), v.minLength(1))),
    rtcMinPort: v.optional(Port),
    rtcMaxPort: v.optional(Port),
    logLevel: v.optional(v.picklist(['debug', 'warn', 'error', 'none'])),
    replaceRetryMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(10), v.maxValue(60_000))),
    waitForWorkerMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(60_000))),
  }),
  v.check((s) => (s.rtcMinPort ?? 10000) <= (s.rtcMaxPort ?? 59999), 'rtcMinPort must not be above rtcMaxPort'),
);
export type PoolSettings = v.InferInput<typeof PoolSettings>;

// Conversation ids are actor ids (ULIDs and the like); bounded so a bad caller cannot grow the map's keys.
const ConversationId = v.pipe(v.string(), v.minLength(1), v.maxLength(200), v.regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only'));

export interface WorkerDeath {
  slot: number;
  pid: number;
  reason: string;
  /** Conversations whose router was on it (each also reported through onCallFailed). */
  conversations: string[];
}

export interface PoolHooks {
  /** A call lost its media: its worker died. Called once per conversation whose router was live there. */
  onCallFailed?: (conversationId: string, reason: string) => void;
  onWorkerDied?: (death: WorkerDeath) => void;
  onWorkerStarted?: (info: { slot: number; pid: number; replacement: boolean }) => void;
  /** A replacement failed to start (it is retried); for logs. */
  onWorkerStartFailed?: (info: { slot: number; error: string }) => void;
}

export class MediaPoolError extends Error {
  override name = 'MediaPoolError';
}

interface Slot {
  index: number;
  worker: Worker;
  /** Conversations placed here, live or being created. */
  calls: Set<string>;
}

interface Call {
  slot: Slot;
  router: Promise<Router>;
  live: boolean;
}

export interface PoolStats {
  size: number;
  live: number;
  calls: number;
  workers: Array<{ slot: number; pid: number | null; calls: number }>;
  routersCreated: number;
  routersClosed: number;
  callsFailed: number;
  workerDeaths: number;
  workersReplaced: number;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class WorkerPool {
  readonly size: number;
  private readonly slots: Array<Slot | undefined>;
  private readonly calls = new Map<string, Call>();
  private readonly waiters = new Set<() => void>();
  private cursor = 0;
  private stopping = false;
  private readonly counters = { routersCreated: 0, routersClosed: 0, callsFailed: 0, workerDeaths: 0, workersReplaced: 0 };

  private constructor(
    private readonly settings: v.InferOutput<typeof PoolSettings> & { workerBin: string },
    private readonly hooks: PoolHooks,
  ) {
    this.size = settings.size ?? availableParallelism();
    this.slots = new Array<Slot | undefined>(this.size).fill(undefined);
  }

  /** Starts `size` workers (default: one per core). Fails, with nothing left running, if any cannot start. */
  static async start(settings: PoolSettings = {}, hooks: PoolHooks = {}): Promise<WorkerPool> {
    const parsed = v.safeParse(PoolSettings, settings);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      throw new MediaPoolError(`media pool settings: ${v.getDotPath(issue) ?? 'settings'}: ${issue.message}`);
    }
    const pool = new WorkerPool({ ...parsed.output, workerBin: parsed.output.workerBin ?? findWorkerBin() }, hooks);
    const started = await Promise.allSettled(pool.slots.map((_, i) => pool.startSlot(i, false)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await pool.stop();
      throw new MediaPoolError(`media pool: a worker failed to start: ${message(failed.reason)}`);
    }
    return pool;
  }

  /** The conversation's router, created on the least loaded live worker the first time it is asked for. */
  router(conversationId: string): Promise<Router> {
    const id = this.checkId(conversationId);
    const known = this.calls.get(id);
    if (known) return known.router;
    return this.place(id, 0);
  }

  /** Closes the conversation's router (its transports, producers, consumers with it). False if it had none. */
  async close(conversationId: string): Promise<boolean> {
    const id = this.checkId(conversationId);
    const call = this.calls.get(id);
    if (!call) return false;
    this.calls.delete(id);
    call.slot.calls.delete(id);
    const router = await call.router.catch(() => undefined);
    if (router && !router.closed) {
      router.close();
      this.counters.routersClosed++;
    }
    return true;
  }

  /** Live workers' pids in slot order (for operators and tests). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s ? [s.worker.pid] : []));
  }

  /** Worker pid the conversation's router is on, if it has one. */
  workerOf(conversationId: string): number | undefined {
    return this.calls.get(conversationId)?.slot.worker.pid;
  }

  stats(): PoolStats {
    return {
      size: this.size,
      live: this.slots.filter(Boolean).length,
      calls: this.calls.size,
      workers: this.slots.map((s, slot) => ({ slot, pid: s ? s.worker.pid : null, calls: s ? s.calls.size : 0 })),
      ...this.counters,
    };
  }

  /** Waits until every slot has a live worker (e.g. after a death), or the timeout passes. */
  async full(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.slots.some((s) => !s)) {
      if (this.stopping || Date.now() >= deadline) return false;
      await this.nextStart(deadline - Date.now());
    }
    return true;
  }

  /** Closes every worker (and so every router); no replacement starts after this. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of this.waiters) wake();
    for (const [i, slot] of this.slots.entries()) {
      if (slot && !slot.worker.closed) slot.worker.close();
      this.slots[i] = undefined;
    }
    this.calls.clear();
  }

  private checkId(conversationId: unknown): string {
    const r = v.safeParse(ConversationId, conversationId);
    if (!r.success) throw new MediaPoolError(`conversation id ${JSON.stringify(conversationId)}: ${r.issues[0].message}`);
    return r.output;
  }

  /** Least loaded live slot; ties go round-robin from the cursor so equal workers share new calls. */
  private pick(): Slot | undefined {
    let best: Slot | undefined;
    for (let k = 0; k < this.size; k++) {
      const s = this.slots[(this.cursor + k) % this.size];
      if (s && (!best || s.calls.size < best.calls.size)) best = s;
    }
    if (best) this.cursor = (best.index + 1) % this.size;
    return best;
  }

  private place(id: string, attempt: number): Promise<Router> {
    const slot = this.pick();
    if (!slot) return this.afterStart(id, attempt);
    slot.calls.add(id);
    const call: Call = { slot, live: false, router: this.create(slot, id, attempt, () => call) };
    this.calls.set(id, call);
    return call.router;
  }

  private async create(slot: Slot, id: string, attempt: number, self: () => Call): Promise<Router> {
    let router: Router;
    try {
      router = await slot.worker.createRouter({ mediaCodecs: VOICE_CODECS, appData: { conversationId: id } });
    } catch (e) {
      slot.calls.delete(id);
      if (this.calls.get(id) !== self()) throw new MediaPoolError(`conversation ${id}: closed while its router was being created`);
      this.calls.delete(id);
      // Its worker died before the router existed: nothing was lost yet, so try a survivor.
      if (slot.worker.died && attempt < this.size) return this.place(id, attempt + 1);
      throw new MediaPoolError(`conversation ${id}: no router: ${message(e)}`);
    }
    if (this.calls.get(id) !== self()) {
      // Closed (or the pool stopped) while it was being created.
      router.close();
      throw new MediaPoolError(`conversation ${id}: closed while its router was being created`);
    }
    self().live = true;
    this.counters.routersCreated++;
    return router;
  }

  /** No worker is live (all died at once): wait for a replacement rather than refusing the call outright. */
  private async afterStart(id: string, attempt: number): Promise<Router> {
    const wait = this.settings.waitForWorkerMs ?? 5000;
    if (this.stopping || wait === 0) throw new MediaPoolError(`conversation ${id}: no live media worker`);
    await this.nextStart(wait);
    if (this.stopping || !this.slots.some(Boolean)) throw new MediaPoolError(`conversation ${id}: no live media worker after ${wait} ms`);
    const known = this.calls.get(id);
    return known ? known.router : this.place(id, attempt + 1);
  }

  private nextStart(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.waiters.add(done);
    });
  }

  private async startSlot(index: number, replacement: boolean): Promise<void> {
    const s = this.settings;
    const worker = await createWorker({
      workerBin: s.workerBin,
      logLevel: s.logLevel ?? 'warn',
      rtcMinPort: s.rtcMinPort,
      rtcMaxPort: s.rtcMaxPort,
      appData: { slot: index },
    });
    if (this.stopping) {
      worker.close();
      return;
    }
    const slot: Slot = { index, worker, calls: new Set() };
    this.slots[index] = slot;
    worker.on('died', (error: Error) => this.died(slot, error));
    if (replacement) this.counters.workersReplaced++;
    this.safely(() => this.hooks.onWorkerStarted?.({ slot: index, pid: worker.pid, replacement }));
    for (const wake of [...this.waiters]) wake();
  }

  private died(slot: Slot, error: Error): void {
    if (this.slots[slot.index] !== slot) return;
    this.slots[slot.index] = undefined;
    this.counters.workerDeaths++;
    const reason = `media worker ${slot.worker.pid} died: ${error.message}`;
    const lost: string[] = [];
    for (const id of slot.calls) {
      const call = this.calls.get(id);
      // A router still being created is retried on a survivor by place(); only live calls are lost.
      if (!call || call.slot !== slot || !call.live) continue;
      this.calls.delete(id);
      lost.push(id);
    }
    for (const id of lost) slot.calls.delete(id);
    this.counters.callsFailed += lost.length;
    for (const id of lost) this.safely(() => this.hooks.onCallFailed?.(id, reason));
    this.safely(() => this.hooks.onWorkerDied?.({ slot: slot.index, pid: slot.worker.pid, reason, conversations: lost }));
    void this.replace(slot.index);
  }

  /** Restarts a dead slot, retrying with backoff (a worker that cannot start now may later: ports, memory). */
  private async replace(index: number): Promise<void> {
    let delay = this.settings.replaceRetryMs ?? 250;
    while (!this.stopping && !this.slots[index]) {
      try {
        await this.startSlot(index, true);
        return;
      } catch (e) {
        this.safely(() => this.hooks.onWorkerStartFailed?.({ slot: index, error: message(e) }));
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  // A hook that throws must not stop the pool from handling the rest of a death.
  private safely(fn: () => void): void {
    try {
      fn();
    } catch {
      /* the hook's own failure is its owner's to log */
    }
  }
}
