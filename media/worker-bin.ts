// Where the mediasoup-worker binary is. mediasoup's own install script is off (it downloads from GitHub),
// so the binary comes from scripts/setup-media.sh's cache, or from MEDIASOUP_WORKER_BIN when an operator
// ships one. Node-only adapter: mediasoup spawns a native process, which Deno does not host here.
import { accessSync, constants, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { version as mediasoupVersion } from 'mediasoup';

const SETUP_HINT = 'run `sh scripts/setup-media.sh` (npm run setup:media) to build it, or set MEDIASOUP_WORKER_BIN';

export class WorkerBinError extends Error {
  override name = 'WorkerBinError';
}

/** The cache path scripts/setup-media.sh writes to; keep the two in step. */
export function cachedWorkerBin(env: Record<string, string | undefined> = process.env, version = mediasoupVersion): string {
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(cacheHome, 'cc', `mediasoup-${version}`, 'mediasoup-worker');
}

function executable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The worker binary to spawn: MEDIASOUP_WORKER_BIN if set, else the set-up's cache; a clear error if neither is there. */
export function findWorkerBin(env: Record<string, string | undefined> = process.env): string {
  const given = env.MEDIASOUP_WORKER_BIN;
  if (given !== undefined && given !== '') {
    if (!executable(given)) throw new WorkerBinError(`MEDIASOUP_WORKER_BIN=${given} is not an executable file; ${SETUP_HINT}`);
    return given;
  }
  const cached = cachedWorkerBin(env);
  if (!executable(cached)) {
    throw new WorkerBinError(`mediasoup-worker ${mediasoupVersion} not found at ${cached}; ${SETUP_HINT}`);
  }
  return cached;
}
