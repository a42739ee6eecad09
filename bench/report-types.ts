import type { AdapterName } from './adapters.js';
import type { Summary } from './stats.js';

export type ScenarioName = 'throughput' | 'handoff' | 'rendezvous' | 'warmup' | 'memory' | 'rate' | 'refilling' | 'openloop' | 'metrics' | 'tunnel' | 'handshake';
export const SCENARIO_NAMES: readonly ScenarioName[] = ['throughput', 'handoff', 'rendezvous', 'warmup', 'memory', 'rate', 'refilling', 'openloop', 'metrics', 'tunnel', 'handshake'];

/** A target from the issue: reported with ✓/✗, never asserted. */
export interface Target {
  /** As printed, e.g. "≥ 0.95". */
  readonly label: string;
  readonly value: number;
  /** Judged on the median paired ratio pooled / raw, pooled / floor, or on the pooled median itself. */
  readonly on: 'ratio' | 'floor' | 'pooled';
  readonly better: 'higher' | 'lower';
  /** Whether equality meets it (≥ / ≤ rather than > / <). */
  readonly inclusive: boolean;
}

export interface Row {
  readonly transport: AdapterName;
  readonly scenario: ScenarioName;
  /** What is measured, e.g. "1 stream c→s". */
  readonly metric: string;
  /** Unit of raw and pooled values. */
  readonly unit: string;
  /** Per-run values of the raw Node transport (min / median / max over runs). */
  readonly raw?: Summary;
  readonly pooled?: Summary;
  /** Per-run paired ratios pooled / raw. */
  readonly ratio?: Summary;
  /** Hand-off latency rows: the physical floor (raw-Node hand-off of a pre-opened connection of the same kind, same exchange), per run. */
  readonly floor?: Summary;
  /** Per-run paired ratios pooled / floor. */
  readonly floorRatio?: Summary;
  readonly target?: Target;
  /** Set from the target once the row is complete. */
  met?: boolean;
  /** A short remark printed under the table (sizes, what raw means here...). */
  readonly note?: string;
}

export function judge(row: Row): Row {
  const target = row.target;
  if (!target) return row;
  const value = target.on === 'ratio' ? row.ratio?.median : target.on === 'floor' ? row.floorRatio?.median : row.pooled?.median;
  if (value === undefined || !Number.isFinite(value)) return row;
  const { value: goal, better, inclusive } = target;
  row.met = better === 'higher' ? (inclusive ? value >= goal : value > goal) : inclusive ? value <= goal : value < goal;
  return row;
}
