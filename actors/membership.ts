// Who is a member now: the membership keys the server has not expired, read without creating a consumer.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { NODE_BUCKET } from './address.ts';

const PREFIX = `$KV.${NODE_BUCKET}.`;

/** Node id -> incarnation of every live membership key. */
export async function liveMembers(jsm: JetStreamManager, nodes: KV): Promise<Map<string, string>> {
  // `kv.keys()` creates an ordered consumer, a meta-layer request that took 0.3-2 s on a loaded 3-server
  // cluster and so delayed every failover; the stream leader answers stream info from its own state.
  const info = await jsm.streams.info(`KV_${NODE_BUCKET}`, { subjects_filter: `${PREFIX}>` });
  const ids = Object.keys(info.state.subjects ?? {}).map((s) => s.slice(PREFIX.length));
  const live = new Map<string, string>();
  // A node that left cleanly leaves a delete marker until it expires.
  for (const e of await Promise.all(ids.map((id) => nodes.get(id)))) if (e?.operation === 'PUT') live.set(e.key, e.string());
  return live;
}
