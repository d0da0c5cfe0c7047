import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling from min up to max', () => {
    const b = new Backoff(200, 20_000, () => 0.999999);
    const got: number[] = [];
    for (let i = 0; i < 10; i++) got.push(b.next());
    expect(got).toEqual([200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000, 20000]);
  });

  it('draws every delay uniformly from [0, ceiling] (full jitter)', () => {
    let seed = 42;
    const rand = () => {
      // A small LCG: deterministic, and spread over [0, 1).
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const b = new Backoff(100, 3_000, rand);
    for (let round = 0; round < 200; round++) {
      b.reset();
      for (let i = 0; i < 8; i++) {
        const ceiling = b.ceiling();
        const d = b.next();
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
        expect(ceiling).toBe(Math.min(3_000, 100 * 2 ** i));
      }
    }
    // Full jitter reaches both ends of the range.
    expect(new Backoff(100, 100, () => 0).next()).toBe(0);
    expect(new Backoff(100, 100, () => 0.99999999).next()).toBe(100);
  });

  it('starts over after reset', () => {
    const b = new Backoff(10, 1000, () => 0.999999);
    b.next();
    b.next();
    b.next();
    expect(b.ceiling()).toBe(80);
    b.reset();
    expect(b.ceiling()).toBe(10);
    expect(b.attempts).toBe(0);
  });

  it('never grows past max, however many attempts', () => {
    const b = new Backoff(1, 50, () => 0.999999);
    for (let i = 0; i < 5000; i++) expect(b.next()).toBeLessThanOrEqual(50);
  });

  it('gives 0 for a zero min', () => {
    const b = new Backoff(0, 0, () => 0.5);
    expect(b.next()).toBe(0);
  });
});
