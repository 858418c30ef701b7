// What a caller waiting in queue hears: music on hold, interrupted by their place and estimated wait each
// time the queue tells their conversation (on queueing, at its reminders, when they move up a lot), then
// the music again. Notices come on core NATS `cc.conversation.<id>.notice` (the conversation actor's
// `notify`), the same subject the web chat bridge turns into `notice` frames.
// The first notice is told as the conversation is queued, which can be before the edge knows the
// conversation id (the open is still on its way back): notices of unknown conversations are kept a few
// seconds for a call that claims them.
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import * as v from 'valibot';
import type { MediaClient } from '../../media/service.ts';
import { positionAnnouncement } from './announce.ts';

export interface WaitingCall {
  conversationId: string;
  /** The media node's key for the call and the caller's transport there. */
  mediaId: string;
  transportId: string;
  codec: 'PCMU' | 'PCMA';
  language: string | null;
}

const PositionNotice = v.object({
  kind: v.literal('queue.position'),
  position: v.pipe(v.number(), v.integer(), v.minValue(1)),
  estimatedWaitSec: v.optional(v.pipe(v.number(), v.minValue(0))),
});
type PositionNotice = v.InferOutput<typeof PositionNotice>;

/** How long a notice waits for its call to be known, and how many such notices are kept at most. */
const EARLY_NOTICE_MS = 15_000;
const EARLY_NOTICES_MAX = 1000;
/** Silence between the end of an announcement and the music. */
const RESUME_GAP_MS = 150;

export interface WaitingRoom {
  /** Puts the call on hold music and announces its place whenever the queue tells it. */
  hold(call: WaitingCall): Promise<void>;
  /** The call left the queue (answered elsewhere, hung up, moved): no more announcements. */
  release(conversationId: string): void;
  /** Announcements played, with the pieces of the last one (tests, logs). */
  stats: { announced: number; last?: { conversationId: string; pieces: string[] } };
  stop(): void;
}

export function startWaitingRoom(o: {
  nc: NatsConnection;
  media: MediaClient;
  /** Music looped between announcements (missing: silence between them). */
  music?: string;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}): WaitingRoom {
  const held = new Map<string, WaitingCall & { turn: number; timer?: ReturnType<typeof setTimeout> }>();
  const early = new Map<string, { notice: PositionNotice; at: number }>();
  const stats: WaitingRoom['stats'] = { announced: 0 };

  /** An agent's voice reaches the caller once answered (media service: source 'agent'): no more hold audio then. */
  const answered = async (call: WaitingCall): Promise<boolean> => {
    const info = await o.media.call<{ producers: { source: string }[] }>('call.info', { conversationId: call.mediaId }).catch(() => undefined);
    return !info || info.producers.some((p) => p.source === 'agent');
  };

  const music = async (call: WaitingCall): Promise<void> => {
    if (!o.music) return;
    await o.media
      .call('play', { conversationId: call.mediaId, transportId: call.transportId, prompt: o.music, codec: call.codec, loop: true })
      .catch((e: Error) => o.log?.warn({ conversationId: call.conversationId, err: e.message }, 'hold music not played'));
  };

  const announce = async (conversationId: string, notice: PositionNotice): Promise<void> => {
    const call = held.get(conversationId);
    if (!call) return;
    // A newer notice or the end of the wait wins over this one's music.
    const turn = ++call.turn;
    clearTimeout(call.timer);
    if (await answered(call)) return;
    const pieces = positionAnnouncement({ position: notice.position, estimatedWaitSec: notice.estimatedWaitSec, language: call.language });
    let durationMs: number;
    try {
      ({ durationMs } = await o.media.call<{ durationMs: number }>('play', { conversationId: call.mediaId, transportId: call.transportId, prompt: pieces[0], next: pieces.slice(1), codec: call.codec }));
    } catch (e) {
      o.log?.warn({ conversationId, err: (e as Error).message }, 'position not announced');
      return;
    }
    stats.announced++;
    stats.last = { conversationId, pieces };
    o.log?.info({ conversationId, position: notice.position, estimatedWaitSec: notice.estimatedWaitSec }, 'position announced');
    call.timer = setTimeout(() => {
      void (async () => {
        if (held.get(conversationId) !== call || call.turn !== turn || (await answered(call))) return;
        await music(call);
      })();
    }, durationMs + RESUME_GAP_MS);
  };

  const sub: Subscription = o.nc.subscribe('cc.conversation.*.notice', {
    callback: (err, m) => {
      if (err) return;
      const conversationId = m.subject.split('.')[2];
      let raw: unknown;
      try {
        raw = m.json();
      } catch {
        return;
      }
      const n = v.safeParse(PositionNotice, raw);
      if (!n.success) return; // other kinds (agent joined, closed) are not for the phone
      if (held.has(conversationId)) return void announce(conversationId, n.output);
      const now = Date.now();
      if (early.size >= EARLY_NOTICES_MAX) for (const [k, e] of early) if (now - e.at > EARLY_NOTICE_MS || early.size >= EARLY_NOTICES_MAX) early.delete(k);
      early.set(conversationId, { notice: n.output, at: now });
    },
  });

  return {
    stats,
    async hold(call) {
      held.set(call.conversationId, { ...call, turn: 0 });
      await music(call);
      const e = early.get(call.conversationId);
      early.delete(call.conversationId);
      if (e && Date.now() - e.at <= EARLY_NOTICE_MS) await announce(call.conversationId, e.notice);
    },
    release(conversationId) {
      const call = held.get(conversationId);
      if (call) clearTimeout(call.timer);
      held.delete(conversationId);
    },
    stop() {
      sub.unsubscribe();
      for (const c of held.values()) clearTimeout(c.timer);
      held.clear();
      early.clear();
    },
  };
}
