// Record ids, transactions and the failures the store reacts to (unique-index violations, write conflicts).
import { RecordId, type Surreal } from 'surrealdb';
import { StoreError } from './api.ts';

// ULID-style keys (48-bit time + 80 random bits, Crockford base32): unique without a round trip, and they
// sort by creation time, which keeps keyset pagination ties (same `at`) in a stable, meaningful order.
const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export function ulid(now = Date.now()): string {
  let t = now;
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = B32[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const rnd = crypto.getRandomValues(new Uint8Array(16));
  let rand = '';
  for (let i = 0; i < 16; i++) rand += B32[rnd[i] & 31];
  return time + rand;
}

export function newId(table: string, now?: number): RecordId<string> {
  return new RecordId(table, ulid(now));
}

/** "customer:01J…" → RecordId; the string was validated by the API schema, this re-checks the table. */
export function parseId(table: string, s: string): RecordId<string> {
  const i = s.indexOf(':');
  if (i < 0 || s.slice(0, i) !== table || !/^[A-Za-z0-9_]{1,64}$/.test(s.slice(i + 1))) throw new StoreError(400, `not a ${table} id: ${s}`);
  return new RecordId(table, s.slice(i + 1));
}

/** RecordId → "table:key" (keys are plain identifiers here, so no escaping is needed). */
export function idOf(r: unknown): string {
  if (r instanceof RecordId) return `${r.table.name}:${String(r.id)}`;
  throw new Error(`expected a record id, got ${typeof r === 'object' ? JSON.stringify(r) : String(r)}`);
}

/** A message's record id, [conversation, at, ulid]: its messages sort by time inside one key range. */
export function newMessageId(conversation: RecordId, at: number): RecordId {
  return new RecordId('message', [conversation, at, ulid(at)]);
}

/** message:[conversation:k, at, ulid] → "message:k-at-ulid" (the form the API uses). */
export function messageIdOf(r: unknown): string {
  if (r instanceof RecordId && Array.isArray(r.id) && r.id.length === 3 && r.id[0] instanceof RecordId) {
    return `message:${String(r.id[0].id)}-${String(r.id[1])}-${String(r.id[2])}`;
  }
  throw new Error(`expected a message id, got ${String(r)}`);
}

export function optIdOf(r: unknown): string | undefined {
  return r === undefined || r === null ? undefined : idOf(r);
}

/** A failed statement inside a transaction, with the cause (not the "not executed" notes of its neighbours). */
export class TxFailure extends Error {
  constructor(
    message: string,
    readonly statement: number,
  ) {
    super(message);
    this.name = 'TxFailure';
  }
}

const NOT_EXECUTED = /not executed due to a failed transaction|was not executed/i;

/**
 * Runs statements as one transaction and returns each statement's result. On failure it throws the
 * statement's own error (a unique-index violation, a conflict…), which `collect()` would hide behind
 * "not executed due to a failed transaction" when an earlier statement was cancelled by it.
 */
export async function runTx(db: Surreal, statements: string[], vars: Record<string, unknown>): Promise<unknown[]> {
  const responses = await db.query(`BEGIN;\n${statements.join(';\n')};\nCOMMIT;`, vars).responses();
  const failed = responses.map((r, i) => ({ r, i })).filter(({ r }) => !r.success);
  // The answers include BEGIN's and COMMIT's; callers get their own statements' results only.
  if (failed.length === 0) return responses.slice(1, 1 + statements.length).map((r) => (r.success ? r.result : undefined));
  const cause = failed.find(({ r }) => !r.success && !NOT_EXECUTED.test(r.error.message)) ?? failed[0];
  throw new TxFailure(cause.r.success ? 'transaction failed' : cause.r.error.message, cause.i - 1);
}

export function isUniqueViolation(e: unknown, index: string): boolean {
  return e instanceof Error && e.message.includes(`index \`${index}\` already contains`);
}

export function isConflict(e: unknown): boolean {
  if (e instanceof StoreError) return false; // our own answers (404, 409 …) are final
  return e instanceof Error && /conflict|can be retried|not executed due to a failed transaction/i.test(e.message);
}

/** Retries `fn` while it fails with a write conflict (optimistic transactions), with jittered backoff. */
export async function retryConflicts<T>(fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i + 1 >= attempts || !isConflict(e)) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * 2 ** i));
    }
  }
}
