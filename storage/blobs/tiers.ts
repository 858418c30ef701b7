// Moves objects to cheaper tiers by age and last access. An object unused (neither written nor
// read) for `warmAfterDays` goes from hot to warm, for `coldAfterDays` to cold (straight from hot
// if it is that old already). Each move is journalled in "_moves/<key>" before anything is
// copied: copy, verify size and SHA-256 of the copy against the journal, delete the source, drop
// the journal. A run first settles the journals a crashed run left: a verified copy is kept and
// its source deleted (finish), anything else is undone (roll back), so no object is lost or kept
// twice. Run one mover at a time per store.
import * as v from 'valibot';
import { BlobError, TIERS, type Tier } from './store.ts';
import { hashStream, readAll } from './digest.ts';
import { tierPath, silentLog, type Logger, type TieredStore } from './tiered.ts';

const DAY = 86_400_000;

export interface TierPolicy {
  warmAfterDays: number;
  coldAfterDays: number;
  /** "sha256" reads every copy back and hashes it; "size" trusts the backend's copy and checks size and recorded hash. */
  verify: 'sha256' | 'size';
}

const days = (name: string, fallback: number) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.regex(/^\d+(\.\d+)?$/, `${name} must be a number of days`),
    v.transform(Number),
  );

const PolicyEnv = v.pipe(
  v.object({
    BLOB_WARM_AFTER_DAYS: days('BLOB_WARM_AFTER_DAYS', 30),
    BLOB_COLD_AFTER_DAYS: days('BLOB_COLD_AFTER_DAYS', 180),
    BLOB_VERIFY: v.optional(v.picklist(['sha256', 'size'], 'BLOB_VERIFY must be sha256 or size'), 'sha256'),
  }),
  v.check((e) => e.BLOB_COLD_AFTER_DAYS >= e.BLOB_WARM_AFTER_DAYS, 'BLOB_COLD_AFTER_DAYS must not be less than BLOB_WARM_AFTER_DAYS'),
);

export function policyFromEnv(env: Record<string, string | undefined>): TierPolicy {
  const pick = (k: string) => (env[k] === '' ? undefined : env[k]);
  const r = v.safeParse(PolicyEnv, { BLOB_WARM_AFTER_DAYS: pick('BLOB_WARM_AFTER_DAYS'), BLOB_COLD_AFTER_DAYS: pick('BLOB_COLD_AFTER_DAYS'), BLOB_VERIFY: pick('BLOB_VERIFY') });
  if (!r.success) throw new BlobError('bad_input', `config: ${r.issues[0].message}${typeof r.issues[0].input === 'string' ? ` (got ${JSON.stringify(r.issues[0].input)})` : ''}`);
  return { warmAfterDays: r.output.BLOB_WARM_AFTER_DAYS, coldAfterDays: r.output.BLOB_COLD_AFTER_DAYS, verify: r.output.BLOB_VERIFY };
}

const JournalSchema = v.object({
  key: v.string(),
  from: v.picklist(TIERS),
  to: v.picklist(TIERS),
  size: v.number(),
  sha256: v.string(),
  startedAt: v.number(),
});
type Journal = v.InferOutput<typeof JournalSchema>;

const journalPath = (key: string) => `_moves/${key}`;

export interface MoveReport {
  scanned: number;
  moved: number;
  toWarm: number;
  toCold: number;
  /** Half-done moves of an earlier run that were finished or undone. */
  finished: number;
  rolledBack: number;
  failed: number;
  aborted: boolean;
}

export interface MoveOptions {
  now?: number;
  log?: Logger;
  signal?: AbortSignal;
}

/** The tier an object belongs in, given when it was last used. */
export function targetTier(policy: TierPolicy, idleMs: number): Tier {
  if (idleMs >= policy.coldAfterDays * DAY) return 'cold';
  if (idleMs >= policy.warmAfterDays * DAY) return 'warm';
  return 'hot';
}

export async function moveTiers(store: TieredStore, policy: TierPolicy, opts: MoveOptions = {}): Promise<MoveReport> {
  const now = opts.now ?? store.now();
  const log = opts.log ?? store.log ?? silentLog;
  const shelf = store.shelf;
  const report: MoveReport = { scanned: 0, moved: 0, toWarm: 0, toCold: 0, finished: 0, rolledBack: 0, failed: 0, aborted: false };

  async function copyIsGood(j: Journal): Promise<boolean> {
    const info = await shelf.stat(tierPath(j.to, j.key));
    if (!info || info.size !== j.size || info.sha256 !== j.sha256) return false;
    if (policy.verify === 'size') return true;
    const r = await shelf.read(tierPath(j.to, j.key));
    if (!r) return false;
    const h = await hashStream(r.body);
    return h.size === j.size && h.sha256 === j.sha256;
  }

  async function settle(j: Journal): Promise<void> {
    if (await copyIsGood(j)) {
      await shelf.remove(tierPath(j.from, j.key));
      await shelf.remove(journalPath(j.key));
      report.finished++;
      log.info({ key: j.key, from: j.from, to: j.to, size: j.size }, 'blob tier move finished after restart');
      return;
    }
    // The copy is missing or bad: the source was never deleted (that happens only after a good
    // copy), so dropping the copy restores the state before the move.
    await shelf.remove(tierPath(j.to, j.key));
    const source = await shelf.stat(tierPath(j.from, j.key));
    await shelf.remove(journalPath(j.key));
    report.rolledBack++;
    if (source) log.warn({ key: j.key, from: j.from, to: j.to }, 'blob tier move rolled back after restart');
    else log.warn({ key: j.key, from: j.from, to: j.to }, 'blob tier move dropped: the object was deleted meanwhile');
  }

  // 1. Settle what an interrupted run left.
  for await (const { path } of shelf.list('_moves/')) {
    if (opts.signal?.aborted) return { ...report, aborted: true };
    const r = await shelf.read(path);
    if (!r) continue;
    let j: Journal;
    try {
      j = v.parse(JournalSchema, JSON.parse(new TextDecoder().decode(await readAll(r.body, 64 * 1024))));
    } catch (e) {
      report.failed++;
      log.error({ path, err: (e as Error).message }, 'blob move journal unreadable; left for an operator');
      continue;
    }
    await settle(j);
  }

  // 2. Move what has aged. Hot before warm, so an object moved to warm in this run is looked at again only if it is already old enough for cold.
  for (const from of ['hot', 'warm'] as const) {
    for await (const { path } of shelf.list(`${from}/`)) {
      if (opts.signal?.aborted) return { ...report, aborted: true };
      report.scanned++;
      const key = path.slice(from.length + 1);
      const info = await shelf.stat(path);
      if (!info) continue; // deleted or moved meanwhile
      const used = Math.max(info.createdAt, (await store.lastAccess(key)) ?? 0);
      const to = targetTier(policy, now - used);
      if (TIERS.indexOf(to) <= TIERS.indexOf(from)) continue;
      const j: Journal = { key, from, to, size: info.size, sha256: info.sha256, startedAt: now };
      const started = Date.now();
      try {
        await shelf.write(journalPath(key), new TextEncoder().encode(JSON.stringify(j)), { contentType: 'application/json', meta: {}, createdAt: now });
        await shelf.copy(path, tierPath(to, key), { storageClass: store.storageClasses[to] });
        if (!(await copyIsGood(j))) {
          await shelf.remove(tierPath(to, key));
          await shelf.remove(journalPath(key));
          report.failed++;
          log.error({ key, from, to }, 'blob tier move failed verification; the object stays where it was');
          continue;
        }
        await shelf.remove(path);
        await shelf.remove(journalPath(key));
      } catch (e) {
        // Left for the next run to settle from the journal.
        report.failed++;
        log.error({ key, from, to, err: (e as Error).message }, 'blob tier move interrupted');
        continue;
      }
      report.moved++;
      if (to === 'warm') report.toWarm++;
      else report.toCold++;
      log.info({ key, from, to, size: info.size, idleDays: Math.round(((now - used) / DAY) * 10) / 10, ms: Date.now() - started }, 'blob moved to a colder tier');
    }
  }
  return report;
}
