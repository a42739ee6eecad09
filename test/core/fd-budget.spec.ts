/**
 * Issue 10, item 5, "Out of file descriptors": the budget the pools draw on
 * before each dial or admission. The end-to-end proof, with real processes
 * under `ulimit -n`, is test/reliability/fd-limit.spec.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { FdBudget, fdReserve, parseFdLimit, procFds, type FdSource } from '../../lib/core/fd-budget.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            256                  4096                 files
Max locked memory         8388608              8388608              bytes
`;

/** A scripted source: `open` descriptors now, counted how often. */
function source(limit: number | null, open: number | (() => number)): FdSource & { counts: number; open_: number } {
  const s = {
    counts: 0,
    open_: typeof open === 'number' ? open : 0,
    limit: () => limit,
    open: () => {
      s.counts++;
      return typeof open === 'number' ? s.open_ : open();
    },
  };
  return s;
}

describe('parseFdLimit', () => {
  it.each([
    [LIMITS, 256],
    [LIMITS.replace('256 ', 'unlimited '), null],
    ['no such line', null],
    ['Max open files            0     0    files', null],
  ])('%#', (text, expected) => {
    expect(parseFdLimit(text)).toBe(expected);
  });

  it('reads this process on Linux', () => {
    const limit = procFds.limit();
    if (process.platform === 'linux') {
      expect(limit).toBeGreaterThan(0);
      expect(procFds.open()).toBeGreaterThan(2);
    } else {
      expect(limit).toBeNull();
    }
  });
});

describe('fdReserve', () => {
  it.each([
    [64, 32],
    [256, 32],
    [1024, 128],
    [4096, 512],
    [1_048_576, 1024],
  ])('limit %i leaves %i', (limit, reserve) => {
    expect(fdReserve(limit)).toBe(reserve);
  });
});

describe('FdBudget', () => {
  it('grants up to limit - reserve, counting each grant until the next count', () => {
    let now = 0;
    const fds = source(256, 200);
    const budget = new FdBudget(fds, () => now);
    const granted = Array.from({ length: 40 }, () => budget.take()).filter(Boolean).length;
    expect(granted).toBe(24); // 256 - 32 - 200
    expect(fds.counts).toBe(1);
    // Near the ceiling, a count at most every 20 ms: streams closed meanwhile come back.
    fds.open_ = 150;
    now += 5;
    expect(budget.take()).toBe(false);
    now += 20;
    expect(budget.take()).toBe(true);
    expect(fds.counts).toBe(2);
    expect(budget.figures()).toEqual({ limit: 256, reserve: 32, open: 151 });
  });

  it('far from the ceiling counts once a second', () => {
    let now = 0;
    const fds = source(4096, 10);
    const budget = new FdBudget(fds, () => now);
    for (let i = 0; i < 100; i++) budget.take();
    now += 999;
    budget.take();
    expect(fds.counts).toBe(1);
    now += 2;
    budget.take();
    expect(fds.counts).toBe(2);
  });

  it('no descriptor left to list them (EMFILE): nothing granted', () => {
    const budget = new FdBudget(
      source(256, () => {
        throw Object.assign(new Error('EMFILE'), { code: 'EMFILE' });
      }),
    );
    expect(budget.take()).toBe(false);
  });

  it('an unknown limit (not Linux, or unlimited) grants everything without counting', () => {
    const fds = source(null, 1_000_000);
    const budget = new FdBudget(fds);
    expect(Array.from({ length: 1000 }, () => budget.take()).every(Boolean)).toBe(true);
    expect(fds.counts).toBe(0);
    expect(budget.figures()).toEqual({ limit: null, reserve: 0, open: 0 });
  });
});
