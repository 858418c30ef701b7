// A pcap file of RTP packets over UDP/IPv4 on loopback (port 6000 to 6000), the form sipp's
// `play_pcap_audio` replays: the tests' callers speak and press keys with it.
import { writeFileSync } from 'node:fs';

/** `at` is each packet's time in microseconds from the start of the capture. */
export function writeRtpPcap(path: string, packets: { at: number; rtp: Uint8Array }[]): void {
  const global = new DataView(new ArrayBuffer(24));
  global.setUint32(0, 0xa1b2c3d4, true);
  global.setUint16(4, 2, true);
  global.setUint16(6, 4, true);
  global.setUint32(16, 65535, true);
  global.setUint32(20, 1, true); // Ethernet
  const chunks: Uint8Array[] = [new Uint8Array(global.buffer)];
  for (const { at, rtp } of packets) {
    const frame = new Uint8Array(14 + 20 + 8 + rtp.length);
    const f = new DataView(frame.buffer);
    f.setUint16(12, 0x0800);
    frame[14] = 0x45;
    f.setUint16(16, 20 + 8 + rtp.length);
    frame[22] = 64;
    frame[23] = 17;
    frame.set([127, 0, 0, 1], 26);
    frame.set([127, 0, 0, 1], 30);
    f.setUint16(34, 6000);
    f.setUint16(36, 6000);
    f.setUint16(38, 8 + rtp.length);
    frame.set(rtp, 42);
    const rec = new DataView(new ArrayBuffer(16));
    rec.setUint32(0, Math.floor(at / 1e6), true);
    rec.setUint32(4, at % 1e6, true);
    rec.setUint32(8, frame.length, true);
    rec.setUint32(12, frame.length, true);
    chunks.push(new Uint8Array(rec.buffer), frame);
  }
  writeFileSync(path, Buffer.concat(chunks));
}
