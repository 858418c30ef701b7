// Child process of storage/durability.test.ts: opens the store at argv[2] as the engine does (openSurreal,
// then openStore), bulk-loads argv[3] customers the way bench/identity.ts does (batches of 100 customers,
// each 3 conversations and 20 messages of about 2 KB, two batches in flight, so the load crosses a few
// surrealkv memtable rotations), prints what it counts, then stops on SIGTERM the way main.ts does:
// close the database, then process.exit(0).
import { RecordId } from 'surrealdb';
import { openSurreal } from './surreal.ts';
import { openStore } from './store.ts';
import { FieldCipher } from './crypto.ts';
import { newMessageId } from './records.ts';

const [url, n] = [process.argv[2], Number(process.argv[3])];
const surreal = await openSurreal(url);
const db = surreal.db;
const ring = { activeId: 'k', keys: { k: new Uint8Array(32).fill(1) }, indexKey: new Uint8Array(32).fill(2) };
await openStore({ db, cipher: await FieldCipher.create(ring) });
process.on('SIGTERM', async () => {
  await surreal.close();
  process.exit(0);
});

const CHANNELS = ['voice', 'webchat', 'email', 'wechat', 'sms', 'app'];
const at0 = Date.UTC(2026, 10, 25);
const filler = 'lorem ipsum dolor sit amet '.repeat(80);
const inflight: Promise<unknown>[] = [];
for (let start = 0; start < n; start += 100) {
  const cs: Record<string, unknown>[] = [];
  const convs: Record<string, unknown>[] = [];
  const msgs: Record<string, unknown>[] = [];
  for (let i = start; i < Math.min(n, start + 100); i++) {
    const customer = new RecordId('customer', `c${String(i).padStart(6, '0')}`);
    cs.push({ id: customer, name: `Customer ${i}`, name_lc: `customer ${i}`, phone_hash: `h${i}`, phone_verified: true, email_verified: false, created_at: at0, updated_at: at0 });
    const ids = [0, 1, 2].map((k) => new RecordId('conversation', `v${String(i).padStart(6, '0')}k${k}`));
    ids.forEach((id, k) => convs.push({ id, customer, channel: CHANNELS[(i + k) % 6], status: 'open', started_at: at0, last_at: at0, message_count: 0 }));
    for (let m = 0; m < 20; m++) {
      const at = at0 - m * 1000;
      msgs.push({ id: newMessageId(ids[m % 3], at), conversation: ids[m % 3], channel: CHANNELS[(i + (m % 3)) % 6], channel_message_id: `d${i}-${m}`, direction: m % 2 ? 'out' : 'in', text: `message ${m} from customer ${i}: ${filler}`, attachments: [], at });
    }
  }
  if (inflight.length >= 2) await inflight.shift();
  inflight.push(db.query('INSERT INTO customer $cs RETURN NONE; INSERT INTO conversation $convs RETURN NONE; INSERT INTO message $msgs RETURN NONE;', { cs, convs, msgs }).collect());
}
await Promise.all(inflight);
const [counts] = await db.query<[{ customers: number; conversations: number; messages: number }]>(
  'RETURN { customers: count(SELECT id FROM customer), conversations: count(SELECT id FROM conversation), messages: count(SELECT id FROM message) }',
).collect();
console.log(JSON.stringify(counts));
