// The widget's call module (call-client.ts with mediasoup-client) bundled by esbuild, in memory, the first
// time a widget asks for it (GET /webchat/v1/call.js): pages that never call never pay for it, and there
// is no build step to forget. esbuild is a local dev dependency, as for the workspace bundle.
import { fileURLToPath } from 'node:url';

export interface CallBundle {
  js: string;
  etag: string;
}

let built: Promise<CallBundle> | undefined;

export function callBundle(): Promise<CallBundle> {
  built ??= build().catch((e: unknown) => {
    built = undefined; // a failed build is tried again on the next request
    throw e;
  });
  return built;
}

async function build(): Promise<CallBundle> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('./call-client.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    minify: true,
    target: 'es2020',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = r.outputFiles[0].text;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(js)));
  return { js, etag: `"${[...digest.slice(0, 12)].map((b) => b.toString(16).padStart(2, '0')).join('')}"` };
}
