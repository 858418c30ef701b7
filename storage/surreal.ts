// Opens SurrealDB: the embedded engine (@surrealdb/node, surrealkv file or memory) by default,
// or a SurrealDB server or cluster over ws:// with the same SDK.
import { mkdirSync } from 'node:fs';
import { Surreal, createRemoteEngines } from 'surrealdb';
import { createNodeEngines } from '@surrealdb/node';
import { migrateInChild, surrealkvDir, waitForRelease } from './surrealkv.ts';

export interface SurrealHandle {
  db: Surreal;
  url: string;
  health(): Promise<{ state: 'ok' | 'down'; error?: string }>;
  close(): Promise<void>;
}

export interface OpenSurrealOptions {
  namespace?: string;
  database?: string;
  /**
   * surrealkv only: apply the store's migrations in a child process first (default true), so that this
   * process never defines an index and close() can shut the engine down (see storage/surrealkv.ts).
   */
  schemaInChild?: boolean;
  /** surrealkv only: how long close() waits for the engine's shutdown (memtable flush) to finish (default 60 s). */
  closeTimeoutMs?: number;
}

export async function openSurreal(url: string, opts: OpenSurrealOptions = {}): Promise<SurrealHandle> {
  const embedded = /^(mem|surrealkv|rocksdb):\/\//.test(url);
  if (embedded && !url.startsWith('mem://')) mkdirSync(url.replace(/^[\w+]+:\/\//, '').replace(/\?.*/, ''), { recursive: true });
  const kvDir = surrealkvDir(url);
  if (kvDir && opts.schemaInChild !== false) await migrateInChild(url, opts.namespace ?? 'cc', opts.database ?? 'main');
  const db = new Surreal({ engines: { ...createRemoteEngines(), ...createNodeEngines() } });
  await db.connect(url, { namespace: opts.namespace ?? 'cc', database: opts.database ?? 'main' });
  await db.use({ namespace: opts.namespace ?? 'cc', database: opts.database ?? 'main' });
  return {
    db,
    url: url.replace(/\/\/[^@/]*@/, '//***@'),
    async health() {
      try {
        await db.query('RETURN 1').collect();
        return { state: 'ok' };
      } catch (e) {
        return { state: 'down', error: (e as Error).message };
      }
    },
    async close() {
      await db.close();
      // close() returns before the engine's shutdown has flushed its memtables; a process that exits
      // now can lose commits (storage/surrealkv.ts). Wait for the engine to let go of its directory.
      if (kvDir && !(await waitForRelease(kvDir, opts.closeTimeoutMs ?? 60_000))) {
        throw new Error(`surrealkv: the engine still holds ${kvDir} ${Math.round((opts.closeTimeoutMs ?? 60_000) / 1000)} s after close (an index defined in this process pins it); writes since its last memtable flush rely on its WAL`);
      }
    },
  };
}
