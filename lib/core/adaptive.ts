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

/** What one creation round of the client manager did. */
export interface RoundOutcome {
  /** Dials made. */
  dialed: number;
  /** Streams that joined the pool (or went straight to a waiter). */
  created: number;
  /** Dials that failed, whatever the reason. */
  failed: number;
  /** Of those, the ones the server answered with a refusal (full, busy, address): it is up, and holds no more for us. */
  refused: number;
}

/** Most of the round's dials failed: the back-off holds (or starts) and the next burst is small. */
export function mostlyFailed(round: RoundOutcome): boolean {
  return round.dialed > 0 && round.failed * 2 > round.dialed;
}

/**
 * The most dials the next round may make (`Infinity`: the whole deficit).
 * When the server answered but took few (most dials refused, or some
 * failed), it took `created` streams: the next round offers it twice that
 * (at least one, the probe). A round without a failure doubles the window,
 * and once it reaches the capacity the limit is lifted. A round in which
 * nothing was created and nothing refused (the server looks down: refused
 * connections, timeouts) leaves the window as it is: the back-off and its
 * single probe already hold the pool, and when the probe finds the server
 * back the same round refills it. So a server that accepts a few streams
 * per round sees about one refused dial per accepted one, where one
 * success used to fire the whole deficit again.
 */
export function nextDialWindow(window: number, round: RoundOutcome, capacity: number): number {
  if (round.dialed === 0) return window;
  if (round.failed === 0) {
    const grown = Math.max(2, window * 2);
    return grown >= capacity ? Infinity : grown;
  }
  if (round.created === 0 && round.refused === 0) return window;
  return Math.max(1, round.created * 2);
}

/**
 * Capacity after a round in which the server refused most dials: it is up
 * and will not hold more for this client than it holds now (`held` idle),
 * so the capacity halves, not below `held + 1` nor `bounds.min` (the usual
 * +1 per busy round brings it back). A refused round otherwise follows
 * `adjustCapacity`.
 */
export function adjustCapacityAfterRefusals(capacity: number, held: number, bounds: Bounds): number {
  const target = Math.max(held + 1, Math.ceil(capacity / 2));
  return Math.max(bounds.min, Math.min(capacity - 1, target));
}

/** After a round in which most dials failed: create later (+100 ms, not above max), whatever the idle ratio says. */
export function slowDownInterval(interval: number, bounds: Bounds): number {
  return Math.min(bounds.max, interval + INTERVAL_STEP_MS);
}
