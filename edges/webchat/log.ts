// The durable per-conversation log every web chat socket reads from: one JetStream stream, one subject
// per conversation, the frame's seq is the stream sequence. Any node can append (agent replies, notices)
// and any node holding the customer's socket tails it, so sockets resume on any node without loss or
// duplicates. A KV bucket remembers each customer's current conversation and the receipt pointers.
import { DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, nanos, type NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import { EdgeRejection } from '../message.ts';
import type { LoggedFrame } from './protocol.ts';

export const LOG_STREAM = 'CC_WEBCHAT';
export const LOG_BUCKET = 'cc_webchat';
const KEEP_MS = 7 * 24 * 3600_000;
/** A re-sent customer frame within this window gets its first seq back (the stream's dedup). */
const DEDUP_MS = 3600_000;
/** Receipts look this far back at most. */
export const MAX_RANGE = 500;

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;
export const logSubject = (conversationId: string): string => {
  if (!SAFE_ID.test(conversationId)) throw new EdgeRejection(400, `conversation id ${JSON.stringify(conversationId.slice(0, 40))} must be 1-128 letters, digits, _ or -`);
  return `cc.webchat.${conversationId}`;
};
/** Agent and customer typing for a conversation: core NATS, never stored. */
export const typingSubject = (conversationId: string): string => `cc.conversation.${conversationId}.typing`;

const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const bindingKey = (account: string, handle: string) => `h.${b64(account)}.${b64(handle)}`;

export interface LoggedEntry {
  seq: number;
  conversationId: string;
  frame: LoggedFrame;
}

export interface ConversationLog {
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: KV;
  append(conversationId: string, frame: LoggedFrame, msgId?: string): Promise<{ seq: number; duplicate: boolean }>;
  /** Frames of a conversation from seq `from` on, then live ones as they come, until stop(). */
  tail(conversationId: string, from: number, onEntry: (e: LoggedEntry) => void, onError: (e: Error) => void): Promise<{ stop(): void }>;
  /** Frames with from <= seq <= to (bounded), in order. */
  range(conversationId: string, from: number, to: number): Promise<LoggedEntry[]>;
  /** The customer's current conversation on this account, if any. */
  current(account: string, handle: string): Promise<string | undefined>;
  bind(account: string, handle: string, conversationId: string): Promise<void>;
  /** Highest seq already reported in this receipt state, and a compare-and-set to move it. */
  pointer(conversationId: string, state: 'delivered' | 'read'): Promise<{ seq: number; revision: number }>;
  movePointer(conversationId: string, state: 'delivered' | 'read', seq: number, revision: number): Promise<boolean>;
}

export async function openConversationLog(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<ConversationLog> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const cfg = {
    name: LOG_STREAM,
    subjects: ['cc.webchat.*'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: opts.replicas ?? 1,
    max_age: nanos(KEEP_MS),
    duplicate_window: nanos(DEDUP_MS),
  };
  try {
    await jsm.streams.add(cfg);
  } catch (e) {
    // Created by another node meanwhile: keep theirs.
    await jsm.streams.info(LOG_STREAM).catch(() => {
      throw e;
    });
  }
  const kvm = new Kvm(nc);
  const kv = await kvm.create(LOG_BUCKET, { history: 1, ttl: KEEP_MS, replicas: opts.replicas ?? 1 }).catch(() => kvm.open(LOG_BUCKET));
  const dec = new TextDecoder();
  const entry = (seq: number, subject: string, data: Uint8Array): LoggedEntry => ({
    seq,
    conversationId: subject.slice('cc.webchat.'.length),
    frame: JSON.parse(dec.decode(data)) as LoggedFrame,
  });

  const log: ConversationLog = {
    js,
    jsm,
    kv,
    async append(conversationId, frame, msgId) {
      const h = headers();
      h.set('Cc-Frame', frame.type);
      const ack = await js.publish(logSubject(conversationId), JSON.stringify(frame), { ...(msgId ? { msgID: msgId } : {}), headers: h });
      return { seq: ack.seq, duplicate: ack.duplicate };
    },
    async tail(conversationId, from, onEntry, onError) {
      const consumer = await js.consumers.get(LOG_STREAM, {
        filter_subjects: logSubject(conversationId),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: Math.max(1, from),
      });
      const messages = await consumer.consume();
      let stopped = false;
      void (async () => {
        try {
          for await (const m of messages) {
            if (stopped) break;
            try {
              onEntry(entry(m.seq, m.subject, m.data));
            } catch (e) {
              onError(e as Error);
            }
          }
        } catch (e) {
          if (!stopped) onError(e as Error);
        }
      })();
      return {
        stop() {
          stopped = true;
          void messages.close().catch(() => undefined);
        },
      };
    },
    async range(conversationId, from, to) {
      const out: LoggedEntry[] = [];
      if (to < from) return out;
      const consumer = await js.consumers.get(LOG_STREAM, {
        filter_subjects: logSubject(conversationId),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: Math.max(1, from),
      });
      try {
        while (out.length < MAX_RANGE) {
          const m = await consumer.next({ expires: 1000 });
          if (!m || m.seq > to) break;
          out.push(entry(m.seq, m.subject, m.data));
          if (m.seq === to || m.info.pending === 0) break;
        }
      } finally {
        await consumer.delete().catch(() => undefined);
      }
      return out;
    },
    async current(account, handle) {
      const e = await kv.get(bindingKey(account, handle));
      if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
      const v = (e.json() as { conversationId?: unknown }).conversationId;
      return typeof v === 'string' ? v : undefined;
    },
    async bind(account, handle, conversationId) {
      if ((await log.current(account, handle)) === conversationId) return;
      await kv.put(bindingKey(account, handle), JSON.stringify({ conversationId }));
    },
    async pointer(conversationId, state) {
      const e = await kv.get(`r.${conversationId}.${state}`);
      if (!e || e.operation !== 'PUT' || e.length === 0) return { seq: 0, revision: 0 };
      return { seq: Number(e.string()) || 0, revision: e.revision };
    },
    async movePointer(conversationId, state, seq, revision) {
      const key = `r.${conversationId}.${state}`;
      try {
        if (revision === 0) await kv.create(key, String(seq));
        else await kv.update(key, String(seq), revision);
        return true;
      } catch {
        return false;
      }
    },
  };
  return log;
}
