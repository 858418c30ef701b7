// Raw WebSocket echo in its own process, served by the engine's own HTTP stack (platform/serve.ts with
// its `ws` upgrades, a Hono app, upgradeWebSocket): the baseline of `npm run bench -- webchat`.
// Prints `ready <port>` once listening on 127.0.0.1; stops on SIGTERM.
import { Hono } from 'hono';
import { serve } from '../platform/serve.ts';
import { upgradeWebSocket } from '../platform/websocket.ts';

const app = new Hono();
app.get(
  '/echo',
  upgradeWebSocket(() => ({
    onMessage(e, ws) {
      // Text back as text: the same framing a web chat frame has.
      ws.send(typeof e.data === 'string' ? e.data : String(e.data));
    },
  })),
);
const http = await serve(app.fetch, 0, '127.0.0.1');
process.stdout.write(`ready ${http.port}\n`);
process.on('SIGTERM', async () => {
  await http.close();
  process.exit(0);
});
