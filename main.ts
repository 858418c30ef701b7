// cc: the contact-center engine. ROLE picks what this process runs; `all` runs everything on embedded defaults.
import pino from 'pino';
import { ConfigError, loadConfig } from './engine/config.ts';
import { NatsServerMissing } from './engine/nats-server.ts';
import { startEngine } from './engine/start.ts';
import { logRedaction } from './storage/mask.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(2);
  }
  throw e;
}

// Phone numbers, emails and addresses never reach the logs in clear.
const log = pino({ level: config.logLevel, base: { node: config.nodeId }, ...logRedaction });
// A stray rejection in a library callback is logged, not a reason to drop every conversation this node hosts.
process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'));

try {
  const engine = await startEngine(config, log, process.env);
  log.info({ roles: config.roles, http: engine.http?.port, nats: engine.natsUrl }, 'engine started');
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: draining actors');
    await engine.stop();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(2);
  }
  if (e instanceof NatsServerMissing) {
    console.error(e.message);
    process.exit(1);
  }
  log.fatal({ err: e }, 'start-up failed');
  console.error(`start-up failed: ${(e as Error).message}`);
  process.exit(1);
}
