// Versioned schema migrations: an ordered list of SurrealQL scripts, each applied once per database.
//
// `schema_migration:<version>` records what has been applied. `migrate` runs each missing version in its
// own transaction together with the CREATE of its record, so a version is either fully applied and
// recorded or not at all. Two store instances starting at once may both run a version: the scripts are
// idempotent (DEFINE … IF NOT EXISTS, or OVERWRITE for a change), and the loser's CREATE of the same
// record id fails its transaction, after which it sees the version recorded and moves on. A version is
// never edited once released; a change is a new version.
import type { Surreal } from 'surrealdb';
import * as v from 'valibot';
import { SCHEMA_V1, SCHEMA_V2, SCHEMA_V3 } from './schema.ts';

export interface Migration {
  version: number;
  name: string;
  up: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'identity graph, history, tickets, tags, merges', up: SCHEMA_V1 },
  { version: 2, name: 'conversation status: status_at, closed_at, closed_by, disposition', up: SCHEMA_V2 },
  { version: 3, name: "message direction 'system' (recordings, transcripts)", up: SCHEMA_V3 },
];

const BOOKKEEPING = `
DEFINE TABLE IF NOT EXISTS schema_migration SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON schema_migration TYPE int;
DEFINE FIELD IF NOT EXISTS name ON schema_migration TYPE string;
DEFINE FIELD IF NOT EXISTS applied_at ON schema_migration TYPE int;
`;

const Applied = v.array(v.object({ version: v.number(), name: v.string(), applied_at: v.number() }));

export interface MigrateResult {
  applied: number[]; // versions this call applied
  current: number; // highest version recorded now
}

/** Applies every migration not yet recorded, in order. Safe to call on every start and from several instances at once. */
export async function migrate(db: Surreal, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  checkList(migrations);
  await db.query(BOOKKEEPING).collect();
  const done = new Set((await appliedMigrations(db)).map((m) => m.version));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    try {
      await db
        .query(`BEGIN;\n${m.up}\n;CREATE type::record('schema_migration', $version) CONTENT { version: $version, name: $name, applied_at: $at };\nCOMMIT;`, {
          version: m.version,
          name: m.name,
          at: Date.now(),
        })
        .collect();
      applied.push(m.version);
    } catch (e) {
      // Another instance applied it meanwhile (its record exists): that is success. Anything else is not.
      const now = new Set((await appliedMigrations(db)).map((x) => x.version));
      if (!now.has(m.version)) throw new Error(`migration ${m.version} (${m.name}) failed: ${(e as Error).message}`);
    }
  }
  const all = await appliedMigrations(db);
  return { applied, current: all.length ? all[all.length - 1].version : 0 };
}

export async function appliedMigrations(db: Surreal): Promise<v.InferOutput<typeof Applied>> {
  const [rows] = await db.query<[unknown]>('SELECT version, name, applied_at FROM schema_migration ORDER BY version').collect();
  return v.parse(Applied, rows);
}

function checkList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version !== i + 1) throw new Error(`migrations: version ${m.version} at position ${i} (versions must be 1, 2, 3… in order)`);
  });
}
