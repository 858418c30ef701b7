// A bench's helper process (actor host, echo responder, the routing bench's agents): started with the
// same Node and flags, ready once it prints "ready".
import { spawn, type ChildProcess } from 'node:child_process';

export function child(args: string[], env: Record<string, string>): Promise<ChildProcess> {
  const p = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    p.once('exit', (code) => fail(new Error(`${args.join(' ')} exited with ${code}`)));
    p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && ok(p));
  });
}

/** Stops a helper and waits until it is gone. */
export async function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await gone;
}
