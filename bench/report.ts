import os from 'node:os';
import type { Sizes } from './context.js';
import type { Row } from './report-types.js';
import type { Summary } from './stats.js';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  memoryGiB: number;
  date: string;
  /** 1-minute load average at the start and at the end of the run: how busy the machine was. */
  loadStart: number;
  loadEnd?: number;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: (cpus[0]?.model ?? 'unknown').replace(/\s+/g, ' ').trim(),
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    date: new Date().toISOString(),
    loadStart: round(os.loadavg()[0]!, 2),
  };
}

export interface Skipped {
  transport: string;
  reason: string;
}

export interface Failure {
  transport: string;
  scenario: string;
  error: string;
}

export interface Timing {
  transport: string;
  scenario: string;
  seconds: number;
}

export interface Results {
  version: 1;
  mode: 'quick' | 'full';
  machine: Machine;
  sizes: Sizes;
  transports: string[];
  scenarios: string[];
  skipped: Skipped[];
  failures: Failure[];
  notes: string[];
  durationSeconds: number;
  /** Wall time of each measurement, to keep the run inside its time budget. */
  timings: Timing[];
  rows: Row[];
}

// ---- numbers ---------------------------------------------------------------

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function fmt(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '–';
  if (unit === 'KiB') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  if (unit === 'µs') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function spread(summary: Summary | undefined, unit: string): string {
  if (!summary || summary.n === 0) return '–';
  return `${fmt(summary.min, unit)} / ${fmt(summary.median, unit)} / ${fmt(summary.max, unit)}`;
}

function ratioCell(summary: Summary | undefined, target?: number): string {
  if (!summary || summary.n === 0 || !Number.isFinite(summary.median)) return '–';
  // Three digits where two would hide which side of its target a ratio is on (0.899 is not 0.90).
  const close = target !== undefined && Math.abs(summary.median - target) < 0.01;
  const digits = summary.median < 0.1 || close ? 3 : 2;
  return `${summary.median.toFixed(digits)} (${summary.min.toFixed(digits)}–${summary.max.toFixed(digits)})`;
}

function mark(row: Row): string {
  if (!row.target) return '';
  if (row.met === undefined) return '?';
  return row.met ? '✓' : '✗';
}

function targetCell(row: Row): string {
  if (!row.target) return '';
  return row.target.on === 'ratio' ? `ratio ${row.target.label}` : row.target.on === 'floor' ? `/floor ${row.target.label}` : row.target.label;
}

// ---- tables ------------------------------------------------------------------

const HEADER = ['transport', 'measurement', 'unit', 'raw min / med / max', 'pooled min / med / max', 'pooled/raw med (min–max)', 'floor min / med / max', 'pooled/floor med (min–max)', 'target', ''];

function cells(rows: Row[], noteIndex: Map<string, number>): string[][] {
  return rows.map((row) => [
    row.transport,
    `${row.metric}${row.note ? ` [${noteIndex.get(row.note)}]` : ''}`,
    row.unit,
    spread(row.raw, row.unit),
    spread(row.pooled, row.unit),
    ratioCell(row.ratio, row.target?.on === 'ratio' ? row.target.value : undefined),
    spread(row.floor, row.unit),
    ratioCell(row.floorRatio, row.target?.on === 'floor' ? row.target.value : undefined),
    targetCell(row),
    mark(row),
  ]);
}

function indexNotes(rows: Row[]): Map<string, number> {
  const index = new Map<string, number>();
  for (const row of rows) if (row.note && !index.has(row.note)) index.set(row.note, index.size + 1);
  return index;
}

function describeSizes(sizes: Sizes): string {
  const mib = sizes.bytes / 1024 ** 2;
  const bytes = mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`;
  const multi = sizes.multiBytes / 1024 ** 2;
  return (
    `${sizes.runs} runs each; throughput ${bytes} per single-stream run (c↔s: half each way), ${multi >= 1024 ? `${multi / 1024} GiB` : `${multi} MiB`} shared by ${sizes.streams} streams; ` +
    `${sizes.handoffs} hand-offs and ${sizes.rendezvous} rendezvous per run (rendezvous time-boxed to ${sizes.rendezvousSeconds} s); warm-up to ${sizes.idle} streams, then memory with them idle; ` +
    `hand-off rate ${sizes.rateSeconds} s at c=${sizes.rateConcurrency}, pool ${sizes.ratePool}`
  );
}

function header(results: Results): string[] {
  const m = results.machine;
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; ${m.date}; load average ${m.loadStart}${m.loadEnd !== undefined ? ` → ${m.loadEnd}` : ''}`,
    `Mode: ${results.mode === 'quick' ? 'QUICK (sizes scaled down: a smoke run, not a measurement to quote)' : 'full'}; ${describeSizes(results.sizes)}; ${results.durationSeconds.toFixed(0)} s`,
  ];
  for (const note of results.notes) lines.push(note);
  for (const skipped of results.skipped) lines.push(`Skipped ${skipped.transport}: ${skipped.reason}`);
  for (const failure of results.failures) lines.push(`FAILED ${failure.transport} ${failure.scenario}: ${failure.error.split('\n')[0]}`);
  return lines;
}

export function textTable(results: Results): string {
  const notes = indexNotes(results.rows);
  const body = cells(results.rows, notes);
  const widths = HEADER.map((title, column) => Math.max(width(title), ...body.map((row) => width(row[column]!))));
  const line = (row: string[]): string => row.map((cell, column) => pad(cell, widths[column]!, column >= 3 && column <= 7)).join('  ').trimEnd();
  const out = [...header(results), '', line(HEADER), widths.map((w) => '─'.repeat(w)).join('  ')];
  let previous = '';
  for (let i = 0; i < body.length; i++) {
    const row = results.rows[i]!;
    if (previous && row.transport !== previous) out.push('');
    previous = row.transport;
    out.push(line(body[i]!));
  }
  out.push('');
  for (const [note, n] of notes) out.push(`[${n}] ${note}`);
  out.push('Ratios are per run (pooled / raw of the same run: side by side in two processes for throughput, warm-up, memory and rate; one after the other, order alternating, for hand-off latency and the open-loop rows of the refilling and open-loop scenarios), then min / median / max. Targets are reported, not asserted.');
  return out.join('\n');
}

export function markdown(results: Results, svgName?: string): string {
  const notes = indexNotes(results.rows);
  const body = cells(results.rows, notes);
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const out = [`# Benchmark results (${results.mode === 'quick' ? 'quick smoke run' : 'full run'})`, ''];
  for (const line of header(results)) out.push(`${line}  `);
  out.push('');
  if (svgName) out.push(`![pooled / raw ratios](${svgName})`, '');
  out.push(`| ${HEADER.map((h) => h || 'ok').join(' | ')} |`);
  out.push(`|${HEADER.map((_, i) => (i >= 3 && i <= 7 ? '---:' : '---')).join('|')}|`);
  for (const row of body) out.push(`| ${row.map(escape).join(' | ')} |`);
  out.push('');
  for (const [note, n] of notes) out.push(`${n}. ${note}`);
  out.push('');
  out.push('Ratios are per run (pooled / raw of the same run: measured side by side in two processes for throughput, warm-up, memory and rate; one after the other, order alternating, for hand-off latency and the open-loop rows of the refilling and open-loop scenarios), then min / median / max over the runs; a target is judged on the median. Targets are reported, not asserted. Produced by `npm run bench` (see `bench/README.md`).');
  return `${out.join('\n')}\n`;
}

function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, size - width(text)));
  return right ? fill + text : text + fill;
}

// ---- chart ---------------------------------------------------------------------

interface Bar {
  label: string;
  value: number;
  min: number;
  max: number;
  /** Where the target line goes (same scale as value); none when the row has no target. */
  target?: number;
  met?: boolean;
  text: string;
}

interface Section {
  title: string;
  bars: Bar[];
  /** A reference line drawn when bars carry no target of their own. */
  reference?: number;
}

/** The chart shows the two ratios the README talks about; the rest is in the table. */
function sections(rows: Row[]): Section[] {
  const throughput: Bar[] = [];
  const latency: Bar[] = [];
  for (const row of rows) {
    const ratio = row.ratio;
    const label = `${row.transport} · ${row.metric}`;
    if (row.scenario === 'throughput' && (!ratio || ratio.n === 0)) {
      // No paired run completed (a stalled transport): an empty red bar says so.
      const why = row.note?.includes('STALLED') ? 'stalled (see table)' : 'no completed run';
      throughput.push({ label, value: 0, min: 0, max: 0, target: row.target?.value, met: false, text: why });
      continue;
    }
    if (!ratio || ratio.n === 0 || !row.pooled || !row.raw) continue;
    const versus = `(${fmt(row.pooled.median, row.unit)} vs ${fmt(row.raw.median, row.unit)} ${row.unit})`;
    if (row.scenario === 'throughput') {
      throughput.push({ label, value: ratio.median, min: ratio.min, max: ratio.max, target: row.target?.value, met: row.met, text: `${ratio.median.toFixed(2)}  ${versus}` });
    } else if (row.scenario === 'handoff') {
      latency.push({ label, value: ratio.median, min: ratio.min, max: ratio.max, text: `${ratio.median.toFixed(2)}  ${versus}` });
    }
  }
  return [
    { title: 'Throughput, pooled / raw (higher is better; dashed mark = target)', bars: throughput },
    { title: 'Hand-off latency, pooled / raw dial-on-demand (lower is better; dashed mark = 1)', bars: latency, reference: 1 },
  ].filter((section) => section.bars.length > 0);
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Horizontal bars of the ratios, whiskers for min–max over runs, the target as a vertical mark per bar. */
export function svg(results: Results): string {
  const LABEL = 250;
  const PLOT = 380;
  const TEXT = 210;
  const ROW = 17;
  const WIDTH = LABEL + PLOT + TEXT + 20;
  const parts: string[] = [];
  let y = 44;
  for (const section of sections(results.rows)) {
    // Scaled to the medians and targets; a whisker past the edge is cut (and marked).
    const top = Math.max(...section.bars.map((bar) => Math.max(bar.value, bar.target ?? 0)), section.reference ?? 0);
    const scale = Math.min(4, Math.max(1.2, Math.ceil(top * 1.25 * 10) / 10));
    const x = (value: number): number => LABEL + (Math.min(Math.max(value, 0), scale) / scale) * PLOT;
    parts.push(`<text x="10" y="${y}" class="h">${xml(section.title)}</text>`);
    y += 8;
    const sectionTop = y;
    for (const tick of [0, 0.5, 1, 1.5, 2, 3, 4].filter((t) => t <= scale)) {
      parts.push(`<line x1="${x(tick)}" y1="${sectionTop}" x2="${x(tick)}" y2="${sectionTop + section.bars.length * ROW}" class="grid"/>`);
    }
    for (const bar of section.bars) {
      const mid = y + ROW / 2;
      const colour = bar.met === undefined ? 'n' : bar.met ? 'ok' : 'bad';
      parts.push(`<text x="${LABEL - 6}" y="${mid + 4}" class="l">${xml(bar.label)}</text>`);
      parts.push(`<rect x="${LABEL}" y="${y + 3}" width="${Math.max(1, x(bar.value) - LABEL).toFixed(1)}" height="${ROW - 6}" class="${colour}"/>`);
      parts.push(`<line x1="${x(bar.min).toFixed(1)}" y1="${mid}" x2="${x(bar.max).toFixed(1)}" y2="${mid}" class="w"/>`);
      const line = bar.target ?? section.reference;
      if (line !== undefined) parts.push(`<line x1="${x(line).toFixed(1)}" y1="${y + 1}" x2="${x(line).toFixed(1)}" y2="${y + ROW - 1}" class="t"/>`);
      if (Math.max(bar.value, bar.max) > scale) parts.push(`<text x="${LABEL + PLOT + 2}" y="${mid + 4}" class="l2">›</text>`);
      parts.push(`<text x="${LABEL + PLOT + 10}" y="${mid + 4}" class="v">${xml(bar.text)}</text>`);
      y += ROW;
    }
    for (const tick of [0, 0.5, 1, 1.5, 2, 3, 4].filter((t) => t <= scale)) {
      parts.push(`<text x="${x(tick)}" y="${y + 11}" class="tick">${tick}</text>`);
    }
    y += 30;
  }
  const m = results.machine;
  const title = `nestjs-tunnel-pool bench (${results.mode}) · ${m.cpu}, ${m.cores} cores, Node ${m.node} · ${m.date.slice(0, 10)}`;
  const height = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">`,
    '<style>.h{font-weight:600;font-size:12px}.l{text-anchor:end;fill:#222}.l2{fill:#222}.v{fill:#444}.tick{text-anchor:middle;fill:#777;font-size:10px}',
    '.grid{stroke:#e4e4e4}.ok{fill:#3a9a5b}.bad{fill:#d0493f}.n{fill:#7b8fa6}.w{stroke:#222;stroke-width:1}.t{stroke:#111;stroke-width:2;stroke-dasharray:3 1}</style>',
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" class="h">${xml(title)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

export function json(results: Results): string {
  return `${JSON.stringify(results, (_key, value: unknown) => (typeof value === 'number' && !Number.isInteger(value) ? round(value, 4) : value), 2)}\n`;
}
