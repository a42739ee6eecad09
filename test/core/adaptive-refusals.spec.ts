/**
 * Issue 10, item 5, "Refusal dial storm": the rules that make refusals slow
 * the client manager down, as pure functions. The end-to-end proof is
 * test/reliability/refusal-storm.spec.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { adjustCapacityAfterRefusals, mostlyFailed, nextDialWindow, slowDownInterval, type RoundOutcome } from '../../lib/core/adaptive.js';

const round = (dialed: number, created: number, failed = dialed - created, refused = failed): RoundOutcome => ({ dialed, created, failed, refused });

describe('mostlyFailed', () => {
  it.each([
    [round(0, 0), false], // no dial: nothing to judge
    [round(10, 0), true], // every dial failed (the old rule)
    [round(150, 1), true], // one success in a round of refusals: the case that used to reset the back-off
    [round(10, 5), false], // half: not most
    [round(10, 4), true],
    [round(1, 1), false],
  ])('%j → %s', (outcome, expected) => {
    expect(mostlyFailed(outcome)).toBe(expected);
  });
});

describe('nextDialWindow', () => {
  it.each([
    // window, round, capacity, expected
    [Infinity, round(150, 1), 160, 2], // mostly refused: twice what the server took
    [Infinity, round(150, 0), 160, 1], // all refused: the probe only
    [Infinity, round(150, 0, 150, 0), 160, Infinity], // all failed, none refused (server down): the back-off's probe gates
    [6, round(4, 0, 4, 0), 160, 6],
    [Infinity, round(10, 2, 8, 0), 160, 4], // mostly failed (timeouts), some created: follows what the server took
    [8, round(8, 5), 160, 10], // some refused: follows what the server took
    [2, round(2, 2), 160, 4], // clean round: doubles
    [1, round(1, 1), 160, 2],
    [100, round(60, 60), 160, Infinity], // clean and reaching the capacity: no limit
    [4, round(0, 0), 160, 4], // no dial: unchanged
    [Infinity, round(160, 160), 160, Infinity], // healthy: stays unlimited
  ])('window %d after %j (capacity %d) → %d', (window, outcome, capacity, expected) => {
    expect(nextDialWindow(window, outcome, capacity)).toBe(expected);
  });
});

describe('adjustCapacityAfterRefusals', () => {
  const bounds = { min: 2, max: 200 };
  it.each([
    // capacity, held, expected
    [160, 8, 80], // halves
    [20, 15, 16], // not below what it holds + 1
    [16, 15, 15], // but always at least one less
    [3, 0, 2], // not below min
    [2, 0, 2], // at min: stays
  ])('capacity %d holding %d → %d', (capacity, held, expected) => {
    expect(adjustCapacityAfterRefusals(capacity, held, bounds)).toBe(expected);
  });
});

describe('slowDownInterval', () => {
  it('steps up by 100 ms, not above max', () => {
    expect(slowDownInterval(100, { min: 100, max: 1000 })).toBe(200);
    expect(slowDownInterval(950, { min: 100, max: 1000 })).toBe(1000);
    expect(slowDownInterval(1000, { min: 100, max: 1000 })).toBe(1000);
  });
});
