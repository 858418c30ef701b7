// Heap per bare XState actor (createActor of the same machine), the baseline for idle_actor_bytes.
import { createActor } from 'xstate';
import { counterMachine } from '../tests/support/counter.ts';

const n = Number(process.argv[2] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc!;
gc();
gc();
const before = process.memoryUsage().heapUsed;
const actors = [];
for (let i = 0; i < n; i++) {
  const a = createActor(counterMachine).start();
  a.send({ type: 'inc' });
  actors.push(a);
}
gc();
gc();
const after = process.memoryUsage().heapUsed;
process.stdout.write(JSON.stringify({ bytes_per_actor: (after - before) / n, n: actors.length }) + '\n');
