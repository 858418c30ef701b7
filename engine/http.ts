// The engine's HTTP surface common to every role: health and metrics. Channel edges and the workspace mount beside it.
import { Hono } from 'hono';
import type { Registry } from 'prom-client';

export type ComponentState = { state: 'ok' | 'starting' | 'down' } & Record<string, unknown>;

export interface HttpDeps {
  registry: Registry;
  node: { id: string; region: string; roles: string[]; runtime: string };
  /** Each component reports its own state; any not 'ok' makes /healthz answer 503. */
  components: () => Promise<Record<string, ComponentState>>;
}

export function createApp(deps: HttpDeps): Hono {
  const app = new Hono();
  app.get('/healthz', async (c) => {
    const components = await deps.components();
    const ok = Object.values(components).every((x) => x.state === 'ok');
    return c.json({ status: ok ? 'ok' : 'degraded', ...deps.node, components }, ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.text(await deps.registry.metrics(), 200, { 'content-type': deps.registry.contentType }));
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));
  app.onError((err, c) => c.json({ error: err.message }, 500));
  return app;
}
