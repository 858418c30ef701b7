// A store on the real embedded SurrealDB for tests: in memory by default, or surrealkv in a directory.
import { after } from 'node:test';
import { openSurreal, type SurrealHandle } from '../../storage/surreal.ts';
import { FieldCipher, type KeyRing } from '../../storage/crypto.ts';
import { openStore, type Store } from '../../storage/store.ts';

export function testRing(): KeyRing {
  return { activeId: 'k1', keys: { k1: crypto.getRandomValues(new Uint8Array(32)) }, indexKey: crypto.getRandomValues(new Uint8Array(32)) };
}

export async function openTestStore(opts: { url?: string; ring?: KeyRing; now?: () => number } = {}): Promise<{ store: Store; surreal: SurrealHandle; ring: KeyRing }> {
  const ring = opts.ring ?? testRing();
  const surreal = await openSurreal(opts.url ?? 'mem://');
  const store = await openStore({ db: surreal.db, cipher: await FieldCipher.create(ring), now: opts.now });
  return { store, surreal, ring };
}

/**
 * The embedded engine keeps the process alive after close() once an index was defined in this process
 * (seen with @surrealdb/node 3.0.3, e.g. on mem://; surrealdb/surrealdb.js#673 reports the same for
 * full-text indexes; surrealkv stores get their schema from a child: storage/surrealkv.ts), so a test
 * file that used it ends its process itself once its tests are done, with the runner's exit code.
 */
export function exitWhenDone(): void {
  after(() => {
    setTimeout(() => process.exit(), 200).unref();
  });
}
