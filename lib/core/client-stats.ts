import type { PerClientStats } from './stats.js';

/** The most clients `stats.clients` tracks at once (see ClientCounters). */
export const MAX_TRACKED_CLIENTS = 1024;

/**
 * Per-client counters of a server pool, keyed by identity label
 * (`key:<id>`, `cert:<common name>`...). Only streams whose handshake
 * proved an identity are counted, so a stranger cannot add a key; and the
 * map is capped: a new client beyond `limit` evicts the one least recently
 * active that has no idle stream (the least recently active one if all
 * have), so even many valid identities cost bounded memory. The idle count
 * is read live from the pool's idle index, never stored.
 */
export class ClientCounters {
  /** In order of last activity, least recent first. */
  private readonly counts = new Map<string, { accepted: number; taken: number }>();

  constructor(
    private readonly idleOf: (label: string) => number,
    private readonly limit = MAX_TRACKED_CLIENTS,
  ) {}

  get size(): number {
    return this.counts.size;
  }

  accepted(label: string): void {
    this.touch(label).accepted++;
  }

  taken(label: string): void {
    this.touch(label).taken++;
  }

  /** Every tracked client's figures; undefined while no stream had an identity. */
  snapshot(): Record<string, PerClientStats> | undefined {
    if (this.counts.size === 0) return undefined;
    const clients: Record<string, PerClientStats> = {};
    for (const [label, { accepted, taken }] of this.counts) clients[label] = { idle: this.idleOf(label), accepted, taken };
    return clients;
  }

  /** The entry of `label`, moved to the most recent end (created, evicting one if full). */
  private touch(label: string): { accepted: number; taken: number } {
    let entry = this.counts.get(label);
    if (entry) this.counts.delete(label);
    else {
      if (this.counts.size >= this.limit) this.evict();
      entry = { accepted: 0, taken: 0 };
    }
    this.counts.set(label, entry);
    return entry;
  }

  private evict(): void {
    let victim: string | undefined;
    for (const label of this.counts.keys()) {
      victim ??= label;
      if (this.idleOf(label) === 0) {
        victim = label;
        break;
      }
    }
    if (victim !== undefined) this.counts.delete(victim);
  }
}
