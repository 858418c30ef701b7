// Serves a fetch handler on 127.0.0.1/0.0.0.0: Deno.serve under Deno, @hono/node-server under Node.
export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

type Fetch = (req: Request) => Response | Promise<Response>;

interface DenoServe {
  serve(opts: { port: number; hostname: string; onListen?: (a: { port: number }) => void }, handler: Fetch): { shutdown(): Promise<void>; addr: { port: number } };
}

export async function serve(fetch: Fetch, port: number, hostname = '0.0.0.0'): Promise<HttpServer> {
  const deno = (globalThis as { Deno?: DenoServe }).Deno;
  if (deno) {
    const server = deno.serve({ port, hostname, onListen: () => {} }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const { serve: nodeServe } = await import('@hono/node-server');
  return new Promise((ok, fail) => {
    const server = nodeServe({ fetch, port, hostname }, (info) =>
      ok({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      }),
    );
    server.once('error', fail);
  });
}

export const runtimeName = (): string => ((globalThis as { Deno?: unknown }).Deno ? 'deno' : 'node');
