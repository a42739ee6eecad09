/**
 * The client manager's adaptive rules (PROTOCOL.md, "Adaptive pool
 * behaviour"), as pure functions so they can be specified on their own.
 */

/** Interval step per round, as in the Go pools. */
export const INTERVAL_STEP_MS = 100;

export interface Bounds {
  min: number;
  max: number;
}

/**
 * Fewer idle streams than 20% of capacity: create sooner (interval −100 ms,
 * not below min). More than 80%: back off (+100 ms, not above max).
 * The thresholds are real numbers (idle < 0.2 × capacity), so a pool of
 * capacity 1..4 with nothing idle still speeds up; the Go pools round the
 * threshold down to an integer and never do.
 */
export function adjustInterval(interval: number, idle: number, capacity: number, bounds: Bounds): number {
  if (idle < capacity * 0.2 && interval > bounds.min) {
    return Math.max(bounds.min, interval - INTERVAL_STEP_MS);
  }
  if (idle > capacity * 0.8 && interval < bounds.max) {
    return Math.min(bounds.max, interval + INTERVAL_STEP_MS);
  }
  return interval;
}

/**
 * The round's success ratio `created / capacity`: below 0.2 the pool is
 * barely used (or the server is failing), so shrink by one; above 0.8 it is
 * drained as fast as it is filled, so grow by one.
 */
export function adjustCapacity(capacity: number, created: number, bounds: Bounds): number {
  const ratio = capacity > 0 ? created / capacity : created > 0 ? 1 : 0;
  if (ratio < 0.2 && capacity > bounds.min) return capacity - 1;
  if (ratio > 0.8 && capacity < bounds.max) return capacity + 1;
  return capacity;
}
