import type { Parameters as FcParameters } from 'fast-check';

/**
 * One fixed seed for every property of this folder, so a run is
 * reproducible; fast-check prints the seed and the counterexample's path
 * on failure. `FC_SEED=<n>` explores other inputs.
 */
export const SEED = process.env['FC_SEED'] !== undefined ? Number(process.env['FC_SEED']) : 0x7e57_5eed;

/** Options for `fc.assert`: the seed above, `numRuns`, and a bound on each run of an async property. */
export function runs<T>(numRuns: number, timeout?: number): FcParameters<T> {
  return { numRuns, seed: SEED, ...(timeout !== undefined ? { timeout } : {}) };
}

/** The `code` of what `fn` throws (undefined if it returns). */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? `not a PoolError: ${String(error)}`;
  }
}

/** The `code` of the rejection of `promise` (undefined if it resolves). */
export async function rejectionCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? `not a PoolError: ${String(error)}`;
  }
}

/** Splits `bytes` at the given cut points (any numbers, taken modulo the length): arbitrary chunkings of one payload. */
export function chunk(bytes: Uint8Array, cuts: readonly number[]): Buffer[] {
  const data = Buffer.from(bytes);
  if (data.length === 0) return [];
  const points = [...new Set(cuts.map((cut) => cut % data.length).filter((cut) => cut > 0))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(data.subarray(from, point));
    from = point;
  }
  chunks.push(data.subarray(from));
  return chunks;
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
