/**
 * Per-connection replay check for bound header proofs (http2 session, wss
 * connection): the client numbers its proofs 0, 1, 2, … on one connection;
 * a number is accepted once, and only while it is within `size` of the
 * highest seen (HTTP/2 requests can overtake each other a little). State is
 * one number and a bitmap, whatever the session's length.
 */
export class ReplayWindow {
  private highest = -1;
  private seen = 0n; // bit i: highest - i was accepted

  constructor(private readonly size = 256) {}

  /** Accepts `seq` (and remembers it) or refuses a repeat or one that fell out of the window. */
  accept(seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 0) return false;
    if (seq > this.highest) {
      const shift = seq - this.highest;
      this.seen = shift >= this.size ? 1n : ((this.seen << BigInt(shift)) | 1n) & this.mask();
      this.highest = seq;
      return true;
    }
    const offset = this.highest - seq;
    if (offset >= this.size) return false;
    const bit = 1n << BigInt(offset);
    if (this.seen & bit) return false;
    this.seen |= bit;
    return true;
  }

  private mask(): bigint {
    return (1n << BigInt(this.size)) - 1n;
  }
}

/**
 * Server-wide replay check for unbound header proofs (ws:// or
 * `channelBinding: false`): a proof carries the client's clock (ms) and a
 * nonce; it is accepted when the clock is within `maxSkew` of ours and the
 * nonce was not seen. Only proofs that verified are remembered, so only a
 * holder of a key can fill it; it holds at most `capacity` nonces, each
 * until its clock falls out of the window. When full, the oldest is
 * forgotten and the floor rises to its clock: a proof at or below the floor
 * is refused, so forgetting never lets a replay in (an honest client whose
 * clock lags may then be refused until the pressure passes).
 */
export class ReplayCache {
  private readonly entries = new Map<string, number>(); // nonce → client clock, in insertion order
  private floor = -Infinity;

  constructor(
    private readonly maxSkew: number,
    private readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Whether a proof with this clock would be fresh now (checked before the HMAC, so stale ones cost nothing). */
  fresh(clock: number): boolean {
    const now = this.now();
    return clock > this.floor && Math.abs(now - clock) <= this.maxSkew;
  }

  /** Records a verified proof's nonce; false (refuse) when it was seen or is no longer fresh. */
  accept(nonce: string, clock: number): boolean {
    if (!this.fresh(clock)) return false;
    this.prune();
    if (this.entries.has(nonce)) return false;
    while (this.entries.size >= this.capacity) {
      const [oldest, oldestClock] = this.entries.entries().next().value as [string, number];
      this.entries.delete(oldest);
      this.floor = Math.max(this.floor, oldestClock);
    }
    if (clock <= this.floor) return false;
    this.entries.set(nonce, clock);
    return true;
  }

  /** Forgets entries from the front whose clock is out of the window (they would be refused as stale anyway). */
  private prune(): void {
    const limit = this.now() - this.maxSkew;
    for (const [nonce, clock] of this.entries) {
      if (clock >= limit) break;
      this.entries.delete(nonce);
    }
  }
}
