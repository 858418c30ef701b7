// Configuration from the environment (DESIGN.md "Configuration"), validated with valibot.
// A bad value stops start-up with one line that names the variable.
import * as v from 'valibot';

const port = (fallback: number) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.regex(/^\d+$/, 'must be a whole number'),
    v.transform(Number),
    v.minValue(1, 'must be from 1 to 65535'),
    v.maxValue(65535, 'must be from 1 to 65535'),
  );

const millis = (fallback: number, min: number) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.regex(/^\d+$/, 'must be a whole number of milliseconds'),
    v.transform(Number),
    v.minValue(min, `must be at least ${min} ms`),
  );

const natsUrls = v.pipe(
  v.string(),
  v.transform((s) => s.split(',').map((u) => u.trim()).filter(Boolean)),
  v.minLength(1, 'must name at least one server'),
  v.check(
    (urls) => urls.every((u) => /^(nats|tls|ws|wss):\/\/[^\s/]+/.test(u) || /^[^\s/:]+:\d+$/.test(u)),
    'must be nats://host:port URLs separated by commas',
  ),
);

export const ROLES = ['core', 'edge', 'media', 'store'] as const;
export type Role = (typeof ROLES)[number];

const roles = v.pipe(
  v.optional(v.string(), 'all'),
  v.transform((s) => s.split(',').map((r) => r.trim().toLowerCase()).filter(Boolean)),
  v.check(
    (list) => list.length > 0 && list.every((r) => r === 'all' || (ROLES as readonly string[]).includes(r)),
    `must be all or a comma-separated list of ${ROLES.join(', ')}`,
  ),
  v.transform((list): Role[] => (list.includes('all') ? [...ROLES] : (list as Role[]))),
);

const EnvSchema = v.object({
  PORT: port(3000),
  NATS_URL: v.optional(natsUrls),
  DATA_DIR: v.pipe(v.optional(v.string(), './.data'), v.trim(), v.minLength(1, 'must not be empty')),
  SURREAL_URL: v.optional(
    v.pipe(v.string(), v.regex(/^(mem:\/\/|surrealkv:\/\/.+|rocksdb:\/\/.+|wss?:\/\/.+|https?:\/\/.+)$/, 'must be mem://, surrealkv://path, ws(s):// or http(s):// URL')),
  ),
  BLOB_URL: v.optional(v.pipe(v.string(), v.regex(/^(file:\/\/.+|s3:\/\/[^/?]+.*)$/, 'must be file://path or s3://bucket?endpoint=…&region=…'))),
  REGION: v.pipe(v.optional(v.string(), 'local'), v.regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes')),
  ROLE: roles,
  NODE_ID: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be letters, digits, _ or -'))),
  SIP_PORT: port(5060),
  SMTP_PORT: port(2525),
  SMPP_PORT: port(2775),
  ACTOR_SHARDS: v.pipe(
    v.optional(v.string(), '32'),
    v.regex(/^\d+$/, 'must be a whole number'),
    v.transform(Number),
    v.minValue(1, 'must be from 1 to 1024'),
    v.maxValue(1024, 'must be from 1 to 1024'),
  ),
  ACTOR_IDLE_MS: millis(60_000, 100),
  LEASE_TTL_MS: millis(5_000, 1_000),
  JS_REPLICAS: v.pipe(v.optional(v.string(), '1'), v.picklist(['1', '3', '5'], 'must be 1, 3 or 5'), v.transform(Number)),
  LOG_LEVEL: v.optional(v.picklist(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'must be fatal, error, warn, info, debug, trace or silent'), 'info'),
});

export type Config = {
  port: number;
  natsUrl?: string[];
  dataDir: string;
  surrealUrl: string;
  blobUrl: string;
  region: string;
  roles: Role[];
  nodeId: string;
  sipPort: number;
  smtpPort: number;
  smppPort: number;
  actorShards: number;
  actorIdleMs: number;
  leaseTtlMs: number;
  jsReplicas: number;
  logLevel: string;
};

export class ConfigError extends Error {}

/** Parses the environment; throws ConfigError whose message is the one line to print. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.entries)) {
    const value = env[key];
    if (value !== undefined && value !== '') picked[key] = value;
  }
  const result = v.safeParse(EnvSchema, picked);
  if (!result.success) {
    const issue = result.issues[0];
    const name = issue.path?.[0]?.key ?? 'environment';
    const got = typeof issue.input === 'string' ? ` (got ${JSON.stringify(issue.input)})` : '';
    throw new ConfigError(`config: ${String(name)} ${issue.message}${got}`);
  }
  const e = result.output;
  const dataDir = e.DATA_DIR.replace(/\/+$/, '');
  return {
    port: e.PORT,
    natsUrl: e.NATS_URL,
    dataDir,
    surrealUrl: e.SURREAL_URL ?? `surrealkv://${dataDir}/surreal`,
    blobUrl: e.BLOB_URL ?? `file://${dataDir}/blobs`,
    region: e.REGION,
    roles: e.ROLE,
    nodeId: e.NODE_ID ?? `${e.REGION}-${crypto.randomUUID().slice(0, 8)}`,
    sipPort: e.SIP_PORT,
    smtpPort: e.SMTP_PORT,
    smppPort: e.SMPP_PORT,
    actorShards: e.ACTOR_SHARDS,
    actorIdleMs: e.ACTOR_IDLE_MS,
    leaseTtlMs: e.LEASE_TTL_MS,
    jsReplicas: e.JS_REPLICAS,
    logLevel: e.LOG_LEVEL,
  };
}
