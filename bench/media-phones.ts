// Child process of `npm run bench -- media`: plays the phones of two-party calls. Each leg is a UDP socket
// on 127.0.0.1 that sends PCMU RTP (160-byte payload, 50 packets/s, like G.711 at 20 ms) to its side of
// the call and counts what arrives from the other side. Packets carry their own "measured" flag and index
// in the payload (mediasoup and the relay forward payloads untouched), so loss is exact: measured packets
// received over measured packets sent, with nothing lost to the edges of the window.
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import * as v from 'valibot';
import { buildRtp, parseRtp } from '../media/rtp.ts';

const PACKET_MS = 20;
const PAYLOAD = 160;
const TICK_MS = 2;

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
const Ssrc = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff));
const Command = v.variant('type', [
  // Each call: the ports its leg A and leg B send to (a PlainTransport each, or the relay's sockets).
  v.object({ type: v.literal('setup'), calls: v.pipe(v.array(v.object({ a: Port, b: Port, ssrcA: Ssrc, ssrcB: Ssrc })), v.maxLength(5000)), payloadType: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(127)) }),
  v.object({ type: v.literal('send') }),
  v.object({ type: v.literal('measure') }),
  v.object({ type: v.literal('stop') }),
  v.object({ type: v.literal('close') }),
]);

export interface PhonesReport {
  type: 'report';
  sent: number;
  received: number;
  /** Worst lateness of a packet behind its wall-clock slot (the sender's own lag, not the network's). */
  maxLateMs: number;
  /** This process's CPU over the measured window, % of one core. */
  cpuPct: number;
}

interface Leg {
  sock: Socket;
  port: number;
  ssrc: number;
  seq: number;
  /** Absolute due time (ms, performance.now()) of this leg's next packet: drift-free pacing. */
  due: number;
}

let legs: Leg[] = [];
let payloadType = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
let measuring = false;
let sent = 0;
let received = 0;
let maxLateMs = 0;
let cpu0 = process.cpuUsage();
let t0 = 0;
const payload = new Uint8Array(PAYLOAD).fill(0xff); // μ-law silence

function send(leg: Leg): void {
  // Bytes 0-3: the leg's packet index; byte 4: measured (1) or warm-up (0).
  const view = new DataView(payload.buffer);
  view.setUint32(0, leg.seq);
  payload[4] = measuring ? 1 : 0;
  const pkt = buildRtp({ payloadType, seq: leg.seq & 0xffff, timestamp: leg.seq * 160, ssrc: leg.ssrc, payload });
  leg.seq++;
  if (measuring) sent++;
  leg.sock.send(pkt, leg.port, '127.0.0.1');
}

function tick(): void {
  const now = performance.now();
  for (const leg of legs) {
    while (leg.due <= now) {
      maxLateMs = measuring ? Math.max(maxLateMs, now - leg.due) : maxLateMs;
      send(leg);
      leg.due += PACKET_MS;
    }
  }
  // Next tick at the next 2 ms boundary of the schedule, not 2 ms after this one finished.
  timer = setTimeout(tick, Math.max(0, TICK_MS - (performance.now() % TICK_MS)));
}

async function openLeg(port: number, ssrc: number): Promise<Leg> {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
  sock.on('message', (msg: Buffer) => {
    const p = parseRtp(msg);
    if (p && p.payload.length === PAYLOAD && p.payload[4] === 1) received++;
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return { sock, port, ssrc, seq: 0, due: 0 };
}

function reply(m: PhonesReport | { type: 'ready' | 'closed' }): void {
  process.send!(m);
}

process.on('message', async (raw: unknown) => {
  const parsed = v.safeParse(Command, raw);
  if (!parsed.success) {
    console.error(`media-phones: bad command: ${parsed.issues[0].message}`);
    process.exit(2);
  }
  const cmd = parsed.output;
  switch (cmd.type) {
    case 'setup': {
      payloadType = cmd.payloadType;
      legs = [];
      for (const c of cmd.calls) {
        legs.push(await openLeg(c.a, c.ssrcA), await openLeg(c.b, c.ssrcB));
      }
      reply({ type: 'ready' });
      break;
    }
    case 'send': {
      // Phones start at random phases within the 20 ms frame, as independent calls would.
      const now = performance.now();
      for (const leg of legs) leg.due = now + Math.random() * PACKET_MS;
      tick();
      break;
    }
    case 'measure':
      measuring = true;
      sent = received = maxLateMs = 0;
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      break;
    case 'stop': {
      clearTimeout(timer);
      const used = process.cpuUsage(cpu0);
      const wall = performance.now() - t0;
      const sentNow = sent;
      // Let the last packets cross the worker or relay before counting.
      await new Promise((r) => setTimeout(r, 300));
      measuring = false;
      reply({ type: 'report', sent: sentNow, received, maxLateMs, cpuPct: ((used.user + used.system) / 1000 / wall) * 100 });
      break;
    }
    case 'close':
      await Promise.all(legs.map((l) => new Promise<void>((r) => l.sock.close(() => r()))));
      legs = [];
      reply({ type: 'closed' });
      break;
  }
});
process.on('disconnect', () => process.exit(0));
