// Child process for the durability test: opens the store at STORE_URL with the ring in STORE_RING
// (JSON, base64url keys), resolves a customer and appends one message, prints the ids, closes, exits.
import { openTestStore } from './store.ts';
import { fromBase64Url } from '../../storage/crypto.ts';

const raw = JSON.parse(process.env.STORE_RING ?? '{}') as { activeId: string; keys: Record<string, string>; indexKey: string };
const ring = {
  activeId: raw.activeId,
  keys: Object.fromEntries(Object.entries(raw.keys).map(([k, v]) => [k, fromBase64Url(v)!])),
  indexKey: fromBase64Url(raw.indexKey)!,
};
const { store, surreal } = await openTestStore({ url: process.env.STORE_URL!, ring });
const r = await store.resolve({ channel: 'dingtalk', handle: 'dd-1', phone: '13811112222', verified: { phone: true } });
const a = await store.append({ customerId: r.customerId, channel: 'dingtalk', channelMessageId: 'd1', direction: 'in', text: 'durable?', at: Number(process.env.STORE_AT) });
await surreal.close();
console.log(JSON.stringify({ resolved: r, appended: a }));
process.exit(0);
