// SDP offers from trunks and our answers (RFC 3264 offer/answer, audio only): the codec is the first one
// the trunk offers that the media node carries (opus, PCMU, PCMA), DTMF is RFC 4733 telephone-event at
// the codec's clock rate, and the direction answers the offer's (a=sendonly from the trunk = hold).

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type AudioCodec = 'PCMU' | 'PCMA' | 'opus';

export interface SdpOffer {
  ip: string;
  port: number;
  /** Offered payload types in the trunk's order of preference. */
  formats: { payloadType: number; name: string; clockRate: number; channels?: number }[];
  direction: Direction;
}

export interface Negotiated {
  codec: AudioCodec;
  payloadType: number;
  clockRate: number;
  /** RFC 4733 payload type at the codec's clock rate, if offered. */
  dtmfPayloadType?: number;
}

export class SdpError extends Error {
  override name = 'SdpError';
}

const STATIC: Record<number, { name: string; clockRate: number }> = { 0: { name: 'PCMU', clockRate: 8000 }, 8: { name: 'PCMA', clockRate: 8000 } };

export function parseOffer(sdp: string): SdpOffer {
  const lines = sdp.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (lines[0] !== 'v=0') throw new SdpError('SDP does not start with v=0');
  let sessionIp: string | undefined;
  let mediaIp: string | undefined;
  let audio: { port: number; pts: number[] } | undefined;
  let inAudio = false;
  let direction: Direction = 'sendrecv';
  const rtpmap = new Map<number, { name: string; clockRate: number; channels?: number }>();
  for (const l of lines) {
    if (l.startsWith('m=')) {
      inAudio = false;
      const m = /^m=audio (\d+)(?:\/\d+)? RTP\/(?:S?AVPF?) ([\d ]+)$/.exec(l);
      if (m && !audio) {
        audio = { port: Number(m[1]), pts: m[2].trim().split(/\s+/).map(Number) };
        inAudio = true;
      }
      continue;
    }
    const c = /^c=IN IP[46] ([0-9a-fA-F.:]+)/.exec(l);
    if (c) {
      if (audio && inAudio) mediaIp = c[1];
      else if (!audio) sessionIp = c[1];
      continue;
    }
    if (audio && !inAudio) continue;
    const r = /^a=rtpmap:(\d+) ([\w.-]+)\/(\d+)(?:\/(\d+))?/.exec(l);
    if (r) rtpmap.set(Number(r[1]), { name: r[2], clockRate: Number(r[3]), channels: r[4] ? Number(r[4]) : undefined });
    const d = /^a=(sendrecv|sendonly|recvonly|inactive)$/.exec(l);
    if (d) direction = d[1] as Direction;
  }
  if (!audio) throw new SdpError('SDP offers no RTP audio stream');
  const ip = mediaIp ?? sessionIp;
  if (!ip) throw new SdpError('SDP has no connection address (c=)');
  if (audio.port < 1 || audio.port > 65535) throw new SdpError(`SDP audio port ${audio.port} is out of range`);
  const formats = audio.pts.flatMap((pt) => {
    const f = rtpmap.get(pt) ?? STATIC[pt];
    return f ? [{ payloadType: pt, ...f }] : [];
  });
  return { ip, port: audio.port, formats, direction };
}

/** The first offered codec we carry, and telephone-event at its clock rate; throws (→ 488) if none fits. */
export function negotiate(offer: SdpOffer): Negotiated {
  // The trunk's order of preference wins among what we carry.
  const first = offer.formats.find((f) => supported(f));
  if (!first) throw new SdpError(`no common codec: offered ${offer.formats.map((f) => `${f.name}/${f.clockRate}`).join(', ') || 'nothing known'}; we carry PCMU, PCMA, opus`);
  const codec = (first.name.toLowerCase() === 'opus' ? 'opus' : first.name.toUpperCase()) as AudioCodec;
  const dtmf = offer.formats.find((f) => f.name.toLowerCase() === 'telephone-event' && f.clockRate === first.clockRate);
  return { codec, payloadType: first.payloadType, clockRate: first.clockRate, dtmfPayloadType: dtmf?.payloadType };
}

function supported(f: { name: string; clockRate: number }): boolean {
  const n = f.name.toUpperCase();
  return ((n === 'PCMU' || n === 'PCMA') && f.clockRate === 8000) || (n === 'OPUS' && f.clockRate === 48000);
}

const ANSWER_DIRECTION: Record<Direction, Direction> = { sendrecv: 'sendrecv', sendonly: 'recvonly', recvonly: 'sendonly', inactive: 'inactive' };

export function buildAnswer(o: { ip: string; port: number; negotiated: Negotiated; offerDirection: Direction; sessionId: number; version: number }): string {
  const n = o.negotiated;
  const family = o.ip.includes(':') ? 'IP6' : 'IP4';
  const pts = [n.payloadType, ...(n.dtmfPayloadType !== undefined ? [n.dtmfPayloadType] : [])];
  const lines = [
    'v=0',
    `o=cc ${o.sessionId} ${o.version} IN ${family} ${o.ip}`,
    's=cc',
    `c=IN ${family} ${o.ip}`,
    't=0 0',
    `m=audio ${o.port} RTP/AVP ${pts.join(' ')}`,
    n.codec === 'opus' ? `a=rtpmap:${n.payloadType} opus/48000/2` : `a=rtpmap:${n.payloadType} ${n.codec}/8000`,
    ...(n.dtmfPayloadType !== undefined ? [`a=rtpmap:${n.dtmfPayloadType} telephone-event/${n.clockRate}`, `a=fmtp:${n.dtmfPayloadType} 0-16`] : []),
    'a=ptime:20',
    `a=${ANSWER_DIRECTION[o.offerDirection]}`,
  ];
  return lines.join('\r\n') + '\r\n';
}

/** Payload types of our outbound offer: what the media node carries, G.711 first (prompts are G.711). */
export const OFFER_FORMATS = [
  { payloadType: 0, name: 'PCMU', clockRate: 8000 },
  { payloadType: 8, name: 'PCMA', clockRate: 8000 },
  { payloadType: 111, name: 'opus', clockRate: 48000, channels: 2 },
  { payloadType: 101, name: 'telephone-event', clockRate: 8000 },
] as const;

/** Our SDP offer for an outbound call (the trunk's answer is read with parseOffer + negotiate). */
export function buildOffer(o: { ip: string; port: number; sessionId: number; version: number }): string {
  const family = o.ip.includes(':') ? 'IP6' : 'IP4';
  return [
    'v=0',
    `o=cc ${o.sessionId} ${o.version} IN ${family} ${o.ip}`,
    's=cc',
    `c=IN ${family} ${o.ip}`,
    't=0 0',
    `m=audio ${o.port} RTP/AVP ${OFFER_FORMATS.map((f) => f.payloadType).join(' ')}`,
    ...OFFER_FORMATS.map((f) => `a=rtpmap:${f.payloadType} ${f.name}/${f.clockRate}${'channels' in f ? `/${f.channels}` : ''}`),
    'a=fmtp:101 0-16',
    'a=ptime:20',
    'a=sendrecv',
  ].join('\r\n') + '\r\n';
}
