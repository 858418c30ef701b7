// What a browser (mediasoup-client) sends the media service for an agent's WebRTC leg, checked with
// valibot before it reaches the worker: DTLS parameters, RTP parameters of what it produces and the
// RTP capabilities it can receive. Bounded (counts, lengths) so a bad client cannot make us build huge
// objects; unknown keys inside codec `parameters` and RTCP feedback are kept, since codecs add their own.
import * as v from 'valibot';

const Str = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const UInt = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));
const MimeType = v.pipe(v.string(), v.regex(/^(audio|video)\/[\w.+-]{1,40}$/, 'must be audio/<codec> or video/<codec>'));
const Params = v.pipe(
  v.record(v.pipe(v.string(), v.maxLength(64)), v.union([v.string(), v.number(), v.boolean()])),
  v.check((o) => Object.keys(o).length <= 32, 'at most 32 codec parameters'),
);
const Feedback = v.pipe(v.array(v.object({ type: Str(32), parameter: v.optional(v.pipe(v.string(), v.maxLength(32))) })), v.maxLength(16));

export const DtlsParameters = v.object({
  role: v.optional(v.picklist(['auto', 'client', 'server'])),
  fingerprints: v.pipe(
    v.array(v.object({ algorithm: v.picklist(['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512']), value: v.pipe(v.string(), v.regex(/^[0-9A-Fa-f:]{8,200}$/, 'must be hex pairs')) })),
    v.minLength(1, 'needs a fingerprint'),
    v.maxLength(8),
  ),
});

export const RtpParameters = v.object({
  mid: v.optional(Str(32)),
  codecs: v.pipe(
    v.array(v.object({ mimeType: MimeType, payloadType: UInt(127), clockRate: v.pipe(UInt(200_000), v.minValue(1)), channels: v.optional(UInt(8)), parameters: v.optional(Params), rtcpFeedback: v.optional(Feedback) })),
    v.minLength(1, 'needs a codec'),
    v.maxLength(8),
  ),
  headerExtensions: v.optional(v.pipe(v.array(v.object({ uri: Str(200), id: UInt(255), encrypt: v.optional(v.boolean()), parameters: v.optional(Params) })), v.maxLength(16))),
  encodings: v.optional(
    v.pipe(
      v.array(v.object({ ssrc: v.optional(UInt(0xffffffff)), rid: v.optional(Str(32)), codecPayloadType: v.optional(UInt(127)), rtx: v.optional(v.object({ ssrc: UInt(0xffffffff) })), dtx: v.optional(v.boolean()), maxBitrate: v.optional(UInt(1e9)), scalabilityMode: v.optional(Str(16)) })),
      v.maxLength(4),
    ),
  ),
  rtcp: v.optional(v.object({ cname: v.optional(v.pipe(v.string(), v.maxLength(256))), reducedSize: v.optional(v.boolean()), mux: v.optional(v.boolean()) })),
});

export const RtpCapabilities = v.object({
  codecs: v.optional(
    v.pipe(
      v.array(v.object({ kind: v.picklist(['audio', 'video']), mimeType: MimeType, preferredPayloadType: v.optional(UInt(127)), clockRate: v.pipe(UInt(200_000), v.minValue(1)), channels: v.optional(UInt(8)), parameters: v.optional(Params), rtcpFeedback: v.optional(Feedback) })),
      v.maxLength(64),
    ),
  ),
  headerExtensions: v.optional(
    v.pipe(
      v.array(v.object({ kind: v.picklist(['audio', 'video']), uri: Str(200), preferredId: UInt(255), preferredEncrypt: v.optional(v.boolean()), direction: v.optional(v.picklist(['sendrecv', 'sendonly', 'recvonly', 'inactive'])) })),
      v.maxLength(64),
    ),
  ),
});
