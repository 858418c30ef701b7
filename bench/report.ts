// Bench output: one JSON object a line, `name`, `value`, `unit`, and where it compares, the baseline measured in the same run.
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: string;
  baseline_value?: number;
  ratio?: number;
  goal?: string;
  [extra: string]: unknown;
}

export function report(f: Figure): void {
  const round = (x: number) => (Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 1000) / 1000);
  const out: Figure = { ...f, value: round(f.value) };
  if (f.baseline_value !== undefined) {
    out.baseline_value = round(f.baseline_value);
    out.ratio = Math.round((f.value / f.baseline_value) * 1000) / 1000;
  }
  console.log(JSON.stringify(out));
}

export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export const median = (xs: number[]): number => percentile(xs, 50);

/** A whole-number setting of a bench from the environment; a bad value stops the bench with one line naming it. */
export function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number of at least 1 (got ${JSON.stringify(raw)})`);
  return n;
}

/** Runs `n` calls of `fn` with `inFlight` outstanding at a time; returns calls per second. */
export async function throughput(n: number, inFlight: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

/** Sequential latencies of `n` calls, in milliseconds. */
export async function latencies(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}
