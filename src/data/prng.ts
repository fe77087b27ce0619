/**
 * Seeded pseudo-random numbers for drawing subsets and splits. The generator
 * is mulberry32 (Tommy Ettinger's 32-bit generator: one 32-bit word of state,
 * period 2^32), and seeds are combined with the splitmix32-style finalizer
 * below, so that (seed, draw) pairs that differ in one bit still start far apart.
 * The same seed gives the same numbers on every machine and Node version:
 * only 32-bit integer arithmetic (`Math.imul`, shifts) is involved.
 */

/** Mixes one 32-bit word into another (the finalizer of splitmix32 / murmur3). */
function mix32(hash: number, word: number): number {
  let h = (hash ^ Math.imul(word >>> 0, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Combines integers (a seed, a draw number, a stream name's hash) into one
 * 32-bit seed. Each part must be a safe integer; the high and low halves of
 * large ones both count.
 */
export function combineSeeds(...parts: number[]): number {
  let hash = 0x2545f491;
  for (const part of parts) {
    if (!Number.isSafeInteger(part)) throw new RangeError(`seed parts must be integers, got ${part}`);
    hash = mix32(hash, part % 0x100000000);
    hash = mix32(hash, Math.floor(part / 0x100000000));
  }
  return hash;
}

/** A generator of floats in [0, 1) and integers in [0, n). */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const held = items[i] as T;
      items[i] = items[j] as T;
      items[j] = held;
    }
    return items;
  }
}
