// Opens SurrealDB: the embedded engine (@surrealdb/node, surrealkv file or memory) by default,
// or a SurrealDB server or cluster over ws:// with the same SDK.
import { mkdirSync } from 'node:fs';
import { Surreal, createRemoteEngines } from 'surrealdb';
import { createNodeEngines } from '@surrealdb/node';

export interface SurrealHandle {
  db: Surreal;
  url: string;
  health(): Promise<{ state: 'ok' | 'down'; error?: string }>;
  close(): Promise<void>;
}

export async function openSurreal(url: string, opts: { namespace?: string; database?: string } = {}): Promise<SurrealHandle> {
  const embedded = /^(mem|surrealkv|rocksdb):\/\//.test(url);
  if (embedded && !url.startsWith('mem://')) mkdirSync(url.replace(/^\w+:\/\//, ''), { recursive: true });
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
    },
  };
}
