// Which node should own which shard: rendezvous hashing with a per-node cap, so shards spread evenly
// and a membership change moves as few shards as it can. Every node computes the same answer.
function score(slot: string, node: string): number {
  let h = 0x811c9dc5;
  const s = `${slot}|${node}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Finalize (murmur3 fmix32) so nearby inputs do not rank alike.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Maps each slot to a node; no node gets more than ceil(slots / nodes). */
export function assignShards(slots: readonly string[], nodes: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!nodes.length) return out;
  const members = [...new Set(nodes)].sort();
  const cap = Math.ceil(slots.length / members.length);
  const load = new Map(members.map((n) => [n, 0]));
  for (const slot of slots) {
    const ranked = members.map((n) => [score(slot, n), n] as const).sort((a, b) => b[0] - a[0] || (a[1] < b[1] ? -1 : 1));
    const pick = ranked.find(([, n]) => load.get(n)! < cap)![1];
    load.set(pick, load.get(pick)! + 1);
    out.set(slot, pick);
  }
  return out;
}
