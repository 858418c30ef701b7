// One clock per shard: the earliest durable deadline of each actor, armed with a single setTimeout.
const MAX_DELAY = 2 ** 31 - 1;

export class Deadlines {
  private readonly due = new Map<string, number>();
  private heap: [number, string][] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedAt = Infinity;

  constructor(private readonly fire: (id: string) => void) {}

  /** Sets (or with undefined clears) the earliest deadline of one actor. */
  set(id: string, at: number | undefined): void {
    if (at === undefined) {
      this.due.delete(id);
      return;
    }
    if (this.due.get(id) === at) return;
    this.due.set(id, at);
    this.push([at, id]);
    if (at < this.armedAt) this.arm();
  }

  get(id: string): number | undefined {
    return this.due.get(id);
  }

  get size(): number {
    return this.due.size;
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.due.clear();
    this.heap = [];
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    const top = this.heap[0];
    if (!top) return;
    this.armedAt = top[0];
    this.timer = setTimeout(() => this.tick(), Math.min(MAX_DELAY, Math.max(0, top[0] - Date.now())));
  }

  private tick(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    while (this.heap.length && this.heap[0][0] <= now) {
      const [at, id] = this.pop();
      // Lazy deletion: only the entry that is still the actor's current deadline fires.
      if (this.due.get(id) === at) {
        this.due.delete(id);
        this.fire(id);
      }
    }
    this.arm();
  }

  private push(e: [number, string]): void {
    if (this.heap.length > 64 && this.heap.length > 2 * this.due.size) {
      // Drop stale entries left by lazy deletion, so a busy actor cannot grow the heap without bound.
      const live = [...this.due].map(([id, at]): [number, string] => [at, id]);
      this.heap = [];
      for (const x of live) if (x[1] !== e[1]) this.push(x);
    }
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p][0] <= h[i][0]) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private pop(): [number, string] {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l][0] < h[m][0]) m = l;
        if (r < h.length && h[r][0] < h[m][0]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
