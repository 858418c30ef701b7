// Holds the parts of concatenated SMS until all have come (keyed by sender, recipient, reference
// and part count). A message whose parts stop coming is handed over after a timeout with the gaps
// marked, so a lost part never silently swallows the rest.

export interface Assembled<T> {
  text: string;
  total: number;
  missing: number;
  /** What the caller attached to the first part seen. */
  first: T;
}

interface Pending<T> {
  parts: Map<number, string>;
  total: number;
  first: T;
  timer: ReturnType<typeof setTimeout>;
}

export const GAP = '[…]';

export class Reassembler<T> {
  private pending = new Map<string, Pending<T>>();

  constructor(
    private readonly timeoutMs: number,
    /** Called with what arrived when the timeout passes before the last part. */
    private readonly onTimeout: (a: Assembled<T>) => void,
    private readonly maxPending = 10_000,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /**
   * Adds part seq of total; returns the whole message once every part is in, else undefined. The
   * parts stay until done(key): if handing the message over fails, the SMSC resends the refused
   * last part and the message completes again.
   */
  add(key: string, total: number, seq: number, text: string, info: T): Assembled<T> | undefined {
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= this.maxPending) this.expire(this.pending.keys().next().value as string);
      p = { parts: new Map(), total, first: info, timer: setTimeout(() => this.expire(key), this.timeoutMs) };
      p.timer.unref?.();
      this.pending.set(key, p);
    }
    p.parts.set(seq, text); // a repeated part replaces itself
    if (p.parts.size < p.total) return undefined;
    return this.assemble(p);
  }

  done(key: string): void {
    const p = this.pending.get(key);
    if (p) clearTimeout(p.timer);
    this.pending.delete(key);
  }

  private assemble(p: Pending<T>): Assembled<T> {
    let text = '';
    let missing = 0;
    for (let i = 1; i <= p.total; i++) {
      const part = p.parts.get(i);
      if (part === undefined) missing++;
      text += part ?? GAP;
    }
    return { text, total: p.total, missing, first: p.first };
  }

  private expire(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.done(key);
    this.onTimeout(this.assemble(p));
  }

  clear(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}
