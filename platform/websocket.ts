// Hono's WebSocket upgrade helper for the runtime we run on: hono/deno under Deno (Deno.upgradeWebSocket),
// @hono/node-server under Node (the `ws` server that platform/serve.ts attaches to the HTTP server).
import type { UpgradeWebSocket } from 'hono/ws';

const isDeno = Boolean((globalThis as { Deno?: unknown }).Deno);

// Both helpers take the same events; only their raw socket type differs, which callers never touch.
export const upgradeWebSocket: UpgradeWebSocket = isDeno
  ? ((await import('hono/deno')).upgradeWebSocket as unknown as UpgradeWebSocket)
  : ((await import('@hono/node-server')).upgradeWebSocket as unknown as UpgradeWebSocket);
