// `npm run bench -- <name>...`: runs the named benches (all when none is named); each prints JSON lines.
import { spawn } from 'node:child_process';
import { benchActors } from './actors.ts';
import { benchRouting } from './routing.ts';
import { benchRoutingRuntime } from './routing-runtime.ts';
import { benchIdentity } from './identity.ts';
import { benchWebchat } from './webchat.ts';
import { benchMedia } from './media.ts';
import { benchKvLatency } from './kv-latency.ts';

function inChild(name: string): Promise<void> {
  const p = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', name], { stdio: 'inherit' });
  return new Promise((ok, fail) => p.once('exit', (code) => (code === 0 ? ok() : fail(new Error(`bench ${name} exited with ${code}`)))));
}

const benches: Record<string, () => Promise<void>> = {
  actors: benchActors,
  routing: async () => {
    await benchRouting();
    // In a fresh process: the in-process bench leaves a heap behind that would slow this one's collections.
    await inChild('routing-runtime');
  },
  'routing-runtime': benchRoutingRuntime,
  identity: benchIdentity,
  webchat: benchWebchat,
  media: benchMedia,
  'kv-latency': benchKvLatency,
};

const names = process.argv.slice(2).filter((a) => a !== '--');
const unknown = names.filter((n) => !benches[n]);
if (unknown.length) {
  console.error(`unknown bench: ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
for (const name of names.length ? names : Object.keys(benches).filter((n) => n !== 'routing-runtime')) await benches[name]();
process.exit(0);
