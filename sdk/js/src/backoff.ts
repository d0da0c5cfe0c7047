/**
 * Reconnect delays with "full jitter": the n-th delay is uniform in
 * [0, min(max, min·2ⁿ)]. Spreading delays over the whole range, rather than
 * around a mean, is what keeps thousands of clients that lost the same
 * server from coming back in waves.
 */
export class Backoff {
  private attempt = 0;

  /**
   * @param min the ceiling of the first delay, in milliseconds
   * @param max the largest ceiling, in milliseconds
   * @param random a uniform value in [0, 1); tests replace it
   */
  constructor(
    readonly min: number,
    readonly max: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The upper bound of the next delay. */
  ceiling(): number {
    // 2^attempt grows past any max long before it overflows a double, but
    // stop doubling at max anyway.
    let d = this.min;
    for (let i = 0; i < this.attempt && d < this.max; i++) d *= 2;
    return Math.min(d, this.max);
  }

  /** Returns the delay before the next attempt and counts the attempt. */
  next(): number {
    const c = this.ceiling();
    this.attempt++;
    if (c <= 0) return 0;
    return Math.floor(this.random() * (c + 1));
  }

  /** Makes the next delay the shortest again. */
  reset(): void {
    this.attempt = 0;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }
}
