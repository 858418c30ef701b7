// Web chat protocol v3 (PROTOCOL.md): the frames a widget or an app sends, the frames the engine answers
// with, error codes and close codes. Every frame is one JSON object with a `type`. v2 is v1 plus calls from
// the widget (call.* frames, `voice` in welcome); v3 is v2 plus the customer's rating of a closed
// conversation (csat); older clients are served as before.
import * as v from 'valibot';
import { DtlsParameters, RtpCapabilities, RtpParameters } from '../../media/webrtc.ts';
import { AttachmentSchema, type Attachment } from '../message.ts';

export const PROTOCOL_VERSION = 3;
/** Versions a client may say hello with; call frames need 2, csat frames 3. */
export const SUPPORTED_VERSIONS: readonly number[] = [1, 2, 3];

export const LIMITS = {
  /** One client frame, in bytes of its JSON text. */
  frameBytes: 16 * 1024,
  textChars: 4000,
  csatCommentChars: 1000,
  attachmentsPerMessage: 5,
  /** Token bucket per socket: burst and refill per second, over every client frame. */
  rateBurst: 20,
  ratePerSec: 5,
  /** Frames received but not yet handled (the sink is slow) before the socket is closed. */
  queuedFrames: 200,
  /** A socket must say hello within this time. */
  helloMs: 10_000,
} as const;

/** Close codes (4000-4999 are the application's). */
export const CLOSE = {
  badHello: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  helloTimeout: 4408,
  /** Policy violation: too many frames waiting. */
  policy: 1008,
  goingAway: 1001,
} as const;

export type ErrorCode =
  | 'bad_json'
  | 'bad_frame'
  | 'too_large'
  | 'rate_limited'
  | 'hello_required'
  | 'bad_version'
  | 'bad_token'
  | 'expired_token'
  | 'unknown_site'
  | 'unknown_app'
  | 'bad_attachment'
  | 'unavailable'
  | 'call_unavailable'
  | 'bad_link'
  | 'call_failed'
  | 'csat_refused';

const ClientMessageId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'clientMessageId must be 1-64 letters, digits, _ or -'));
const Seq = v.pipe(v.number(), v.integer(), v.minValue(0));
const Short = (max: number) => v.pipe(v.string(), v.maxLength(max));
/** Names a call request; its answer (or error) carries the same ref. */
const CallRef = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'ref must be 1-64 letters, digits, _ or -'));

export const AppUserSchema = v.strictObject({
  id: v.pipe(v.string(), v.minLength(1, 'user.id must not be empty'), v.maxLength(128, 'user.id must be at most 128 characters')),
  name: v.optional(Short(200)),
  phone: v.optional(v.pipe(v.string(), v.regex(/^\+?[0-9 ()-]{3,32}$/, 'user.phone must be a phone number'))),
  email: v.optional(v.pipe(v.string(), v.maxLength(254), v.email('user.email must be an email address'))),
});
export type AppUser = v.InferOutput<typeof AppUserSchema>;

export const HelloSchema = v.object({
  type: v.literal('hello'),
  v: v.number(),
  /** Web visitors: the id the server issued earlier (kept in localStorage); absent on a first visit. */
  visitorId: v.optional(v.string()),
  name: v.optional(Short(200)),
  /** In-app users: who they are and the app backend's signature over it (token.ts). */
  user: v.optional(AppUserSchema),
  token: v.optional(Short(200)),
  /** Where the client left off: frames after lastSeq are sent again. */
  resume: v.optional(v.object({ conversationId: v.optional(Short(128)), lastSeq: Seq })),
  /** Web visitors: a signed chat link (`cc_link` in the page's URL, sent by SMS: link.ts) joining its conversation. */
  link: v.optional(Short(600)),
  /** v2+: this client shows the agent's calls (call.incoming, Accept/Decline); others are never rung. */
  ring: v.optional(v.boolean()),
});
export type Hello = v.InferOutput<typeof HelloSchema>;

export const ClientFrameSchema = v.variant('type', [
  HelloSchema,
  v.object({
    type: v.literal('message'),
    clientMessageId: ClientMessageId,
    text: v.optional(v.pipe(v.string(), v.maxLength(LIMITS.textChars, `text must be at most ${LIMITS.textChars} characters`))),
    attachments: v.optional(v.pipe(v.array(AttachmentSchema), v.maxLength(LIMITS.attachmentsPerMessage, `at most ${LIMITS.attachmentsPerMessage} attachments`))),
  }),
  v.object({ type: v.literal('typing'), typing: v.optional(v.boolean(), true) }),
  v.object({ type: v.literal('read'), seq: Seq }),
  v.object({ type: v.literal('delivered'), seq: Seq }),
  v.object({ type: v.literal('ping') }),
  // v2: a call from the widget, signalled on this socket (the media is WebRTC to the engine's media node).
  // `invite`: answering the agent's call (`call.incoming`) instead of calling.
  v.object({ type: v.literal('call.start'), ref: CallRef, invite: v.optional(CallRef) }),
  v.object({ type: v.literal('call.decline'), invite: CallRef }),
  v.object({ type: v.literal('call.connect'), ref: CallRef, direction: v.picklist(['send', 'recv'], 'direction must be send or recv'), dtlsParameters: DtlsParameters }),
  v.object({ type: v.literal('call.produce'), ref: CallRef, kind: v.literal('audio', 'only audio'), rtpParameters: RtpParameters }),
  v.object({ type: v.literal('call.consume'), ref: CallRef, rtpCapabilities: RtpCapabilities }),
  v.object({ type: v.literal('call.hangup'), ref: v.optional(CallRef) }),
  // v3: the customer rates their conversation once it is closed (1-5, an optional comment).
  v.object({
    type: v.literal('csat'),
    conversationId: Short(128),
    score: v.pipe(v.number(), v.integer('score must be a whole number from 1 to 5'), v.minValue(1, 'score must be 1 to 5'), v.maxValue(5, 'score must be 1 to 5')),
    comment: v.optional(v.pipe(v.string(), v.maxLength(LIMITS.csatCommentChars, `comment must be at most ${LIMITS.csatCommentChars} characters`))),
  }),
]);
export type ClientFrame = v.InferOutput<typeof ClientFrameSchema>;

/** Frames kept in the conversation's log (the seq is added when they are sent). */
export type LoggedFrame =
  | { type: 'message'; id: string; from: 'customer' | 'agent'; clientMessageId?: string; text?: string; attachments: Attachment[]; at: number }
  | { type: 'notice'; kind: NoticeKind; position?: number; estimatedWaitSec?: number; agentName?: string; text?: string; csat?: boolean; score?: number; at: number }
  | { type: 'receipt'; state: 'delivered' | 'read'; upToSeq: number; at: number };

export const NOTICE_KINDS = ['queue.position', 'agent.joined', 'conversation.closed', 'csat.rated', 'info'] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];

/** What mediasoup-client needs to create one WebRTC transport. */
export interface CallTransport {
  id: string;
  iceParameters: unknown;
  iceCandidates: unknown;
  dtlsParameters: unknown;
}

/** Answers to call requests (with the request's ref) and the call's own news (ringing, answered, ended). */
export type CallServerFrame =
  | { type: 'call.transport'; ref: string; callId: string; routerRtpCapabilities: unknown; send: CallTransport; recv: CallTransport }
  | { type: 'call.connected'; ref: string; direction: 'send' | 'recv' }
  | { type: 'call.produced'; ref: string; producerId: string }
  | { type: 'call.consumer'; ref: string; consumerId: string; producerId: string; kind: 'audio'; rtpParameters: unknown }
  | { type: 'call.ringing'; callId: string }
  | { type: 'call.answered'; callId: string }
  | { type: 'call.ended'; callId: string; reason: string }
  // The agent calls the visitor (edges/webchat/ring.ts): it rings until accepted (call.start with the invite),
  // declined (call.decline) or expiresInMs passed; call.incoming.ended stops the ring on every socket.
  | { type: 'call.incoming'; invite: string; agentName?: string; expiresInMs: number }
  | { type: 'call.incoming.ended'; invite: string; outcome: 'accepted' | 'declined' | 'no-answer' };

export type ServerFrame =
  | { type: 'welcome'; v: number; visitorId?: string; userId?: string; conversationId: string | null; lastSeq: number; voice?: boolean }
  | CallServerFrame
  | (LoggedFrame & { seq: number; conversationId: string })
  | { type: 'ack'; clientMessageId: string; seq: number; conversationId: string; duplicate: boolean }
  | { type: 'conversation'; conversationId: string }
  | { type: 'csat.ack'; conversationId: string; score: number; duplicate: boolean }
  | { type: 'typing'; from: 'agent'; typing: boolean }
  | { type: 'pong'; at: number }
  | { type: 'error'; code: ErrorCode; reason: string; ref?: string; retryAfterMs?: number };

/** The first issue of a valibot failure, with where it is. */
export function firstIssue(issues: readonly v.BaseIssue<unknown>[]): string {
  const i = issues[0];
  const where = i.path?.map((p) => String(p.key)).join('.');
  return where ? `${where}: ${i.message}` : i.message;
}
