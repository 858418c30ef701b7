// The client bundle: web/client/main.tsx (Hono JSX for the DOM) built with esbuild once, at start-up,
// in memory. No build step to forget and no network: esbuild is a local dev dependency.
import { fileURLToPath } from 'node:url';

export interface Bundle {
  js: string;
  etag: string;
}

export async function buildClient(): Promise<Bundle> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('../client/main.tsx', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    minify: true,
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'hono/jsx/dom',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = r.outputFiles[0].text;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(js)));
  return { js, etag: `"${[...digest.slice(0, 12)].map((b) => b.toString(16).padStart(2, '0')).join('')}"` };
}
