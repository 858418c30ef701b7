// Users and sessions in NATS KV, shared by every edge node: `cc_users` (one key per user, the password
// as a scrypt hash) and `cc_sessions` (random tokens; the bucket's TTL drops them on the server, and
// each value carries its own expiry so an expired token is refused even before the server removes it).
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import * as v from 'valibot';
import { hashPassword, verifyPassword } from './passwords.ts';

export const ROLES = ['agent', 'supervisor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** User ids double as agent actor ids (agent/<id>), so they follow the actor id alphabet. */
export const UserId = v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9_-]{1,31}$/, 'must be 2-32 lower-case letters, digits, _ or - (starting with a letter or digit)'));
export const Password = v.pipe(v.string(), v.minLength(10, 'must be at least 10 characters'), v.maxLength(200, 'must be at most 200 characters'));

const UserRecord = v.object({
  id: v.string(),
  name: v.string(),
  role: v.picklist(ROLES),
  hash: v.string(),
  queues: v.array(v.string()),
  createdAt: v.number(),
  /** A disabled user cannot sign in, and their open sessions stop working at their next request. */
  disabled: v.optional(v.boolean(), false),
  /** Skills with levels as the admin set them; the agent actor's profile holds the copy routing uses. */
  skills: v.optional(v.record(v.string(), v.number()), {}),
});
export type User = v.InferOutput<typeof UserRecord>;
export type PublicUser = Omit<User, 'hash'>;

const SessionRecord = v.object({ user: v.string(), role: v.picklist(ROLES), expiresAt: v.number(), createdAt: v.number() });
export type Session = v.InferOutput<typeof SessionRecord> & { token: string };

export const USERS_BUCKET = 'cc_users';
export const SESSIONS_BUCKET = 'cc_sessions';
export const DEFAULT_SESSION_MS = 8 * 3600_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

async function bucket(nc: NatsConnection, name: string, replicas: number, ttl?: number): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(name, { history: 1, replicas, ...(ttl ? { ttl } : {}) });
  } catch {
    return kvm.open(name);
  }
}

export class AccountError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

export class Accounts {
  private constructor(
    private readonly users: KV,
    private readonly sessions: KV,
    readonly sessionMs: number,
    private readonly now: () => number,
  ) {}

  static async open(nc: NatsConnection, opts: { sessionMs?: number; replicas?: number; now?: () => number } = {}): Promise<Accounts> {
    const sessionMs = opts.sessionMs ?? DEFAULT_SESSION_MS;
    const replicas = opts.replicas ?? 1;
    // The bucket TTL is the longest a session can live; shorter lifetimes are enforced by expiresAt.
    return new Accounts(await bucket(nc, USERS_BUCKET, replicas), await bucket(nc, SESSIONS_BUCKET, replicas, Math.max(sessionMs, DEFAULT_SESSION_MS)), sessionMs, opts.now ?? Date.now);
  }

  async get(id: string): Promise<User | undefined> {
    if (!v.is(UserId, id)) return undefined;
    const e = await this.users.get(id);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    const r = v.safeParse(UserRecord, JSON.parse(dec.decode(e.value)));
    return r.success ? r.output : undefined;
  }

  async list(): Promise<PublicUser[]> {
    const out: PublicUser[] = [];
    for await (const k of await this.users.keys()) {
      const u = await this.get(k);
      if (u) out.push(publicUser(u));
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Creates a user; 409 if the id is taken (create is atomic in KV, so two nodes cannot both win). */
  async create(input: { id: string; name?: string; role: Role; password: string; queues?: string[]; skills?: Record<string, number> }): Promise<PublicUser> {
    const user: User = { id: input.id, name: input.name ?? input.id, role: input.role, hash: await hashPassword(input.password), queues: input.queues ?? ['support'], createdAt: this.now(), disabled: false, skills: input.skills ?? {} };
    try {
      await this.users.create(user.id, enc.encode(JSON.stringify(user)));
    } catch {
      throw new AccountError(409, `user ${user.id} already exists`);
    }
    return publicUser(user);
  }

  /** Changes name, role, queues or the disabled flag; compare-and-set on the KV revision, so two admins never lose an edit silently. */
  async update(id: string, change: { name?: string; role?: Role; queues?: string[]; skills?: Record<string, number>; disabled?: boolean }): Promise<PublicUser> {
    const e = v.is(UserId, id) ? await this.users.get(id) : null;
    if (!e || e.operation !== 'PUT' || !e.value.length) throw new AccountError(404, `no user ${id}`);
    const user = v.parse(UserRecord, JSON.parse(dec.decode(e.value)));
    const next: User = { ...user, ...Object.fromEntries(Object.entries(change).filter(([, x]) => x !== undefined)) };
    try {
      await this.users.update(id, enc.encode(JSON.stringify(next)), e.revision);
    } catch {
      throw new AccountError(409, `user ${id} changed meanwhile; load it again`);
    }
    return publicUser(next);
  }

  async remove(id: string): Promise<void> {
    if (!(await this.get(id))) throw new AccountError(404, `no user ${id}`);
    await this.users.delete(id);
  }

  /**
   * The user when the password is right (the caller refuses a disabled one); undefined otherwise (the
   * caller answers 401 without saying which part was wrong).
   */
  async check(id: string, password: string): Promise<User | undefined> {
    const u = await this.get(id);
    // Unknown users still cost a hash, so timing does not tell which names exist.
    if (!u) {
      await verifyPassword(password, DUMMY_HASH);
      return undefined;
    }
    return (await verifyPassword(password, u.hash)) ? u : undefined;
  }

  async startSession(user: User): Promise<Session> {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const s = { user: user.id, role: user.role, createdAt: this.now(), expiresAt: this.now() + this.sessionMs };
    await this.sessions.put(token, enc.encode(JSON.stringify(s)));
    return { ...s, token };
  }

  async session(token: string | undefined): Promise<Session | undefined> {
    if (!token || !/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const e = await this.sessions.get(token);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    const r = v.safeParse(SessionRecord, JSON.parse(dec.decode(e.value)));
    if (!r.success || r.output.expiresAt <= this.now()) return undefined;
    // The user record decides, not the session: a deleted or disabled user is out, a new role applies at once.
    const user = await this.get(r.output.user);
    if (!user || user.disabled) return undefined;
    return { ...r.output, role: user.role, token };
  }

  async endSession(token: string): Promise<void> {
    if (/^[A-Za-z0-9_-]{43}$/.test(token)) await this.sessions.delete(token);
  }

  /**
   * The first administrator: from ADMIN_PASSWORD, or generated and returned once for the caller to log
   * (never written anywhere else). Does nothing when the admin exists.
   */
  async bootstrapAdmin(password: string | undefined): Promise<{ created: boolean; generated?: string }> {
    if (await this.get('admin')) return { created: false };
    const generated = password ? undefined : btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(15))));
    await this.create({ id: 'admin', name: 'Administrator', role: 'admin', password: password ?? generated!, queues: [] }).catch((e) => {
      if (!(e instanceof AccountError && e.status === 409)) throw e; // another node made it first
    });
    return { created: true, generated };
  }
}

const publicUser = ({ hash: _, ...u }: User): PublicUser => u;
// A fixed hash of a random password: verifying against it costs what a real check costs.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
