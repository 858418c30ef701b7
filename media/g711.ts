// G.711 (ITU-T G.711) to 16-bit linear PCM: μ-law (PCMU) and A-law (PCMA), one 256-entry table each,
// built once from the standard's expansion rules (the same values as the reference decoder in
// ITU-T G.191's g711.c). Web-standard only.

function ulaw(byte: number): number {
  const u = ~byte & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

function alaw(byte: number): number {
  const a = byte ^ 0x55;
  const exponent = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  t += exponent === 0 ? 8 : 0x108;
  if (exponent > 1) t <<= exponent - 1;
  return a & 0x80 ? t : -t;
}

export const ULAW_TABLE: Int16Array = Int16Array.from({ length: 256 }, (_, i) => ulaw(i));
export const ALAW_TABLE: Int16Array = Int16Array.from({ length: 256 }, (_, i) => alaw(i));

/** Decodes G.711 bytes into `out` (one sample per byte) at `offset`. */
export function decodeG711(codec: 'PCMU' | 'PCMA', bytes: Uint8Array, out: Int16Array, offset = 0): void {
  const table = codec === 'PCMU' ? ULAW_TABLE : ALAW_TABLE;
  const n = Math.min(bytes.length, out.length - offset);
  for (let i = 0; i < n; i++) out[offset + i] = table[bytes[i]];
}
