// Spawns core engine nodes as separate OS processes and reads back their activation logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NodeProc {
  id: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Latest status line the node printed. */
  last(): { status: { shards_owned: number; members: number }; shards: string[] } | undefined;
  killedAt?: number;
}

export function spawnCoreNode(id: string, env: Record<string, string>, dir: string): NodeProc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'tests/support/core-node.ts'], {
    env: { ...process.env, NODE_ID: id, ACTIVATION_LOG: join(dir, `activations-${id}.log`), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  let last: ReturnType<NodeProc['last']>;
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) last = JSON.parse(l);
  });
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { id, child, exited, last: () => last };
}

interface Interval {
  node: string;
  from: number;
  to: number;
}

/** Every actor's activation intervals per node; open ones end at the node's kill time or now. */
export function activationIntervals(dir: string, nodes: Pick<NodeProc, 'id' | 'killedAt'>[]): Map<string, Interval[]> {
  const out = new Map<string, Interval[]>();
  for (const n of nodes) {
    const file = join(dir, `activations-${n.id}.log`);
    if (!existsSync(file)) continue;
    const open = new Map<string, number>();
    const close = (actor: string, to: number) => {
      const from = open.get(actor);
      if (from === undefined) return;
      open.delete(actor);
      const list = out.get(actor) ?? [];
      list.push({ node: n.id, from, to });
      out.set(actor, list);
    };
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      const [t, , ev, actor] = line.split(' ');
      if (ev === 'activate') {
        if (open.has(actor)) throw new Error(`${n.id} activated ${actor} twice without passivating`);
        open.set(actor, Number(t));
      } else close(actor, Number(t));
    }
    for (const actor of [...open.keys()]) close(actor, n.killedAt ?? Number.MAX_SAFE_INTEGER);
  }
  return out;
}

/** Actors that were live on two nodes at the same time, with the overlapping intervals. */
export function overlaps(intervals: Map<string, Interval[]>): string[] {
  const bad: string[] = [];
  for (const [actor, list] of intervals) {
    const sorted = [...list].sort((a, b) => a.from - b.from);
    let reach = sorted[0];
    for (const cur of sorted.slice(1)) {
      if (cur.node !== reach.node && cur.from < reach.to) bad.push(`${actor}: ${reach.node} [${reach.from}, ${reach.to}) and ${cur.node} from ${cur.from}`);
      if (cur.to > reach.to) reach = cur;
    }
  }
  return bad;
}
