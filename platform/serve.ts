// Serves a fetch handler on 127.0.0.1/0.0.0.0: Deno.serve under Deno, @hono/node-server under Node.
// WebSocket upgrades (platform/websocket.ts) work on both: Deno upgrades inside the handler; on Node a
// `ws` server without its own listener takes the upgrades @hono/node-server hands it.
export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Accept WebSocket upgrades (default true); maxPayload caps one frame (default 1 MiB) before any handler sees it. */
  websocket?: boolean | { maxPayload?: number };
}

type Fetch = (req: Request, env?: unknown) => Response | Promise<Response>;

interface DenoServe {
  serve(opts: { port: number; hostname: string; onListen?: (a: { port: number }) => void }, handler: Fetch): { shutdown(): Promise<void>; addr: { port: number } };
}

export async function serve(fetch: Fetch, port: number, hostname = '0.0.0.0', opts: ServeOptions = {}): Promise<HttpServer> {
  const deno = (globalThis as { Deno?: DenoServe }).Deno;
  if (deno) {
    const server = deno.serve({ port, hostname, onListen: () => {} }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const { serve: nodeServe } = await import('@hono/node-server');
  const wsOpts = opts.websocket ?? true;
  const wss = wsOpts
    ? new (await import('ws')).WebSocketServer({ noServer: true, maxPayload: (typeof wsOpts === 'object' && wsOpts.maxPayload) || 1024 * 1024 })
    : undefined;
  return new Promise((ok, fail) => {
    const server = nodeServe({ fetch, port, hostname, ...(wss ? { websocket: { server: wss } } : {}) }, (info) =>
      ok({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            // Upgraded sockets are no longer the HTTP server's connections: tell their clients we are going away.
            for (const ws of wss?.clients ?? []) ws.close(1001, 'server stopping');
            setTimeout(() => {
              for (const ws of wss?.clients ?? []) ws.terminate();
            }, 1000).unref();
          }),
      }),
    );
    server.once('error', fail);
  });
}

export const runtimeName = (): string => ((globalThis as { Deno?: unknown }).Deno ? 'deno' : 'node');
