// Resolving an inbound message to its customer, and finding customers.
//
// Resolution, in order:
// 1. The channel identity (channel + keyed hash of the handle) is known: its customer (following
//    merged_into if a merge raced with it).
// 2. Otherwise the message's phone or email (for the phone and email channels the handle itself is that
//    claim) is looked up by keyed hash. If the claim is verified AND the stored customer's value is
//    verified too, the new identity joins that customer ("one number for every channel"). Any other
//    match (either side unverified) becomes a suggestion record for agents; nothing is merged silently.
// 3. Otherwise a new customer.
// Concurrency: the identity is created under a UNIQUE (channel, handle_hash) index in the same
// transaction as its customer and edge, so of two simultaneous first messages one commits and the other
// fails on the index, rolls back (no orphan customer) and retries into step 1.
import * as v from 'valibot';
import { RecordId } from 'surrealdb';
import { normalizeEmail, normalizePhone, type LookupKind } from './crypto.ts';
import { StoreError, type ParsedRequestOf, type ReplyOf } from './api.ts';
import { SEALED_HANDLE_CHANNELS, type IdentityChannel } from './schema.ts';
import { openSealed, type StoreContext } from './context.ts';
import { idOf, isUniqueViolation, newId, retryConflicts, runTx } from './records.ts';
import { show } from './mask.ts';

type Claim = { kind: 'phone' | 'email'; value: string; hash: string; verified: boolean };

const Candidate = v.object({
  id: v.instance(RecordId),
  phone_hash: v.optional(v.string()),
  email_hash: v.optional(v.string()),
  phone_verified: v.boolean(),
  email_verified: v.boolean(),
  created_at: v.number(),
  merged_into: v.optional(v.instance(RecordId)),
});
type Candidate = v.InferOutput<typeof Candidate>;

const KnownIdentity = v.object({ id: v.instance(RecordId), last_seen_at: v.number(), customers: v.array(v.instance(RecordId)) });

export async function resolve(ctx: StoreContext, req: ParsedRequestOf<'resolve'>): Promise<ReplyOf<'resolve'>> {
  const at = req.at ?? ctx.now();
  const channel = req.channel as IdentityChannel;
  const handleKind: LookupKind = channel === 'phone' ? 'phone' : channel === 'email' ? 'email' : 'handle';
  const handleHash = await hashOr400(ctx, handleKind, req.handle, 'handle');
  const claims = await claimsOf(ctx, req);

  for (let attempt = 0; ; attempt++) {
    const known = await findIdentity(ctx, channel, handleHash);
    if (known) {
      const customer = await followMerges(ctx, known.customers[0]);
      if (at - known.last_seen_at > 60_000) await ctx.db.query('UPDATE $id SET last_seen_at = $at RETURN NONE', { id: known.id, at }).collect();
      const suggestions = claims.length ? await attachClaims(ctx, customer, claims, at) : [];
      return { customerId: idOf(customer), identityId: idOf(known.id), created: false, linkedBy: 'identity', suggestions };
    }

    const matches = await candidatesFor(ctx, claims);
    const link = pickLink(claims, matches);
    const customerId = link?.customer.id ?? newId('customer', at);
    const identityId = newId('identity', at);
    const statements: string[] = [];
    const vars: Record<string, unknown> = { cid: customerId, iid: identityId, at, how: link ? `link:${link.kind}` : 'new' };
    if (!link) {
      statements.push('CREATE $cid CONTENT $customer RETURN NONE');
      vars.customer = await newCustomer(ctx, req.displayName, claims, at);
    }
    const sealed = SEALED_HANDLE_CHANNELS.includes(channel);
    vars.identity = {
      channel,
      handle: sealed ? undefined : req.handle,
      // A phone or email handle is stored in its normalized form, the one its hash was made from.
      handle_sealed: sealed ? await ctx.cipher.seal(claims.find((c) => c.kind === channel)?.value ?? req.handle) : undefined,
      handle_hash: handleHash,
      display_name: req.displayName,
      created_at: at,
      last_seen_at: at,
    };
    statements.push('CREATE $iid CONTENT $identity RETURN NONE', 'RELATE $iid->identifies->$cid SET at = $at, by = $how RETURN NONE');
    const suggested = matches.filter((m) => m.customer.id.toString() !== customerId.toString());
    if (suggested.length) {
      statements.push('INSERT IGNORE INTO suggestion $suggestions RETURN NONE');
      vars.suggestions = suggested.map((m) => suggestionRow(customerId, m.customer.id, m.kind, at));
    }
    try {
      await retryConflicts(() => runTx(ctx.db, statements, vars));
    } catch (e) {
      // Someone else created this identity first: it is known now, so the next round finds it.
      if (isUniqueViolation(e, 'identity_handle') && attempt < 5) continue;
      throw e;
    }
    if (link) await fillGaps(ctx, link.customer.id, claims, at);
    ctx.log.debug({ customer: idOf(customerId), identity: idOf(identityId), channel, linkedBy: link?.kind ?? 'new' }, 'identity resolved');
    return {
      customerId: idOf(customerId),
      identityId: idOf(identityId),
      created: !link,
      ...(link ? { linkedBy: link.kind } : {}),
      suggestions: dedupeSuggestions(suggested),
    };
  }
}

async function hashOr400(ctx: StoreContext, kind: LookupKind, value: string, field: string): Promise<string> {
  try {
    return await ctx.cipher.lookupHash(kind, value);
  } catch (e) {
    throw new StoreError(400, `${field}: ${(e as Error).message}`);
  }
}

async function claimsOf(ctx: StoreContext, req: ParsedRequestOf<'resolve'>): Promise<Claim[]> {
  const phone = req.phone ?? (req.channel === 'phone' ? req.handle : undefined);
  const email = req.email ?? (req.channel === 'email' ? req.handle : undefined);
  const out: Claim[] = [];
  if (phone !== undefined) {
    const value = normalizeOr400(normalizePhone, phone, 'phone');
    out.push({ kind: 'phone', value, hash: await hashOr400(ctx, 'phone', value, 'phone'), verified: req.verified?.phone === true });
  }
  if (email !== undefined) {
    const value = normalizeOr400(normalizeEmail, email, 'email');
    out.push({ kind: 'email', value, hash: await hashOr400(ctx, 'email', value, 'email'), verified: req.verified?.email === true });
  }
  return out;
}

function normalizeOr400(fn: (s: string) => string, value: string, field: string): string {
  try {
    return fn(value);
  } catch (e) {
    throw new StoreError(400, `${field}: ${(e as Error).message.replace(/^\w+: /, '')}`);
  }
}

async function findIdentity(ctx: StoreContext, channel: string, hash: string) {
  const [rows] = await ctx.db
    .query<[unknown[]]>('SELECT id, last_seen_at, ->identifies->customer AS customers FROM identity WHERE channel = $channel AND handle_hash = $hash LIMIT 1', { channel, hash })
    .collect();
  if (!rows.length) return undefined;
  const known = v.parse(KnownIdentity, rows[0]);
  if (known.customers.length !== 1) throw new StoreError(500, `identity ${idOf(known.id)} identifies ${known.customers.length} customers`);
  return known;
}

/** A merge moves identities to the survivor; should one have slipped past it, follow merged_into. */
async function followMerges(ctx: StoreContext, id: RecordId): Promise<RecordId> {
  let cur = id;
  for (let hops = 0; hops < 10; hops++) {
    const [next] = await ctx.db.query<[unknown]>('RETURN $id.merged_into', { id: cur }).collect();
    if (!(next instanceof RecordId)) return cur;
    cur = next;
  }
  throw new StoreError(500, `merge chain from ${idOf(id)} is longer than 10`);
}

async function candidatesFor(ctx: StoreContext, claims: Claim[]): Promise<{ kind: 'phone' | 'email'; claim: Claim; customer: Candidate }[]> {
  if (!claims.length) return [];
  const statements = claims.map((c, i) => `SELECT id, phone_hash, email_hash, phone_verified, email_verified, created_at, merged_into FROM customer WHERE ${c.kind}_hash = $h${i} LIMIT 20`);
  const vars = Object.fromEntries(claims.map((c, i) => [`h${i}`, c.hash]));
  const results = await ctx.db.query<unknown[][]>(statements.join(';\n'), vars).collect();
  const out: { kind: 'phone' | 'email'; claim: Claim; customer: Candidate }[] = [];
  for (const [i, claim] of claims.entries()) {
    for (const row of v.parse(v.array(Candidate), results[i])) {
      // A value held by an absorbed customer belongs to its survivor now (with the absorbed one's verification).
      const customer = row.merged_into ? { ...row, id: await followMerges(ctx, row.id), merged_into: undefined } : row;
      if (!out.some((o) => o.kind === claim.kind && o.customer.id.toString() === customer.id.toString())) out.push({ kind: claim.kind, claim, customer });
    }
  }
  return out;
}

/** A verified claim matching a verified stored value: phone first, then email; the oldest customer wins a tie. */
function pickLink(claims: Claim[], matches: { kind: 'phone' | 'email'; claim: Claim; customer: Candidate }[]) {
  for (const kind of ['phone', 'email'] as const) {
    const strong = matches
      .filter((m) => m.kind === kind && m.claim.verified && (kind === 'phone' ? m.customer.phone_verified : m.customer.email_verified))
      .sort((a, b) => a.customer.created_at - b.customer.created_at);
    if (strong.length) return strong[0];
  }
  return undefined;
}

async function newCustomer(ctx: StoreContext, name: string | undefined, claims: Claim[], at: number) {
  const row: Record<string, unknown> = { name, name_lc: name?.toLowerCase(), created_at: at, updated_at: at };
  for (const c of claims) {
    row[c.kind] = await ctx.cipher.seal(c.value);
    row[`${c.kind}_hash`] = c.hash;
    row[`${c.kind}_verified`] = c.verified;
  }
  return row;
}

/** Adds claims the customer has no value for (or upgrades the same value to verified). */
async function fillGaps(ctx: StoreContext, customer: RecordId, claims: Claim[], at: number): Promise<void> {
  for (const c of claims) {
    await ctx.db
      .query(
        `UPDATE $id SET ${c.kind} = $sealed, ${c.kind}_hash = $hash, ${c.kind}_verified = $verified, updated_at = $at
         WHERE ${c.kind}_hash = NONE OR (${c.kind}_hash = $hash AND ${c.kind}_verified = false AND $verified = true) RETURN NONE`,
        { id: customer, sealed: await ctx.cipher.seal(c.value), hash: c.hash, verified: c.verified, at },
      )
      .collect();
  }
}

/** A known identity brought phone/email: record them if new to the customer, suggest other customers holding them. */
async function attachClaims(ctx: StoreContext, customer: RecordId, claims: Claim[], at: number) {
  const others = (await candidatesFor(ctx, claims)).filter((m) => m.customer.id.toString() !== customer.toString());
  await fillGaps(ctx, customer, claims, at);
  if (others.length) {
    await ctx.db.query('INSERT IGNORE INTO suggestion $rows RETURN NONE', { rows: others.map((m) => suggestionRow(customer, m.customer.id, m.kind, at)) }).collect();
  }
  return dedupeSuggestions(others);
}

function suggestionRow(customer: RecordId, candidate: RecordId, reason: 'phone' | 'email', at: number) {
  // One record per (customer, candidate, reason), named by the pair, so a repeat is ignored by INSERT IGNORE.
  return { id: new RecordId('suggestion', `${String(customer.id)}_${String(candidate.id)}_${reason}`), customer, candidate, reason, status: 'open', created_at: at };
}

function dedupeSuggestions(ms: { kind: 'phone' | 'email'; customer: Candidate }[]) {
  const seen = new Set<string>();
  const out: { customerId: string; reason: 'phone' | 'email' }[] = [];
  for (const m of ms) {
    const key = `${m.customer.id.toString()}|${m.kind}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ customerId: idOf(m.customer.id), reason: m.kind });
  }
  return out;
}

// search -------------------------------------------------------------------------------------------

const Found = v.object({
  id: v.instance(RecordId),
  merged_into: v.optional(v.instance(RecordId)),
  name: v.optional(v.string()),
  phone: v.optional(v.string()),
  email: v.optional(v.string()),
  tags: v.array(v.string()),
});

/** By name prefix (index range on name_lc), exact phone or email (keyed hash), or tag (graph from the tag). A match on an absorbed customer answers with its survivor. */
export async function searchCustomers(ctx: StoreContext, req: ParsedRequestOf<'search'>): Promise<ReplyOf<'search'>> {
  const limit = req.limit ?? 20;
  const fields = 'id, name, name_lc, phone, email, merged_into, array::sort(->tagged->tag.name) AS tags';
  let sql: string;
  const vars: Record<string, unknown> = { limit };
  if (req.namePrefix !== undefined) {
    const p = req.namePrefix.toLowerCase();
    sql = `SELECT ${fields} FROM customer WHERE name_lc >= $lo AND name_lc < $hi ORDER BY name_lc LIMIT $limit`;
    Object.assign(vars, { lo: p, hi: `${p}\u{10FFFF}` });
  } else if (req.phone !== undefined) {
    sql = `SELECT ${fields} FROM customer WHERE phone_hash = $hash LIMIT $limit`;
    vars.hash = await hashOr400(ctx, 'phone', normalizeOr400(normalizePhone, req.phone, 'phone'), 'phone');
  } else if (req.email !== undefined) {
    sql = `SELECT ${fields} FROM customer WHERE email_hash = $hash LIMIT $limit`;
    vars.hash = await hashOr400(ctx, 'email', normalizeOr400(normalizeEmail, req.email, 'email'), 'email');
  } else {
    sql = `SELECT ${fields} FROM (SELECT VALUE in FROM tagged WHERE out = $tag AND record::tb(in) = 'customer') LIMIT $limit`;
    vars.tag = new RecordId('tag', req.tag!);
  }
  const [rows] = await ctx.db.query<[unknown[]]>(sql, vars).collect();
  let found = v.parse(v.array(Found), rows);
  const survivors = [...new Set(found.filter((c) => c.merged_into).map((c) => c.merged_into!.toString()))];
  if (survivors.length) {
    const ids = await Promise.all(found.filter((c) => c.merged_into).map((c) => followMerges(ctx, c.id)));
    const [more] = await ctx.db.query<[unknown[]]>(`SELECT ${fields} FROM $ids`, { ids }).collect();
    const seen = new Set<string>();
    found = [...found.filter((c) => !c.merged_into), ...v.parse(v.array(Found), more)].filter((c) => !seen.has(c.id.toString()) && (seen.add(c.id.toString()), true));
  }
  return {
    customers: await Promise.all(
      found.map(async (c) => {
        const phone = await openSealed(ctx, c.phone, 'customer.phone');
        const email = await openSealed(ctx, c.email, 'customer.email');
        return {
          id: idOf(c.id),
          ...(c.name !== undefined ? { name: c.name } : {}),
          ...(phone !== undefined ? { phone: show(req.viewer, 'phone', phone) } : {}),
          ...(email !== undefined ? { email: show(req.viewer, 'email', email) } : {}),
          tags: c.tags,
        };
      }),
    ),
  };
}
