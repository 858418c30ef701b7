// `npm run bench -- <name>...`: runs the named benches (all when none is named); each prints JSON lines.
import { benchActors } from './actors.ts';
import { benchRouting } from './routing.ts';
import { benchRoutingRuntime } from './routing-runtime.ts';
import { benchIdentity } from './identity.ts';
import { benchWebchat } from './webchat.ts';
import { benchMedia } from './media.ts';

const benches: Record<string, () => Promise<void>> = {
  actors: benchActors,
  routing: async () => {
    await benchRouting();
    await benchRoutingRuntime();
  },
  identity: benchIdentity,
  webchat: benchWebchat,
  media: benchMedia,
};

const names = process.argv.slice(2).filter((a) => a !== '--');
const unknown = names.filter((n) => !benches[n]);
if (unknown.length) {
  console.error(`unknown bench: ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
for (const name of names.length ? names : Object.keys(benches)) await benches[name]();
process.exit(0);
