// Reads what matters of an Ogg/Opus file (RFC 3533 pages, RFC 7845 headers): that it is one, its
// channel count and input rate (OpusHead), and its duration (the last page's granule position, always
// at 48 kHz, less the pre-skip). Used to check a recording before it is stored and in tests.

export interface OggOpusInfo {
  channels: number;
  inputSampleRate: number;
  preSkip: number;
  durationSec: number;
  pages: number;
}

export class OggError extends Error {}

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

export function readOggOpus(b: Uint8Array): OggOpusInfo {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 0;
  let pages = 0;
  let head: { channels: number; preSkip: number; inputSampleRate: number } | undefined;
  let tags = false;
  let granule = 0n;
  while (at < b.length) {
    if (b.length < at + 27 || ascii(b, at, 4) !== 'OggS') throw new OggError(`not an Ogg page at byte ${at}`);
    const segments = b[at + 26];
    if (b.length < at + 27 + segments) throw new OggError(`Ogg page at byte ${at} is cut short`);
    let size = 0;
    for (let i = 0; i < segments; i++) size += b[at + 27 + i];
    const body = at + 27 + segments;
    if (b.length < body + size) throw new OggError(`Ogg page at byte ${at} is cut short`);
    const g = dv.getBigInt64(at + 6, true);
    if (g >= 0n) granule = g;
    if (pages === 0) {
      if (size < 19 || ascii(b, body, 8) !== 'OpusHead') throw new OggError('the first Ogg page is not an OpusHead');
      head = { channels: b[body + 9], preSkip: dv.getUint16(body + 10, true), inputSampleRate: dv.getUint32(body + 12, true) };
    } else if (pages === 1) {
      tags = size >= 8 && ascii(b, body, 8) === 'OpusTags';
    }
    pages++;
    at = body + size;
  }
  if (!head) throw new OggError('empty file');
  if (!tags) throw new OggError('the second Ogg page is not OpusTags');
  return { ...head, durationSec: Math.max(0, Number(granule) - head.preSkip) / 48_000, pages };
}
