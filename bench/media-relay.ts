// Child process of `npm run bench -- media`: the baseline, a raw UDP relay in Node. Per call two sockets on
// 127.0.0.1, one per leg; each latches its phone's address from the first packet (as a comedia
// PlainTransport does) and forwards every packet, untouched, to the other leg's phone. Its own process,
// single-threaded, like the mediasoup worker it is compared with.
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import * as v from 'valibot';

const Command = v.variant('type', [
  v.object({ type: v.literal('setup'), calls: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(5000)) }),
  v.object({ type: v.literal('cpu') }),
  v.object({ type: v.literal('close') }),
]);

interface Side {
  sock: Socket;
  peer?: { port: number; address: string };
  other?: Side;
}

let sides: Side[] = [];

async function open(): Promise<Side> {
  // Default socket buffers, as the mediasoup worker's PlainTransports have (media/ sets none).
  const sock = createSocket('udp4');
  const side: Side = { sock };
  sock.on('message', (msg, rinfo) => {
    side.peer ??= { port: rinfo.port, address: rinfo.address };
    const to = side.other?.peer;
    if (to) side.other!.sock.send(msg, to.port, to.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return side;
}

process.on('message', async (raw: unknown) => {
  const parsed = v.safeParse(Command, raw);
  if (!parsed.success) {
    console.error(`media-relay: bad command: ${parsed.issues[0].message}`);
    process.exit(2);
  }
  const cmd = parsed.output;
  if (cmd.type === 'setup') {
    const ports: Array<{ a: number; b: number }> = [];
    for (let i = 0; i < cmd.calls; i++) {
      const [a, b] = [await open(), await open()];
      a.other = b;
      b.other = a;
      sides.push(a, b);
      ports.push({ a: a.sock.address().port, b: b.sock.address().port });
    }
    process.send!({ type: 'ready', ports });
  } else if (cmd.type === 'cpu') {
    const u = process.cpuUsage();
    process.send!({ type: 'cpu', ms: (u.user + u.system) / 1000 });
  } else {
    await Promise.all(sides.map((s) => new Promise<void>((r) => s.sock.close(() => r()))));
    sides = [];
    process.send!({ type: 'closed' });
  }
});
process.on('disconnect', () => process.exit(0));
