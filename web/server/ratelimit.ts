// Login throttling: a fixed number of failures per key (user name, and client address) in a sliding
// window. In memory per node: an attacker spreading guesses over N nodes gets N times the budget,
// which the slow hash still makes expensive.
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly max = 5,
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until this key may try again; 0 when it may try now. */
  retryAfter(key: string): number {
    const recent = this.recent(key);
    return recent.length < this.max ? 0 : Math.max(1, recent[0] + this.windowMs - this.now());
  }

  fail(key: string): void {
    const recent = this.recent(key);
    recent.push(this.now());
    this.failures.set(key, recent);
    // Bounded: forget the oldest keys rather than grow without end under a spray of names.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  reset(key: string): void {
    this.failures.delete(key);
  }

  private recent(key: string): number[] {
    const cut = this.now() - this.windowMs;
    return (this.failures.get(key) ?? []).filter((t) => t > cut);
  }
}
