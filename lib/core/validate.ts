import { InvalidOptionsError } from './errors.js';

/** Renders a user's value for an error message. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Reads options out of a plain object, naming the option in every error. */
export class OptionReader {
  private readonly seen = new Set<string>();

  constructor(
    private readonly source: Record<string, unknown>,
    private readonly prefix = '',
  ) {
    if (source === null || typeof source !== 'object' || Array.isArray(source)) {
      throw new InvalidOptionsError(prefix || 'options', `expected an object, got ${show(source)}`);
    }
  }

  name(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  raw(key: string): unknown {
    this.seen.add(key);
    return this.source[key];
  }

  /** Whether the key is written at all, even as `undefined` (usually a value that was not there yet). */
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.source, key);
  }

  fail(key: string, expected: string): never {
    throw new InvalidOptionsError(this.name(key), `got ${show(this.source[key])}, expected ${expected}`);
  }

  int(key: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`);
    }
    return value;
  }

  /** Milliseconds, an integer >= min; `Infinity` only where allowed. */
  ms(key: string, fallback: number, min = 1, allowInfinity = false): number {
    const value = this.raw(key);
    if (allowInfinity && value === Infinity) return Infinity;
    return this.int(key, fallback, min, allowInfinity ? Number.MAX_SAFE_INTEGER : 2_147_483_647);
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(key, 'true or false');
    return value;
  }

  string(key: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length === 0) this.fail(key, 'a non-empty string');
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (!allowed.includes(value as T)) this.fail(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    return value as T;
  }

  fn<T extends (...args: never[]) => unknown>(key: string): T | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'function') this.fail(key, 'a function');
    return value as T;
  }

  /** Marks keys as known without reading them (read elsewhere). */
  accept(...keys: string[]): void {
    for (const key of keys) this.seen.add(key);
  }

  /** Rejects keys nobody read: a typo should not be silently ignored. */
  rejectUnknown(): void {
    for (const key of Object.keys(this.source)) {
      if (this.seen.has(key) || this.source[key] === undefined) continue;
      const hint = closest(key, [...this.seen]);
      throw new InvalidOptionsError(
        this.name(key),
        `unknown option${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}; known options: ${[...this.seen].sort().join(', ')}`,
      );
    }
  }
}

/** The nearest known name by edit distance, if it is close enough to be a typo. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const [a, b] = [word.toLowerCase(), candidate.toLowerCase()];
    // A long name for a short one (maxCapacity for maxCap) is a typo too.
    const prefix = Math.min(a.length, b.length) >= 4 && (a.startsWith(b) || b.startsWith(a));
    const distance = prefix ? 1 : editDistance(a, b);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Validates an ordered pair; a swapped pair is an error naming both options. */
export function orderedPair(reader: OptionReader, minKey: string, maxKey: string, min: number, max: number): void {
  if (min > max) {
    throw new InvalidOptionsError(
      reader.name(minKey),
      `${reader.name(minKey)} (${min}) is greater than ${reader.name(maxKey)} (${max}); swap them or raise ${reader.name(maxKey)}`,
    );
  }
}
