// `npm run bench -- actors`: the actor runtime against raw NATS and raw XState, side by side in one run.
import { spawn } from 'node:child_process';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { MAIL_STREAM } from '../actors/address.ts';
import { ActorClient } from '../actors/client.ts';
import { startTestNats } from '../tests/support/nats.ts';
import { child, stopChild } from './child.ts';
import { latencies, median, percentile, report, throughput } from './report.ts';

const SHARDS = 32;
const IN_FLIGHT = 64;

interface HostStatus {
  shards_owned: number;
  resident_actors: number;
  processed: number;
  heapUsed?: number;
}

async function host(nc: NatsConnection, url: string, env: Record<string, string> = {}) {
  const p = await child(['--expose-gc', '--import', 'tsx', 'bench/actor-host.ts'], { NATS_URL: url, SHARDS: String(SHARDS), ...env });
  const status = async (subject = 'bench.host.status') => (await nc.request(subject, '', { timeout: 30_000 })).json<HostStatus>();
  while ((await status()).shards_owned < SHARDS) await new Promise((r) => setTimeout(r, 50));
  const waitProcessed = async (n: number) => {
    while ((await status()).processed < n) await new Promise((r) => setTimeout(r, 2));
  };
  const stop = () => stopChild(p);
  return { status, waitProcessed, stop };
}

export async function benchActors(): Promise<void> {
  const nats = await startTestNats();
  const url = nats.urls[0];
  const nc = await nats.connect();
  const client = new ActorClient(nc, SHARDS);
  const echo = await child(['--import', 'tsx', 'bench/echo.ts'], { NATS_URL: url });
  try {
    // Raw baselines against the same nats-server.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw'], storage: StorageType.File, retention: RetentionPolicy.Limits });
    const js = jetstream(nc);
    const payload = JSON.stringify({ type: 'inc' });
    await throughput(2000, IN_FLIGHT, () => js.publish('bench.raw', payload));
    const rawPublish = await throughput(20_000, IN_FLIGHT, () => js.publish('bench.raw', payload));
    await throughput(2000, IN_FLIGHT, () => nc.request('bench.echo', payload));
    const rawP99 = percentile(await latencies(3000, () => nc.request('bench.echo', payload)), 99);
    // The same server work as a processed tell (store the mail, consume it, write a KV record, ack),
    // without the runtime: 20,000 messages over 1,000 keys, 64 in flight. Then with the records of a
    // batch written together (what group commit would leave), and without any record: the ceiling of
    // consuming durable mail at all, before any state is stored.
    const pipeline = async (mode: 'kv' | 'ack' | 'group') => {
      const pipe = await child(['--import', 'tsx', 'bench/pipeline.ts'], { NATS_URL: url, SHARDS: String(SHARDS), MODE: mode });
      try {
        const piped = async () => (await nc.request('bench.pipe.status', '', { timeout: 30_000 })).json<{ processed: number }>().processed;
        const run = async (n: number, from: number) => {
          const t = performance.now();
          // Addressed as a tell is: an actor header and a message id.
          await throughput(n, IN_FLIGHT, (i) => {
            const h = headers();
            h.set('Cc-Actor', `w${i % 1000}`);
            return js.publish(`bench.pipe.${i % SHARDS}`, payload, { headers: h, msgID: `pipe-${mode}-${from + i}` });
          });
          while ((await piped()) < from + n) await new Promise((r) => setTimeout(r, 2));
          return n / ((performance.now() - t) / 1000);
        };
        await run(2000, 0);
        return await run(20_000, 2000);
      } finally {
        await stopChild(pipe);
      }
    };
    const rawPipeline = await pipeline('kv');
    report({ name: 'raw_tell_pipeline_per_s', value: rawPipeline, unit: 'msg/s', baseline: 'jetstream_publish_ack_per_s', baseline_value: rawPublish, in_flight: IN_FLIGHT });
    const rawGroup = await pipeline('group');
    report({ name: 'raw_group_commit_pipeline_per_s', value: rawGroup, unit: 'msg/s', baseline: 'jetstream_publish_ack_per_s', baseline_value: rawPublish, in_flight: IN_FLIGHT, note: 'records of a whole batch in one log write, then each mail acknowledged' });
    const rawConsume = await pipeline('ack');
    report({ name: 'raw_consume_ack_per_s', value: rawConsume, unit: 'msg/s', baseline: 'jetstream_publish_ack_per_s', baseline_value: rawPublish, in_flight: IN_FLIGHT, note: 'mail stored, consumed and acknowledged; no state written' });

    // Tells and asks to 1,000 resident actors on one node (its own process, as the echo responder is).
    const h = await host(nc, url);
    const ACTORS = 1000;
    await throughput(ACTORS, IN_FLIGHT, (i) => client.tell(`counter/w${i}`, { type: 'inc' }));
    await h.waitProcessed(ACTORS);
    const before = (await h.status()).processed;
    const TELLS = 20_000;
    const t0 = performance.now();
    await throughput(TELLS, IN_FLIGHT, (i) => client.tell(`counter/w${i % ACTORS}`, { type: 'inc' }));
    await h.waitProcessed(before + TELLS);
    // Applied is not enough: a tell counts once a stored record covers it (its mail is then acknowledged
    // and leaves the work-queue stream).
    while ((await jsm.streams.info(MAIL_STREAM)).state.messages > 0) await new Promise((r) => setTimeout(r, 5));
    const tellRate = TELLS / ((performance.now() - t0) / 1000);
    report({ name: 'tell_per_s', value: tellRate, unit: 'msg/s', baseline: 'jetstream_publish_ack_per_s', baseline_value: rawPublish, goal: 'ratio >= 0.5', actors: ACTORS, in_flight: IN_FLIGHT });
    // The runtime's own share: the same figure against the raw pipeline of the same server work.
    report({ name: 'tell_per_s_of_pipeline', value: tellRate, unit: 'msg/s', baseline: 'raw_tell_pipeline_per_s', baseline_value: rawPipeline, actors: ACTORS, in_flight: IN_FLIGHT });

    // Asks and raw request/reply in alternating rounds: this machine's speed drifts by half within minutes,
    // so each ask round is measured next to a raw one, and the medians of the five are compared.
    const ask = (i: number) => client.ask(`counter/w${i % ACTORS}`, { type: 'get' });
    await throughput(2000, IN_FLIGHT, ask);
    const rounds = { ask: [] as number[], raw: [] as number[] };
    for (let r = 0; r < 5; r++) {
      rounds.raw.push(await throughput(10_000, IN_FLIGHT, () => nc.request('bench.echo', payload)));
      rounds.ask.push(await throughput(10_000, IN_FLIGHT, ask));
    }
    report({
      name: 'ask_per_s',
      value: median(rounds.ask),
      unit: 'req/s',
      baseline: 'nats_request_reply_per_s',
      baseline_value: median(rounds.raw),
      goal: 'ratio >= 0.6',
      in_flight: IN_FLIGHT,
      round_ratios: rounds.ask.map((a, i) => Math.round((a / rounds.raw[i]) * 100) / 100),
    });
    const askP99 = percentile(await latencies(3000, (i) => client.ask(`counter/w${i % ACTORS}`, { type: 'get' })), 99);
    report({ name: 'ask_p99_ms', value: askP99, unit: 'ms', baseline: 'nats_request_reply_p99_ms', baseline_value: rawP99, goal: 'ratio <= 2' });
    await h.stop();

    // Activation: the first message to a passivated actor, snapshot load included.
    const a = await host(nc, url, { IDLE_MS: '300' });
    const COLD = 2000;
    const p0 = (await a.status()).processed;
    await throughput(COLD, IN_FLIGHT, (i) => client.tell(`counter/cold${i}`, { type: 'inc' }));
    await a.waitProcessed(p0 + COLD);
    while ((await a.status()).resident_actors > 0) await new Promise((r) => setTimeout(r, 100));
    const cold = await latencies(COLD, (i) => client.ask(`counter/cold${i}`, { type: 'get' }));
    report({ name: 'activation_p99_ms', value: percentile(cold, 99), unit: 'ms', baseline: 'nats_request_reply_p99_ms', baseline_value: rawP99, goal: 'value <= 5', p50_ms: Math.round(percentile(cold, 50) * 1000) / 1000 });
    await a.stop();

    // Memory: heap per resident idle actor with 100,000 actors vs bare createActor of the same machine.
    const m = await host(nc, url);
    const empty = (await m.status('bench.host.heap')).heapUsed!;
    const MANY = 100_000;
    const q0 = (await m.status()).processed;
    await throughput(MANY, IN_FLIGHT * 2, (i) => client.tell(`counter/m${i}`, { type: 'inc' }));
    await m.waitProcessed(q0 + MANY);
    const full = await m.status('bench.host.heap');
    await m.stop();
    const bare = await new Promise<number>((ok, fail) => {
      const p = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/bare-xstate.ts', String(MANY)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.once('exit', (code) => (code === 0 ? ok(JSON.parse(out).bytes_per_actor) : fail(new Error(`bare-xstate exited ${code}`))));
    });
    report({
      name: 'idle_actor_bytes',
      value: (full.heapUsed! - empty) / full.resident_actors,
      unit: 'bytes',
      baseline: 'xstate_createActor_bytes',
      baseline_value: bare,
      goal: 'ratio <= 1.5',
      resident: full.resident_actors,
    });
  } finally {
    echo.kill('SIGTERM');
    await nats.stop();
  }
}

