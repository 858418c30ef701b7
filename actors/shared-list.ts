// An immutable list whose versions share structure, for a long ordered part of an actor's context (a
// queue's ten thousand waiting tasks). A change copies one chunk of about CHUNK items and the short list
// of chunks, not every item: copying the whole list on each assignment made the queue's node spend its
// time collecting garbage (copies of 80 KB, kept alive by the versions a batch notes, moved by every minor
// collection).

/** Items per chunk, about: chunks split past twice this and merge with a neighbour below a quarter. */
const CHUNK = 128;

export class SharedList<T> implements Iterable<T> {
  private constructor(
    private readonly chunks: readonly (readonly T[])[],
    /** ends[k]: the number of items in chunks 0..k. */
    private readonly ends: readonly number[],
  ) {}

  static from<T>(items: Iterable<T>): SharedList<T> {
    const all = Array.isArray(items) ? (items as T[]) : [...items];
    const chunks: T[][] = [];
    for (let i = 0; i < all.length; i += CHUNK) chunks.push(all.slice(i, i + CHUNK));
    return new SharedList(chunks, endsOf(chunks));
  }

  static empty<T>(): SharedList<T> {
    return new SharedList<T>([], []);
  }

  get length(): number {
    return this.ends.length ? this.ends[this.ends.length - 1] : 0;
  }

  /** The item at `i`, counted from the end when negative (as Array's `at`); undefined outside the list or for a fraction. */
  at(i: number): T | undefined {
    if (i < 0) i += this.length;
    if (!this.has(i)) return undefined;
    const k = this.chunkOf(i);
    return this.chunks[k][i - this.start(k)];
  }

  /** The list with the item at `i` replaced. */
  with(i: number, item: T): SharedList<T> {
    return this.withAll([[i, item]]);
  }

  /** The list with each [index, item] replaced: each chunk touched is copied once. */
  withAll(replacements: Iterable<readonly [number, T]>): SharedList<T> {
    let chunks: (readonly T[])[] | undefined;
    const copied = new Set<number>();
    for (const [i, item] of replacements) {
      if (!this.has(i)) throw outside(i, this.length);
      const k = this.chunkOf(i);
      chunks ??= this.chunks.slice();
      if (!copied.has(k)) {
        chunks[k] = chunks[k].slice();
        copied.add(k);
      }
      (chunks[k] as T[])[i - this.start(k)] = item;
    }
    return chunks ? new SharedList(chunks, this.ends) : this;
  }

  /** The list with `item` inserted before index `i` (at the end when i is the length). */
  insert(i: number, item: T): SharedList<T> {
    if (!this.has(i) && i !== this.length) throw outside(i, this.length);
    if (!this.chunks.length) return new SharedList([[item]], [1]);
    // At the very end: into the last chunk.
    const k = i === this.length ? this.chunks.length - 1 : this.chunkOf(i);
    const chunk = this.chunks[k].toSpliced(i - this.start(k), 0, item);
    return chunk.length > 2 * CHUNK ? this.replaceChunks(k, 1, [chunk.slice(0, chunk.length >> 1), chunk.slice(chunk.length >> 1)]) : this.replaceChunks(k, 1, [chunk]);
  }

  /** The list without the item at `i`. */
  remove(i: number): SharedList<T> {
    if (!this.has(i)) throw outside(i, this.length);
    const k = this.chunkOf(i);
    const chunk = this.chunks[k].toSpliced(i - this.start(k), 1);
    if (chunk.length >= CHUNK >> 2 || this.chunks.length === 1) return this.replaceChunks(k, 1, chunk.length ? [chunk] : []);
    // A small chunk joins a neighbour, so that chunks never dwindle to a few items each (and copies to the whole list).
    const at = k + 1 < this.chunks.length ? k : k - 1;
    const joined = at === k ? [...chunk, ...this.chunks[k + 1]] : [...this.chunks[k - 1], ...chunk];
    return this.replaceChunks(at, 2, joined.length > 2 * CHUNK ? [joined.slice(0, joined.length >> 1), joined.slice(joined.length >> 1)] : [joined]);
  }

  indexOf(item: T): number {
    let base = 0;
    for (const chunk of this.chunks) {
      const i = chunk.indexOf(item);
      if (i >= 0) return base + i;
      base += chunk.length;
    }
    return -1;
  }

  find(test: (item: T) => boolean): T | undefined {
    for (const item of this) if (test(item)) return item;
    return undefined;
  }

  filter(test: (item: T) => boolean): SharedList<T> {
    return SharedList.from(this.toArray().filter(test));
  }

  map<U>(fn: (item: T, i: number) => U): U[] {
    return this.toArray().map(fn);
  }

  /** Calls `test` on each item from index `from` on until it returns true; true if one did (Array's `some`, from an index). */
  someFrom(from: number, test: (item: T, i: number) => boolean): boolean {
    if (!Number.isInteger(from)) throw outside(from, this.length);
    if (from >= this.length) return false;
    const first = this.chunkOf(Math.max(0, from));
    let i = this.start(first);
    for (let k = first; k < this.chunks.length; k++) {
      const chunk = this.chunks[k];
      for (let j = 0; j < chunk.length; j++, i++) if (i >= from && test(chunk[j], i)) return true;
    }
    return false;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (const chunk of this.chunks) yield* chunk;
  }

  toArray(): T[] {
    return this.chunks.flat() as T[];
  }

  /** As a plain array: what a snapshot, a view or a log shows. */
  toJSON(): T[] {
    return this.toArray();
  }

  /** An index of an item: a whole number from 0 to length - 1. */
  private has(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.length;
  }

  private start(k: number): number {
    return k ? this.ends[k - 1] : 0;
  }

  /** The chunk holding index i: the first whose end is past it. */
  private chunkOf(i: number): number {
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid] > i) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private replaceChunks(k: number, count: number, by: (readonly T[])[]): SharedList<T> {
    const chunks = this.chunks.toSpliced(k, count, ...by);
    // Ends before k stay; from k on they are summed again (a few dozen numbers for ten thousand items).
    const ends = this.ends.slice(0, k);
    let n = this.start(k);
    for (let j = k; j < chunks.length; j++) ends.push((n += chunks[j].length));
    return new SharedList(chunks, ends);
  }
}

const outside = (i: number, length: number) => new RangeError(`index ${i} is outside a list of ${length}`);

function endsOf(chunks: readonly (readonly unknown[])[]): number[] {
  let n = 0;
  return chunks.map((c) => (n += c.length));
}
