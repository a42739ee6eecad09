import { describe, expect, it } from '@jest/globals';
import { adjustCapacity, adjustInterval } from '../../lib/core/adaptive.js';

const ivl = { min: 100, max: 1000 };
const cap = { min: 2, max: 8 };

describe('adjustInterval (idle ratio)', () => {
  it.each([
    // interval, idle, capacity, expected
    [500, 0, 10, 400], // 0 idle < 20%: faster
    [500, 1, 10, 400], // 10% < 20%: faster
    [500, 2, 10, 500], // exactly 20%: unchanged
    [500, 8, 10, 500], // exactly 80%: unchanged
    [500, 9, 10, 600], // 90% > 80%: slower
    [150, 0, 10, 100], // clamped at min
    [100, 0, 10, 100], // already at min
    [950, 10, 10, 1000], // clamped at max
    [1000, 10, 10, 1000], // already at max
    [500, 0, 1, 400], // capacity 1, nothing idle: still speeds up (real-number threshold)
  ])('interval %i, %i idle of %i → %i', (interval, idle, capacity, expected) => {
    expect(adjustInterval(interval, idle, capacity, ivl)).toBe(expected);
  });
});

describe('adjustCapacity (success ratio created / capacity)', () => {
  it.each([
    // capacity, created, expected
    [5, 0, 4], // nothing created (pool full or server failing): shrink
    [5, 1, 5], // 0.2: unchanged
    [5, 4, 5], // 0.8: unchanged
    [5, 5, 6], // 1.0: grow
    [2, 0, 2], // at min: stays
    [8, 8, 8], // at max: stays
    [10, 1, 9], // 0.1: shrink
  ])('capacity %i with %i created → %i', (capacity, created, expected) => {
    expect(adjustCapacity(capacity, created, cap)).toBe(expected);
  });

  it('treats capacity 0 (single mode) without dividing by zero', () => {
    expect(adjustCapacity(0, 0, { min: 0, max: 4 })).toBe(0);
    expect(adjustCapacity(0, 1, { min: 0, max: 4 })).toBe(1);
  });
});
