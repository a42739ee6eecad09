/** Plain snapshots: safe to log, serialise, or hand to a health check. */
import type { PoolState } from './pool-base.js';

export type { PoolState };

interface CommonStats {
  name: string;
  /** The transport's kind: 'tcp', 'tls', 'http2', 'ws'... */
  transport: string;
  state: PoolState;
  /** Started and not closed. */
  ready: boolean;
  /** Idle pooled streams ready to be taken. */
  active: number;
  capacity: number;
  errorCount: number;
  /** Pending gets. */
  waiting: number;
  /**
   * Streams handed to the application and not closed yet. On `close()`
   * the pool waits up to its close timeout for them, then cuts the rest.
   */
  inUse: number;
  /** Age in ms of the oldest idle stream. */
  oldestIdleMs: number;
  /** Idle streams that left without being taken, by reason. */
  drops: Record<string, number>;
  /** Figures the transport adds (sessions, handshakes...). */
  transportStats: Record<string, unknown>;
}

export interface ClientPoolStats extends CommonStats {
  role: 'client';
  interval: number;
  minCap: number;
  maxCap: number;
  minIvl: number;
  maxIvl: number;
  isSingle: boolean;
  /** Dials in flight. */
  dialing: number;
  /** Consecutive creation rounds in which most dials failed (0 when healthy). */
  failedRounds: number;
  /** The wait chosen after the last round: the interval, or the back-off. */
  nextRoundInMs: number;
  /** The most dials the next round may make after refusals; null: the whole deficit. */
  nextRoundMaxDials: number | null;
  totals: { dials: number; created: number; taken: number; rounds: number };
  /** Failed dials, by error code. */
  failures: Record<string, number>;
}

export interface ServerPoolStats extends CommonStats {
  role: 'server';
  maxCap: number;
  /** Connections admitted and still in their handshake. */
  handshaking: number;
  totals: { accepted: number; taken: number };
  /** Connections turned away, by reason ('full', 'ip', 'handshake-timeout', 'tls'...). */
  refusals: Record<string, number>;
  /**
   * Per client, keyed by identity label (`key:<id>`, `cert:<common name>`,
   * see `identityLabel`): only on a pool where some stream proved an
   * identity (shared key, client certificate); at most 1024 clients (see
   * ClientCounters). Refusals are not per client: a refused peer proved no
   * identity.
   */
  clients?: Record<string, PerClientStats>;
}

/** One client's figures in `ServerPoolStats.clients`. */
export interface PerClientStats {
  /** Its idle streams now. */
  idle: number;
  /** Its streams that completed their handshake. */
  accepted: number;
  /** Its streams handed to the application. */
  taken: number;
}

export type PoolStats = ClientPoolStats | ServerPoolStats;

export function countInto(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
