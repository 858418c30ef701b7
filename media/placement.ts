// Which media node holds each call. A call's router, transports and producers live in one mediasoup
// process on one media node, so every command after `router.open` must reach that node. `router.open` is
// answered by any node (queue group: that is the placement); the node records itself in the KV bucket
// `cc_media_calls` (conversation → node) and serves every command on its own subjects
// `cc.media.v1.node.<node>.<op>`. Clients find the node from the open's answer, or from the bucket when
// another process opened the call (a workspace node joining a call the SIP edge placed).
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';

export const MEDIA_CALLS_BUCKET = 'cc_media_calls';

/** KV keys allow `[-/_=.a-zA-Z0-9]`; conversation ids also allow `:` (a SIP Call-ID's media key). */
export const callKey = (conversationId: string): string => conversationId.replace(/=/g, '=3D').replace(/:/g, '=3A');

/** A node id fit for one subject token. */
export function nodeToken(node: string): string {
  if (!/^[\w-]{1,64}$/.test(node)) throw new Error(`media node id ${JSON.stringify(node)}: letters, digits, _ and - only (1-64)`);
  return node;
}

/** The bucket, created by media nodes; clients open it and treat "no bucket" as "no call anywhere". */
export async function placementsForNode(nc: NatsConnection, replicas = 1): Promise<KV> {
  const kvm = new Kvm(nc);
  return kvm.create(MEDIA_CALLS_BUCKET, { history: 1, replicas }).catch(() => kvm.open(MEDIA_CALLS_BUCKET));
}

export class Placements {
  private kv: Promise<KV | undefined> | undefined;
  private readonly cache = new Map<string, string>();

  constructor(private readonly nc: NatsConnection) {}

  remember(conversationId: string, node: string): void {
    this.cache.set(conversationId, node);
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
  }

  forget(conversationId: string): void {
    this.cache.delete(conversationId);
  }

  cached(conversationId: string): string | undefined {
    return this.cache.get(conversationId);
  }

  /** The node the bucket names for the call (and remembers it), or undefined. */
  async lookup(conversationId: string): Promise<string | undefined> {
    this.kv ??= new Kvm(this.nc).open(MEDIA_CALLS_BUCKET).catch(() => {
      this.kv = undefined; // no media node has started yet: ask again next time
      return undefined;
    });
    const kv = await this.kv;
    const e = await kv?.get(callKey(conversationId)).catch(() => null);
    const node = e && e.operation === 'PUT' && e.length > 0 ? e.string() : undefined;
    if (node) this.remember(conversationId, node);
    else this.forget(conversationId);
    return node;
  }
}
