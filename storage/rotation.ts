// Background re-encryption after a key change: every sealed field not sealed with the active key is
// opened with the ring and sealed again with the active key.
//
// - Resumable: after each batch the table's progress (active key id, last record id) is stored in
//   `rotation_progress:<table>`; a restart with the same active key continues after that record, a
//   changed active key starts the table over, a finished table is skipped.
// - Optimistic: a record is rewritten only if its sealed fields still hold what was read
//   (UPDATE … WHERE field = old), so a value changed meanwhile is never replaced by stale data; such a
//   record is read again and retried (3 times; one still changing leaves the table to be scanned again
//   by the next run). Several store nodes rotating at once only duplicate work.
// - Cancellable: the signal is checked between batches; progress is already stored by then.
// Lookup hashes are keyed by the separate index key and so need no rewrite.
import { BoundExcluded, NotFoundError, RecordId, RecordIdRange, type RecordIdValue, type Surreal } from 'surrealdb';
import type { Logger } from 'pino';
import * as v from 'valibot';
import { isSealed, type FieldCipher } from './crypto.ts';

export interface RotationTarget {
  table: string;
  fields: string[]; // fields hold sealed strings (or NONE); dotted paths reach into objects ('address.line1')
}

export type RotationLog = Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;

export interface RotationOptions {
  batch?: number; // records read per batch (default 200)
  log?: RotationLog;
  signal?: AbortSignal;
  restart?: boolean; // ignore stored progress and scan every table again
  pauseMs?: number; // pause between batches, to leave the database to foreground work (default 0)
}

export interface RotationResult {
  scanned: number; // records read in this run
  rewritten: number; // records re-encrypted in this run
  conflicts: number; // records still changing under us after retries (left for the next run)
  unreadable: number; // sealed values the ring cannot open (unknown key id or damaged): left as they are
  aborted: boolean;
}

const PROGRESS = 'rotation_progress';
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const RETRIES = 3;

const Target = v.object({
  table: v.pipe(v.string(), v.regex(IDENT, 'table must be a plain identifier'), v.check((t) => t !== PROGRESS, `cannot rotate ${PROGRESS}`)),
  fields: v.pipe(v.array(v.pipe(v.string(), v.regex(PATH, 'fields must be identifiers or dotted paths'))), v.minLength(1, 'needs at least one field')),
});

const Progress = v.object({
  key_id: v.string(),
  fields: v.array(v.string()),
  after: v.optional(v.nullable(v.instance(RecordId))),
  done: v.boolean(),
  scanned: v.number(),
  rewritten: v.number(),
});

export async function rotateKeys(db: Surreal, cipher: FieldCipher, targets: RotationTarget[], opts: RotationOptions = {}): Promise<RotationResult> {
  const batch = opts.batch ?? 200;
  if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw new Error(`rotateKeys: batch must be a whole number from 1 to 10000 (got ${batch})`);
  const checked = targets.map((t) => {
    const r = v.safeParse(Target, t);
    if (!r.success) throw new Error(`rotateKeys: bad target ${JSON.stringify(t)}: ${r.issues[0].message}`);
    return r.output;
  });
  await db
    .query(
      `DEFINE TABLE IF NOT EXISTS ${PROGRESS} SCHEMAFULL;
       DEFINE FIELD IF NOT EXISTS key_id ON ${PROGRESS} TYPE string;
       DEFINE FIELD IF NOT EXISTS fields ON ${PROGRESS} TYPE array<string>;
       DEFINE FIELD IF NOT EXISTS after ON ${PROGRESS} TYPE option<record>;
       DEFINE FIELD IF NOT EXISTS done ON ${PROGRESS} TYPE bool;
       DEFINE FIELD IF NOT EXISTS scanned ON ${PROGRESS} TYPE int;
       DEFINE FIELD IF NOT EXISTS rewritten ON ${PROGRESS} TYPE int;
       DEFINE FIELD IF NOT EXISTS updated_at ON ${PROGRESS} TYPE datetime VALUE time::now();`,
    )
    .collect();
  const total: RotationResult = { scanned: 0, rewritten: 0, conflicts: 0, unreadable: 0, aborted: false };
  for (const target of checked) {
    await rotateTable(db, cipher, target, batch, opts, total);
    if (total.aborted) break;
  }
  opts.log?.info({ ...total, keyId: cipher.activeId }, total.aborted ? 'key rotation: stopped, will resume' : 'key rotation: done');
  return total;
}

/** Runs rotateKeys in the background; `stop()` cancels it and waits for the batch in flight. `done` never rejects: an error is logged and returned. */
export function startRotation(
  db: Surreal,
  cipher: FieldCipher,
  targets: RotationTarget[],
  opts: Omit<RotationOptions, 'signal'> = {},
): { done: Promise<RotationResult & { error?: string }>; stop(): Promise<RotationResult & { error?: string }> } {
  const ac = new AbortController();
  const done = rotateKeys(db, cipher, targets, { ...opts, signal: ac.signal }).catch((e: Error) => {
    opts.log?.error({ err: e }, 'key rotation failed');
    return { scanned: 0, rewritten: 0, conflicts: 0, unreadable: 0, aborted: true, error: e.message };
  });
  return {
    done,
    stop() {
      ac.abort();
      return done;
    },
  };
}

type Row = { id: RecordId } & Record<string, unknown>;
type Change = { path: string; old: string; next: string };

async function rotateTable(
  db: Surreal,
  cipher: FieldCipher,
  target: v.InferOutput<typeof Target>,
  batch: number,
  opts: RotationOptions,
  total: RotationResult,
): Promise<void> {
  const { table, fields } = target;
  const log = opts.log;
  const progressId = new RecordId(PROGRESS, table);
  const stored = await readProgress(db, progressId);
  // Progress counts only for the same active key and the same fields (a field added later is scanned).
  const resume = !opts.restart && stored?.key_id === cipher.activeId && stored.fields.join() === fields.join();
  if (resume && stored.done) {
    log?.debug({ table, keyId: cipher.activeId }, 'key rotation: table already done');
    return;
  }
  let after: RecordIdValue | undefined = resume ? stored.after?.id : undefined;
  const counts = { scanned: resume ? stored.scanned : 0, rewritten: resume ? stored.rewritten : 0 };
  log?.info({ table, keyId: cipher.activeId, resumed: resume && after !== undefined, scannedBefore: counts.scanned }, 'key rotation: table started');
  const projection = ['id', ...fields].join(', ');
  let lastLog = Date.now();
  let conflicts = 0;

  for (;;) {
    if (opts.signal?.aborted) {
      total.aborted = true;
      return;
    }
    const range = new RecordIdRange(table, after === undefined ? undefined : new BoundExcluded(after), undefined);
    let rows: Row[];
    try {
      [rows] = await db.query<[Row[]]>(`SELECT ${projection} FROM $range LIMIT $n`, { range, n: batch }).collect();
    } catch (e) {
      if (e instanceof NotFoundError) rows = []; // the table does not exist (yet): nothing to rotate
      else throw e;
    }
    if (rows.length === 0) break;

    let pending = rows;
    const unreadable = new Map<string, string>(); // "id field" → reason, once per batch even when retried
    for (let attempt = 0; pending.length > 0; attempt++) {
      const { plans, failed } = await planAll(cipher, pending, fields);
      for (const f of failed) unreadable.set(`${String(f.id)} ${f.field}`, f.reason);
      const lost = await applyPlans(db, plans);
      total.rewritten += plans.length - lost.length;
      counts.rewritten += plans.length - lost.length;
      if (lost.length === 0) break;
      if (attempt === RETRIES) {
        total.conflicts += lost.length;
        conflicts += lost.length;
        log?.warn({ table, ids: lost.map(String) }, 'key rotation: records kept changing; left for the next run');
        break;
      }
      log?.debug({ table, ids: lost.map(String) }, 'key rotation: records changed since read; reading them again');
      pending = await reread(db, lost, projection);
    }

    for (const [where, reason] of unreadable) {
      log?.error({ table, record: where, reason }, 'key rotation: cannot open a sealed value; left as it is');
    }
    total.unreadable += unreadable.size;
    after = rows[rows.length - 1].id.id;
    total.scanned += rows.length;
    counts.scanned += rows.length;
    await writeProgress(db, progressId, { key_id: cipher.activeId, fields, after: new RecordId(table, after), done: false, ...counts });
    log?.debug({ table, ...counts }, 'key rotation: batch');
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log?.info({ table, ...counts }, 'key rotation: progress');
    }
    if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  if (conflicts > 0) {
    // Not done: the next run scans the table again for the records that kept changing.
    await writeProgress(db, progressId, { key_id: cipher.activeId, fields, after: undefined, done: false, scanned: 0, rewritten: 0 });
    log?.warn({ table, ...counts, conflicts }, 'key rotation: table scanned; some records left for the next run');
    return;
  }
  await writeProgress(db, progressId, { key_id: cipher.activeId, fields, after: after === undefined ? undefined : new RecordId(table, after), done: true, ...counts });
  log?.info({ table, ...counts }, 'key rotation: table done');
}

/** For each row, the fields sealed with an older key, opened and sealed again with the active one. */
async function planAll(cipher: FieldCipher, rows: Row[], fields: string[]) {
  const failed: { id: RecordId; field: string; reason: string }[] = [];
  const plans = await Promise.all(
    rows.map(async (row) => {
      const changes: Change[] = [];
      for (const path of fields) {
        const old = getPath(row, path);
        if (!isSealed(old) || cipher.isCurrent(old)) continue;
        try {
          changes.push({ path, old, next: await cipher.seal(await cipher.open(old)) });
        } catch (e) {
          failed.push({ id: row.id, field: path, reason: (e as Error).message });
        }
      }
      return { id: row.id, changes };
    }),
  );
  return { plans: plans.filter((p) => p.changes.length > 0), failed };
}

/** One transaction per batch; returns the ids whose fields changed since they were read. */
async function applyPlans(db: Surreal, plans: { id: RecordId; changes: Change[] }[]): Promise<RecordId[]> {
  if (plans.length === 0) return [];
  const vars: Record<string, unknown> = {};
  const statements = plans.map((p, i) => {
    vars[`id${i}`] = p.id;
    const set = p.changes.map((c, j) => ((vars[`n${i}_${j}`] = c.next), `${c.path} = $n${i}_${j}`)).join(', ');
    const where = p.changes.map((c, j) => ((vars[`o${i}_${j}`] = c.old), `${c.path} = $o${i}_${j}`)).join(' AND ');
    return `UPDATE $id${i} SET ${set} WHERE ${where} RETURN VALUE id;`;
  });
  for (let attempt = 0; ; attempt++) {
    try {
      const results = await db.query<unknown[]>(`BEGIN;\n${statements.join('\n')}\nCOMMIT;`, vars).collect();
      // results[0] is BEGIN's; each UPDATE answers [id] when it wrote, [] when its WHERE no longer held.
      return plans.filter((_, i) => !(Array.isArray(results[i + 1]) && (results[i + 1] as unknown[]).length === 1)).map((p) => p.id);
    } catch (e) {
      // A transaction that collided with a concurrent write is retried as a whole.
      if (attempt >= RETRIES || !/conflict|retr(y|ied)/i.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 10 * 2 ** attempt));
    }
  }
}

// One statement per record: on the embedded engine (3.0) `SELECT … FROM $ids` with an array of record
// ids fails in some cases with "Specify a database to use"; each id is read on its own (a deleted one reads NONE).
async function reread(db: Surreal, ids: RecordId[], projection: string): Promise<Row[]> {
  const vars = Object.fromEntries(ids.map((id, i) => [`id${i}`, id]));
  const sql = ids.map((_, i) => `SELECT ${projection} FROM ONLY $id${i};`).join('\n');
  const rows = await db.query<(Row | null | undefined)[]>(sql, vars).collect();
  return rows.filter((r): r is Row => r !== null && r !== undefined);
}

async function readProgress(db: Surreal, id: RecordId) {
  const [row] = await db.query<[unknown]>('SELECT * FROM ONLY $id', { id }).collect();
  if (row === undefined || row === null) return undefined;
  const r = v.safeParse(Progress, row);
  if (!r.success) throw new Error(`rotateKeys: ${String(id)} is malformed (${r.issues[0].message})`);
  return r.output;
}

async function writeProgress(db: Surreal, id: RecordId, p: v.InferOutput<typeof Progress>) {
  await db.query('UPSERT $id CONTENT $p RETURN NONE', { id, p }).collect(); // updated_at is set by its VALUE clause
}

function getPath(row: Record<string, unknown>, path: string): unknown {
  let cur: unknown = row;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}
