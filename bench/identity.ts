// `npm run bench -- identity`: the customer view on the embedded engine (surrealkv in a temp dir) with
// 100,000 customers, 300,000 identities and 2,000,000 messages (IDENTITY_SCALE=0.1 for a tenth).
//
// The data is bulk-inserted in batches, shaped exactly as the store writes it (sealed phone numbers with
// keyed hashes, identity edges, conversations, messages with `customer` and `at`), with every index of
// the schema in place during the load; the load rate is printed. Then, interleaved so both see the same
// machine state, the customer view as the store serves it (one query, decryption, masking, validation)
// on random customers, and a single-record select of a random customer as the baseline.
//
// IDENTITY_SAMPLES (default 2000) views and selects are timed. IDENTITY_DIR=<dir> keeps the loaded data
// there and reuses it on the next run (the load is skipped when the dir holds a finished load).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RecordId } from 'surrealdb';
import { openSurreal } from '../storage/surreal.ts';
import { FieldCipher, type KeyRing } from '../storage/crypto.ts';
import { openStore } from '../storage/store.ts';
import { VIEW_QUERY } from '../storage/history.ts';
import { newMessageId } from '../storage/records.ts';
import { percentile, report } from './report.ts';

const IDENTITIES_PER_CUSTOMER = 3;
const CONVERSATIONS_PER_CUSTOMER = 3;
const MESSAGES_PER_CUSTOMER = 20;
const BATCH_CUSTOMERS = 500;
const DAY = 86_400_000;
const CHANNELS = ['voice', 'webchat', 'email', 'wechat', 'sms', 'app'] as const;

export async function benchIdentity(): Promise<void> {
  const scale = Number(process.env.IDENTITY_SCALE ?? 1);
  if (!(scale > 0 && scale <= 10)) throw new Error(`IDENTITY_SCALE must be a number in (0, 10] (got ${process.env.IDENTITY_SCALE})`);
  const customers = Math.round(100_000 * scale);
  const samples = Number(process.env.IDENTITY_SAMPLES ?? 2000);
  const keep = process.env.IDENTITY_DIR;
  const dir = keep ?? join('.test-data', `bench-identity-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  // The ring is fixed for a kept dir (its hashes must stay valid between runs); random otherwise.
  const ring: KeyRing = keep
    ? { activeId: 'bench', keys: { bench: new Uint8Array(32).fill(7) }, indexKey: new Uint8Array(32).fill(9) }
    : { activeId: 'bench', keys: { bench: crypto.getRandomValues(new Uint8Array(32)) }, indexKey: crypto.getRandomValues(new Uint8Array(32)) };
  const cipher = await FieldCipher.create(ring);
  const surreal = await openSurreal(`surrealkv://${join(dir, 'db')}`);
  const db = surreal.db;
  const store = await openStore({ db, cipher });
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);

  await db.query('DEFINE TABLE IF NOT EXISTS bench_meta SCHEMALESS').collect();
  const [[meta]] = await db.query<[{ customers: number; seconds: number; records: number }[]]>('SELECT * FROM bench_meta:load').collect();
  let loadSeconds: number;
  let records: number;
  if (meta && meta.customers === customers) {
    loadSeconds = meta.seconds;
    records = meta.records;
    console.error(`identity bench: reusing ${customers} customers loaded in ${dir}`);
  } else {
    ({ seconds: loadSeconds, records } = await load(db, cipher, customers, now));
    await db.query('UPSERT bench_meta:load CONTENT { customers: $customers, seconds: $seconds, records: $records }', { customers, seconds: loadSeconds, records }).collect();
  }
  const [[counts]] = await db
    .query<[{ customers: number; identities: number; edges: number; conversations: number; messages: number }[]]>(
      `RETURN [{ customers: count(SELECT id FROM customer), identities: count(SELECT id FROM identity), edges: count(SELECT id FROM identifies),
                 conversations: count(SELECT id FROM conversation), messages: count(SELECT id FROM message) }]`,
    )
    .collect();
  report({
    name: 'identity_load_per_s',
    value: records / loadSeconds,
    unit: 'records/s',
    records,
    load_s: Math.round(loadSeconds),
    ...counts,
    scope: 'bulk INSERT batches on surrealkv with every index of the schema in place',
  });

  // Views and baseline selects, interleaved on random customers.
  const rnd = mulberry32(42);
  const pick = () => customerId(Math.floor(rnd() * customers));
  for (let i = 0; i < 200; i++) {
    await store.view({ customerId: `customer:${pick().id}`, viewer: 'agent' });
    await db.query('SELECT * FROM ONLY $id', { id: pick() }).collect();
  }
  const viewMs: number[] = [];
  const queryMs: number[] = [];
  const selectMs: number[] = [];
  let shown = 0;
  for (let i = 0; i < samples; i++) {
    const c = pick();
    let t = performance.now();
    const view = await store.view({ customerId: `customer:${c.id}`, viewer: 'agent' });
    viewMs.push(performance.now() - t);
    shown += view.messages.length;
    t = performance.now();
    await db.query(VIEW_QUERY, { c: pick(), cat: Number.MAX_SAFE_INTEGER, cid: '~', n: 51, convs: 50 }).collect();
    queryMs.push(performance.now() - t);
    t = performance.now();
    await db.query('SELECT * FROM ONLY $id', { id: pick() }).collect();
    selectMs.push(performance.now() - t);
  }
  const baseline = percentile(selectMs, 99);
  report({
    name: 'customer_view_p99_ms',
    value: percentile(viewMs, 99),
    unit: 'ms',
    baseline: 'baseline_select_p99_ms',
    baseline_value: baseline,
    baseline_select_p99_ms: round3(baseline),
    goal: 'value <= 20',
    p50_ms: round3(percentile(viewMs, 50)),
    query_only_p99_ms: round3(percentile(queryMs, 99)),
    query_only_p50_ms: round3(percentile(queryMs, 50)),
    baseline_select_p50_ms: round3(percentile(selectMs, 50)),
    samples,
    messages_per_view: Math.round(shown / samples),
    ...counts,
    total_s: Math.round((performance.now() - t0) / 1000),
  });
  await surreal.close();
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

function customerId(i: number): RecordId<string> {
  return new RecordId('customer', `c${i.toString(36).padStart(5, '0')}`);
}

/** Bulk-loads `n` customers with their identities, conversations and messages; returns seconds and record count. */
async function load(db: import('surrealdb').Surreal, cipher: FieldCipher, n: number, now: number): Promise<{ seconds: number; records: number }> {
  const rnd = mulberry32(7);
  const t0 = performance.now();
  let records = 0;
  let insertMs = 0; // time spent waiting for the engine
  const inflight: Promise<unknown>[] = [];
  let lastLog = t0;
  for (let start = 0; start < n; start += BATCH_CUSTOMERS) {
    const end = Math.min(n, start + BATCH_CUSTOMERS);
    const cs: Record<string, unknown>[] = [];
    const ids: Record<string, unknown>[] = [];
    const edges: Record<string, unknown>[] = [];
    const convs: Record<string, unknown>[] = [];
    const msgs: Record<string, unknown>[] = [];
    for (let i = start; i < end; i++) {
      const cid = customerId(i);
      const phone = `+86138${String(i).padStart(8, '0')}`;
      const created = now - 365 * DAY + Math.floor(rnd() * 200 * DAY);
      const name = `Customer ${i}`;
      const phoneHash = await cipher.lookupHash('phone', phone);
      cs.push({ id: cid, name, name_lc: name.toLowerCase(), phone: await cipher.seal(phone), phone_hash: phoneHash, phone_verified: true, email_verified: false, created_at: created, updated_at: created });
      const handles: [string, string, boolean][] = [
        ['phone', phone, true],
        ['wechat_openid', `o${i.toString(36)}x${Math.floor(rnd() * 1e9).toString(36)}`, false],
        ['web', `v-${i}`, false],
      ];
      for (const [k, [channel, handle, sealed]] of handles.slice(0, IDENTITIES_PER_CUSTOMER).entries()) {
        const iid = new RecordId('identity', `i${i.toString(36)}k${k}`);
        ids.push({
          id: iid,
          channel,
          handle: sealed ? undefined : handle,
          handle_sealed: sealed ? await cipher.seal(handle) : undefined,
          handle_hash: channel === 'phone' ? phoneHash : await cipher.lookupHash('handle', handle),
          created_at: created,
          last_seen_at: created,
        });
        edges.push({ in: iid, out: cid, at: created, by: 'new' });
      }
      // Messages spread over the last 90 days across the customer's conversations (voice last week,
      // chat today, email last month …), each conversation on its own channel.
      const convIds: RecordId<string>[] = [];
      const convRows: Record<string, unknown>[] = [];
      for (let k = 0; k < CONVERSATIONS_PER_CUSTOMER; k++) {
        const id = new RecordId('conversation', `v${i.toString(36)}k${k}`);
        convIds.push(id);
        convRows.push({ id, customer: cid, channel: CHANNELS[(i + k) % CHANNELS.length], status: k === 0 ? 'open' : 'closed', started_at: Number.MAX_SAFE_INTEGER, last_at: 0, message_count: 0 });
      }
      for (let m = 0; m < MESSAGES_PER_CUSTOMER; m++) {
        const k = m % CONVERSATIONS_PER_CUSTOMER;
        const conv = convRows[k];
        const at = now - Math.floor(rnd() * 90 * DAY);
        conv.started_at = Math.min(conv.started_at as number, at);
        conv.last_at = Math.max(conv.last_at as number, at);
        conv.message_count = (conv.message_count as number) + 1;
        const sensitive = m % 20 === 7;
        const text = `message ${m} from customer ${i}: ${'lorem ipsum dolor sit amet '.slice(0, 10 + (m % 17))}`;
        msgs.push({
          id: newMessageId(convIds[k], at),
          conversation: convIds[k],
          channel: conv.channel,
          channel_message_id: `b${i.toString(36)}-${m}`,
          direction: m % 2 ? 'out' : 'in',
          author: m % 2 ? `agent-${m % 50}` : undefined,
          text: sensitive ? undefined : text,
          text_sealed: sensitive ? await cipher.seal(text) : undefined,
          attachments: [],
          at,
        });
      }
      convs.push(...convRows);
    }
    // Two batches in flight: the engine works on its own threads while the next batch is built.
    const ti = performance.now();
    if (inflight.length >= 2) await inflight.shift();
    insertMs += performance.now() - ti;
    inflight.push(
      db
        .query(
          `INSERT INTO customer $cs RETURN NONE; INSERT INTO identity $ids RETURN NONE; INSERT RELATION INTO identifies $edges RETURN NONE;
           INSERT INTO conversation $convs RETURN NONE; INSERT INTO message $msgs RETURN NONE;`,
          { cs, ids, edges, convs, msgs },
        )
        .collect(),
    );
    if (end === n) await Promise.all(inflight);
    records += cs.length + ids.length + edges.length + convs.length + msgs.length;
    if (performance.now() - lastLog > 10_000 || end === n) {
      lastLog = performance.now();
      const s = (lastLog - t0) / 1000;
      console.error(`identity bench: loaded ${end}/${n} customers, ${records} records in ${Math.round(s)} s (${Math.round(records / s)} records/s; ${Math.round((100 * insertMs) / (lastLog - t0))}% of it waiting for INSERT)`);
    }
  }
  return { seconds: (performance.now() - t0) / 1000, records };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A small seeded PRNG, so every run loads and samples the same data. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
