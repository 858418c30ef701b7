// Child process of migrateInChild (storage/surrealkv.ts): applies the store's migrations to the surrealkv
// database at argv[2] and exits. It defines the indexes, so its datastore stays pinned (SurrealDB < 3.1.3)
// and is not closed: its few schema writes are in the WAL and replayed by the next open.
import { openSurreal } from './surreal.ts';
import { migrate } from './migrations.ts';

const [url, namespace, database] = process.argv.slice(2);
if (!url) throw new Error('usage: surrealkv-migrate.ts <surrealkv://path> [namespace] [database]');
const { db } = await openSurreal(url, { namespace, database, schemaInChild: false });
const r = await migrate(db);
console.log(JSON.stringify(r));
process.exit(0);
