// The key ring for field encryption, from configuration, or generated once for embedded defaults.
// A small adapter: node:fs for <dataDir>/keys.json (Deno runs it through its node: compatibility).
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { fromBase64Url, toBase64Url, type KeyRing } from './crypto.ts';

export interface KeyLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const stderrLog: KeyLog = {
  info: (obj, msg) => console.error(JSON.stringify({ level: 'info', ...obj, msg })),
  warn: (obj, msg) => console.error(JSON.stringify({ level: 'warn', ...obj, msg })),
};

/**
 * Key ring from configuration: FIELD_KEYS="kid1:<base64 32 bytes>,kid2:<...>", FIELD_KEY_ACTIVE=kid
 * (default: the first), FIELD_INDEX_KEY=<base64 32 bytes>.
 * When none are configured (embedded defaults), a ring is generated once and kept in
 * <dataDir>/keys.json (mode 0600), reused on the next start; the log says so (never the key).
 * Bad values throw an Error whose message starts with the variable's name.
 */
export function loadKeyRing(env: Record<string, string | undefined>, dataDir: string, log: KeyLog = stderrLog): KeyRing {
  const keysText = env.FIELD_KEYS?.trim();
  const active = env.FIELD_KEY_ACTIVE?.trim();
  const index = env.FIELD_INDEX_KEY?.trim();
  if (keysText) {
    const ring = fromEnv(keysText, active, index);
    warnIfLocalRingDropped(ring, join(dataDir, 'keys.json'), log);
    return ring;
  }
  if (active) throw new Error('FIELD_KEY_ACTIVE is set but FIELD_KEYS is not (set both, or neither for a generated local ring)');
  if (index) throw new Error('FIELD_INDEX_KEY is set but FIELD_KEYS is not (set both, or neither for a generated local ring)');
  return localRing(dataDir, log);
}

function fromEnv(keysText: string, active: string | undefined, indexText: string | undefined): KeyRing {
  const keys: Record<string, Uint8Array> = {};
  for (const entry of keysText.split(',').map((e) => e.trim()).filter(Boolean)) {
    const colon = entry.indexOf(':');
    if (colon < 0) throw new Error('FIELD_KEYS must be kid:<base64 key> pairs separated by commas');
    const id = entry.slice(0, colon).trim();
    if (!KEY_ID.test(id)) throw new Error(`FIELD_KEYS: key id "${id}" must be 1-64 letters, digits, _ or -`);
    if (keys[id]) throw new Error(`FIELD_KEYS: key id "${id}" appears twice`);
    keys[id] = key32(entry.slice(colon + 1).trim(), `FIELD_KEYS: key "${id}"`);
  }
  const ids = Object.keys(keys);
  if (ids.length === 0) throw new Error('FIELD_KEYS must name at least one kid:<base64 key>');
  const activeId = active || ids[0];
  if (!keys[activeId]) throw new Error(`FIELD_KEY_ACTIVE "${activeId}" is not a key id in FIELD_KEYS (${ids.join(', ')})`);
  if (!indexText) throw new Error('FIELD_INDEX_KEY is required with FIELD_KEYS (32 bytes of base64; keep it when rotating FIELD_KEYS)');
  const indexKey = key32(indexText, 'FIELD_INDEX_KEY');
  // Key separation: the lookup key must not double as an encryption key.
  if (ids.some((id) => sameBytes(keys[id], indexKey))) throw new Error('FIELD_INDEX_KEY must differ from every key in FIELD_KEYS');
  return { activeId, keys, indexKey };
}

// Moving from the generated ring to configured keys: data sealed with the local key stays readable
// only if FIELD_KEYS still lists it, and existing lookups only work with the same index key.
function warnIfLocalRingDropped(ring: KeyRing, path: string, log: KeyLog): void {
  let local: KeyRing;
  try {
    local = parseKeysFile(JSON.parse(readFileSync(path, 'utf8')), path);
  } catch {
    return; // no local ring (the usual case), or one that is unreadable and unused
  }
  const missing = Object.keys(local.keys).filter((id) => !ring.keys[id] || !sameBytes(ring.keys[id], local.keys[id]));
  const indexChanged = !sameBytes(local.indexKey, ring.indexKey);
  if (missing.length > 0 || indexChanged) {
    log.warn(
      { path, missingKeyIds: missing, indexKeyChanged: indexChanged },
      'field encryption: FIELD_KEYS is set but a generated keys.json exists whose keys it does not carry; data sealed with them cannot be opened (or found by phone/email) unless they are added',
    );
  }
}

function key32(text: string, what: string): Uint8Array {
  const bytes = fromBase64Url(text);
  if (!bytes) throw new Error(`${what} must be base64 (e.g. from \`openssl rand -base64 32\`)`);
  if (bytes.length !== 32) throw new Error(`${what} must be 32 bytes of base64 (got ${bytes.length} bytes)`);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const KeysFile = v.object({
  version: v.literal(1),
  activeId: v.pipe(v.string(), v.regex(KEY_ID)),
  keys: v.pipe(v.record(v.pipe(v.string(), v.regex(KEY_ID)), v.string()), v.check((k) => Object.keys(k).length > 0, 'no keys')),
  indexKey: v.string(),
  createdAt: v.optional(v.string()),
});

function localRing(dataDir: string, log: KeyLog): KeyRing {
  const path = join(dataDir, 'keys.json');
  const existing = readKeysFile(path, log);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true });
  const activeId = `local-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`;
  const file: v.InferOutput<typeof KeysFile> = {
    version: 1,
    activeId,
    keys: { [activeId]: toBase64Url(crypto.getRandomValues(new Uint8Array(32))) },
    indexKey: toBase64Url(crypto.getRandomValues(new Uint8Array(32))),
    createdAt: new Date().toISOString(),
  };
  // Written under a temporary name and linked into place, so a reader never sees half a file and,
  // when two processes start at once, one ring wins and both use it.
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`keys.json: cannot write ${path}: ${(e as Error).message}`);
    const theirs = readKeysFile(path, log);
    if (theirs) return theirs;
  } finally {
    unlinkSync(tmp);
  }
  log.info({ path, keyId: activeId }, 'field encryption: generated a local key ring (no FIELD_KEYS configured); back this file up with the data');
  return parseKeysFile(file, path);
}

function readKeysFile(path: string, log: KeyLog): KeyRing | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`keys.json: cannot read ${path}: ${(e as Error).message}`);
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    // Readable by others: tighten rather than refuse, so a restart does not fail over a chmod.
    chmodSync(path, 0o600);
    log.warn({ path, mode: mode.toString(8) }, 'field encryption: keys.json was readable by others; set its mode to 0600');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`keys.json: ${path} is not valid JSON`);
  }
  const ring = parseKeysFile(json, path);
  log.info({ path, keyId: ring.activeId }, 'field encryption: using the local key ring');
  return ring;
}

function parseKeysFile(json: unknown, path: string): KeyRing {
  const r = v.safeParse(KeysFile, json);
  if (!r.success) {
    const issue = r.issues[0];
    throw new Error(`keys.json: ${path} is malformed (${v.getDotPath(issue) ?? 'root'}: ${issue.message})`);
  }
  const f = r.output;
  const keys: Record<string, Uint8Array> = {};
  for (const [id, text] of Object.entries(f.keys)) keys[id] = key32(text, `keys.json: key "${id}"`);
  if (!keys[f.activeId]) throw new Error(`keys.json: ${path}: activeId "${f.activeId}" is not one of its keys`);
  return { activeId: f.activeId, keys, indexKey: key32(f.indexKey, 'keys.json: indexKey') };
}
