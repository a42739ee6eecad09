/**
 * Draws docs/grafana/dashboard.svg: the panels of the Grafana dashboard
 * (docs/grafana/nestjs-tunnel-pool.json) from a real run, without Grafana.
 *
 *   npm run render:dashboard [-- --seconds 45 --out docs/grafana/dashboard.svg]
 *
 * It starts real pool pairs on 127.0.0.1 (tcp; TLS with shared-key
 * authentication; http2) and a tunnel (tcp with a key; a reverse route to
 * an echo target, one to a target that refuses), registers their metrics
 * in a prom-client registry, drives traffic (steady hand-offs, a burst,
 * strangers from 127.0.0.2 the server's address list refuses, a client with
 * a wrong key; tunnelled connections, one long-lived and streaming),
 * scrapes the registry's exposition text every second, and evaluates each
 * panel's PromQL over those scrapes itself. The evaluator knows only the
 * forms the dashboard uses (an instant selector, `rate(m[$__rate_interval])`,
 * `sum`/`max by (...)`, `histogram_quantile`) and stops with an error on
 * any other, so the picture cannot drift from the dashboard silently.
 * `$__rate_interval` is 5 s here (scrapes every second); the variables
 * `$pool`, `$role`, `$transport` are "All".
 */
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Registry } from 'prom-client';
import type { Duplex } from 'node:stream';
import { createSelfSignedCertificate } from '../lib/certs/index.js';
import { registerPoolMetrics } from '../lib/metrics/pool-metrics.js';
import { registerTunnelMetrics } from '../lib/metrics/tunnel-metrics.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../lib/pool-factory.js';
import { TunnelClient } from '../lib/tunnel/tunnel-client.js';
import { TunnelServer } from '../lib/tunnel/tunnel-server.js';

type Labels = Record<string, string>;
interface Sample { name: string; labels: Labels; value: number }
type Vector = Map<string, { labels: Labels; value: number }>;
interface Target { expr: string; legendFormat?: string }
interface Panel { type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Target[]; fieldConfig?: { defaults?: { unit?: string } } }

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && args[at + 1] ? args[at + 1]! : fallback;
};
const SECONDS = Math.min(300, Math.max(15, Number(arg('seconds', '45'))));
const OUT = arg('out', new URL('../../docs/grafana/dashboard.svg', import.meta.url).pathname);
const DASHBOARD = new URL('../../docs/grafana/nestjs-tunnel-pool.json', import.meta.url);
const RATE_WINDOW = 5;

// ---- scrapes -------------------------------------------------------------

function parseScrape(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Labels = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    out.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return out;
}

const keyOf = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));

// ---- the PromQL subset -----------------------------------------------------

/** A selector's matchers; those with the "All" value of a variable (=~"$x") match everything. */
function matchers(selector: string | undefined): Array<(labels: Labels) => boolean> {
  const out: Array<(labels: Labels) => boolean> = [];
  for (const [, label, op, value] of (selector ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
    if (op === '=~' && /^\$\w+$/.test(value!)) continue;
    if (op === '=') out.push((l) => (l[label!] ?? '') === value);
    else if (op === '!=') out.push((l) => (l[label!] ?? '') !== value);
    else {
      const re = new RegExp(`^(?:${value})$`);
      out.push((l) => re.test(l[label!] ?? '') === (op === '=~'));
    }
  }
  return out;
}

function select(scrape: Sample[], name: string, selector: string | undefined): Vector {
  const tests = matchers(selector);
  const out: Vector = new Map();
  for (const s of scrape) if (s.name === name && tests.every((t) => t(s.labels))) out.set(keyOf(s.labels), { labels: s.labels, value: s.value });
  return out;
}

/** Evaluates `expr` at scrape `i` of `scrapes` (taken one second apart). */
function evaluate(expr: string, scrapes: Sample[][], i: number): Vector {
  expr = expr.trim();
  let m = /^histogram_quantile\(([\d.]+),\s*(.*)\)$/s.exec(expr);
  if (m) return quantile(Number(m[1]), evaluate(m[2]!, scrapes, i));
  m = /^(sum|max) by \(([^)]*)\) \((.*)\)$/s.exec(expr);
  if (m) return aggregate(m[1] as 'sum' | 'max', m[2]!.split(',').map((l) => l.trim()).filter(Boolean), evaluate(m[3]!, scrapes, i));
  m = /^rate\((\w+)(\{[^}]*\})?\[\$__rate_interval\]\)$/.exec(expr);
  if (m) {
    const from = Math.max(0, i - RATE_WINDOW);
    const out: Vector = new Map();
    if (from === i) return out;
    const before = select(scrapes[from]!, m[1]!, m[2]);
    for (const [key, now] of select(scrapes[i]!, m[1]!, m[2])) {
      const then = before.get(key)?.value ?? 0;
      // A counter that went down was reset: count from 0.
      out.set(key, { labels: now.labels, value: (now.value >= then ? now.value - then : now.value) / (i - from) });
    }
    return out;
  }
  m = /^(\w+)(\{[^}]*\})?$/.exec(expr);
  if (m) return select(scrapes[i]!, m[1]!, m[2]);
  throw new Error(`render-dashboard: no evaluator for the expression form ${JSON.stringify(expr)}; teach scripts/render-dashboard.ts`);
}

function aggregate(op: 'sum' | 'max', by: string[], input: Vector): Vector {
  const out: Vector = new Map();
  for (const { labels, value } of input.values()) {
    const kept: Labels = {};
    for (const l of by) if (labels[l] !== undefined) kept[l] = labels[l]!;
    const key = keyOf(kept);
    const had = out.get(key);
    out.set(key, { labels: kept, value: had === undefined ? value : op === 'sum' ? had.value + value : Math.max(had.value, value) });
  }
  return out;
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket the rank falls in. */
function quantile(q: number, buckets: Vector): Vector {
  const groups = new Map<string, { labels: Labels; points: Array<[number, number]> }>();
  for (const { labels, value } of buckets.values()) {
    const { le, ...rest } = labels;
    if (le === undefined) continue;
    const key = keyOf(rest);
    const group = groups.get(key) ?? { labels: rest, points: [] };
    group.points.push([le === '+Inf' ? Infinity : Number(le), value]);
    groups.set(key, group);
  }
  const out: Vector = new Map();
  for (const [key, { labels, points }] of groups) {
    points.sort((a, b) => a[0] - b[0]);
    const total = points[points.length - 1]?.[1] ?? 0;
    if (!(total > 0)) continue;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const [upper, count] of points) {
      if (count >= rank) {
        const value = upper === Infinity ? lower : lower + (upper - lower) * ((rank - below) / (count - below || 1));
        out.set(key, { labels, value });
        break;
      }
      lower = upper;
      below = count;
    }
  }
  return out;
}

// ---- the run ---------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = (stream: Duplex): Duplex => stream.on('error', () => undefined);

interface Pair { name: string; server: ReturnType<typeof createServerPool>; client: ReturnType<typeof createClientPool> }

async function pair(name: string, server: Record<string, unknown>, client: Record<string, unknown>): Promise<Pair> {
  const s = createServerPool({ name, host: '127.0.0.1', port: 0, maxCap: 16, ...server } as ServerPoolConfig);
  await s.start();
  const c = createClientPool({ name, address: `127.0.0.1:${s.address()!.port}`, minIvl: 50, maxIvl: 200, minCap: 4, maxCap: 8, ...client } as ClientPoolConfig);
  c.start();
  return { name, server: s, client: c };
}

/** One hand-off: the server takes a stream, the client takes the same ID, a few bytes go through, both close. */
async function handOff(p: Pair): Promise<void> {
  const [id, serverStream] = await p.server.incomingGet(10_000);
  quiet(serverStream);
  let clientStream: Duplex | undefined;
  try {
    clientStream = quiet(await p.client.outgoingGet(id, 10_000));
    const done = new Promise<void>((resolve) => {
      serverStream.once('data', () => resolve());
      setTimeout(resolve, 2_000).unref();
    });
    clientStream.write(Buffer.from('hello through the tunnel\n'));
    await done;
  } finally {
    clientStream?.destroy();
    serverStream.destroy();
  }
}

/** A connection from 127.0.0.2, which the server's address list refuses. */
function stranger(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => socket.destroy());
  });
}

interface Tunnel { server: TunnelServer; client: TunnelClient; echo: net.Server; ports: { web: number; down: number }; close(): Promise<void> }

/** A tunnel over tcp with a key: route `web` to an echo target, route `down` to a port nothing listens on. */
async function tunnel(secret: string): Promise<Tunnel> {
  const echo = net.createServer((socket) => quiet(socket).pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const free = async (): Promise<number> => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return port;
  };
  const ports = { web: await free(), down: await free() };
  const nowhere = await free();
  const serverPool = createServerPool({ name: 'tunnel', host: '127.0.0.1', port: 0, maxCap: 32, auth: { key: [{ id: 'site', key: secret }] } } as ServerPoolConfig);
  const server = new TunnelServer({ pool: serverPool, allow: { rules: [{ clients: 'key:site', names: ['web', 'down'], directions: ['reverse'], ports: [ports.web, ports.down] }] }, control: { pingInterval: 1_000 } });
  await server.start();
  const clientPool = createClientPool({ name: 'tunnel', address: `127.0.0.1:${serverPool.address()!.port}`, auth: { key: secret }, minIvl: 50, maxIvl: 200, minCap: 8, maxCap: 16 } as ClientPoolConfig);
  const client = new TunnelClient({
    pool: clientPool,
    routes: [
      { name: 'web', serverPort: ports.web, target: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` },
      { name: 'down', serverPort: ports.down, target: `127.0.0.1:${nowhere}` },
    ],
    control: { pingInterval: 1_000 },
  });
  await client.start();
  return {
    server,
    client,
    echo,
    ports,
    async close() {
      await client.close();
      await server.close();
      await clientPool.close();
      await serverPool.close();
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    },
  };
}

/** A short tunnelled connection: some bytes out, the echo back, a FIN (or a reset from a refusing target). */
function tunnelConnection(port: number, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let back = 0;
    socket.on('data', (chunk: Buffer) => {
      back += chunk.length;
      if (back >= bytes) socket.end();
    });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => socket.destroy());
    socket.write(Buffer.alloc(bytes, 7));
  });
}

async function run(): Promise<{ scrapes: Sample[][]; started: Date }> {
  const { key, cert } = createSelfSignedCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  const secret = 'render-dashboard-key-7Hq2Lm9Zx4Vb';
  const pairs = [
    await pair('plain', { allowedIps: ['127.0.0.1'] }, {}),
    await pair('secure', { tls: { key, cert }, auth: { key: [{ id: 'app', key: secret }] } }, { tls: '1', auth: { key: secret } }),
    await pair('mux', { transport: 'http2', tls: { key, cert } }, { transport: 'http2', tls: '1', keepAlive: 1_000 }),
  ];
  const securePort = pairs[1]!.server.address()!.port;
  const intruder = createClientPool({ name: 'intruder', address: `127.0.0.1:${securePort}`, tls: '1', auth: { key: 'a-wrong-key-0000000000000000000000' }, minIvl: 200, maxIvl: 400, maxBackoff: 1_000, minCap: 2, maxCap: 2 } as ClientPoolConfig);
  const tun = await tunnel(secret);
  const registry = new Registry();
  const dispose = registerPoolMetrics(registry, [...pairs.flatMap((p) => [p.client, p.server]), intruder, tun.server.pool, tun.client.pool]);
  const disposeTunnel = registerTunnelMetrics(registry, [tun.server, tun.client]);
  // One long-lived tunnelled connection streaming all along: its bytes move in the scrapes while it is open.
  const longLived = quiet(net.connect(tun.ports.web, '127.0.0.1'));
  longLived.resume();
  const started = new Date();
  const scrapes: Sample[][] = [];
  const pending = new Set<Promise<void>>();
  const spawn = (work: Promise<void>): void => {
    const tracked = work.catch(() => undefined).finally(() => pending.delete(tracked));
    pending.add(tracked);
  };
  try {
    for (let second = 0; second <= SECONDS; second++) {
      scrapes.push(parseScrape(await registry.metrics()));
      if (second === SECONDS) break;
      const phase = second / SECONDS;
      // A burst a third of the way in: more takes at once than the pools hold idle.
      if (second === Math.round(SECONDS / 3)) for (const p of pairs) for (let k = 0; k < 40; k++) spawn(handOff(p));
      // Strangers a little later, then the wrong-key client for a while.
      if (phase >= 0.45 && phase < 0.55) for (let k = 0; k < 3; k++) spawn(stranger(pairs[0]!.server.address()!.port));
      if (second === Math.round(SECONDS * 0.6)) intruder.start();
      if (second === Math.round(SECONDS * 0.75)) spawn(intruder.close());
      // The idle streams of one client flushed near the end: drops by reason `flush`, and the refill.
      if (second === Math.round(SECONDS * 0.85)) pairs[0]!.client.flush();
      // The long-lived connection streams more in the middle third; a refused target every third second.
      longLived.write(Buffer.alloc(phase > 0.33 && phase < 0.66 ? 256 << 10 : 32 << 10, 1));
      if (second % 3 === 0) spawn(tunnelConnection(tun.ports.down, 16));
      // Steady hand-offs: five a second per pair, spread over the second, and as many tunnelled connections.
      const tick = Date.now();
      for (let k = 0; k < 5; k++) {
        for (const p of pairs) spawn(handOff(p));
        spawn(tunnelConnection(tun.ports.web, 4096));
        await sleep(Math.max(0, tick + (k + 1) * 200 - Date.now()));
      }
      process.stdout.write(`\rrender-dashboard: ${second + 1}/${SECONDS} s`);
    }
    process.stdout.write('\n');
  } finally {
    await Promise.race([Promise.all(pending), sleep(15_000)]);
    longLived.destroy();
    disposeTunnel();
    dispose();
    await tun.close();
    await intruder.close();
    await Promise.all(pairs.map(async (p) => {
      await p.client.close();
      await p.server.close();
    }));
  }
  return { scrapes, started };
}

// ---- drawing ---------------------------------------------------------------

const PALETTE = ['#73BF69', '#F2CC0C', '#8AB8FF', '#FF780A', '#F2495C', '#B877D9', '#5794F2', '#FADE2A', '#96D98D', '#FF9830', '#CA95E5', '#FFB357'];
const THEME = { background: '#111217', panel: '#181b1f', border: '#2c3235', text: '#d8d9da', muted: '#8e8e8e', grid: '#2c3235', row: '#ccccdc' };
const UNIT_PX = 60;
const PAD = 16;
const CHART_H = 150;
const LEGEND_LINE = 16;

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function formatValue(value: number, unit: string): string {
  const trim = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
  if (unit === 's') {
    if (value === 0) return '0';
    if (value < 1e-3) return `${trim(value * 1e6)} µs`;
    if (value < 1) return `${trim(value * 1e3)} ms`;
    return `${trim(value)} s`;
  }
  if (unit === 'ops') return `${trim(value)}/s`;
  if (unit === 'Bps') {
    if (value >= 1 << 20) return `${trim(value / (1 << 20))} MiB/s`;
    if (value >= 1 << 10) return `${trim(value / (1 << 10))} KiB/s`;
    return `${trim(value)} B/s`;
  }
  return trim(value);
}

function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

interface Line { name: string; points: Array<number | undefined> }

function panelLines(panel: Panel, scrapes: Sample[][]): Line[] {
  const lines = new Map<string, Line>();
  for (const target of panel.targets ?? []) {
    for (let i = 0; i < scrapes.length; i++) {
      for (const { labels, value } of evaluate(target.expr, scrapes, i).values()) {
        const name = (target.legendFormat ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l: string) => labels[l] ?? '') || keyOf(labels);
        const line = lines.get(name) ?? { name, points: new Array<number | undefined>(scrapes.length).fill(undefined) };
        line.points[i] = Number.isFinite(value) ? value : undefined;
        lines.set(name, line);
      }
    }
  }
  return [...lines.values()];
}

function legendRows(lines: Line[], width: number): Array<Array<{ line: Line; x: number; color: string }>> {
  const rows: Array<Array<{ line: Line; x: number; color: string }>> = [[]];
  let x = 0;
  lines.forEach((line, index) => {
    const w = 22 + line.name.length * 6.4 + 12;
    if (x + w > width && x > 0) {
      rows.push([]);
      x = 0;
    }
    rows[rows.length - 1]!.push({ line, x, color: PALETTE[index % PALETTE.length]! });
    x += w;
  });
  return rows;
}

function drawPanel(panel: Panel, lines: Line[], x: number, y: number, w: number, h: number, seconds: number): string {
  const unit = panel.fieldConfig?.defaults?.unit ?? 'none';
  const left = x + 64;
  const right = x + w - 12;
  const top = y + 34;
  const bottom = top + CHART_H;
  const max = niceMax(Math.max(0, ...lines.flatMap((l) => l.points.filter((p): p is number => p !== undefined))));
  const out: string[] = [];
  out.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="4" fill="${THEME.panel}" stroke="${THEME.border}"/>`);
  out.push(`<text x="${x + 10}" y="${y + 20}" font-size="13" font-weight="600" fill="${THEME.text}">${escape(panel.title)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    const gy = bottom - (CHART_H * k) / 4;
    out.push(`<line x1="${left}" x2="${right}" y1="${gy}" y2="${gy}" stroke="${THEME.grid}"/>`);
    out.push(`<text x="${left - 6}" y="${gy + 4}" font-size="10" text-anchor="end" fill="${THEME.muted}">${escape(formatValue(v, unit))}</text>`);
  }
  const xs = (i: number): number => left + ((right - left) * i) / Math.max(1, seconds);
  const tickStep = seconds > 40 ? 10 : 5;
  for (let t = 0; t <= seconds; t += tickStep) out.push(`<text x="${xs(t)}" y="${bottom + 14}" font-size="10" text-anchor="middle" fill="${THEME.muted}">${t}s</text>`);
  lines.forEach((line, index) => {
    const color = PALETTE[index % PALETTE.length]!;
    const segments: string[] = [];
    let current = '';
    line.points.forEach((p, i) => {
      if (p === undefined) {
        if (current) segments.push(current);
        current = '';
        return;
      }
      current += `${current ? 'L' : 'M'}${xs(i).toFixed(1)},${(bottom - (CHART_H * p) / max).toFixed(1)}`;
    });
    if (current) segments.push(current);
    for (const d of segments) out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
  });
  if (lines.length === 0) out.push(`<text x="${(left + right) / 2}" y="${(top + bottom) / 2}" font-size="12" text-anchor="middle" fill="${THEME.muted}">No data</text>`);
  legendRows(lines, w - 20).forEach((row, r) => {
    const ly = bottom + 32 + r * LEGEND_LINE;
    for (const { line, x: lx, color } of row) {
      out.push(`<rect x="${x + 10 + lx}" y="${ly - 4}" width="14" height="3" fill="${color}"/>`);
      out.push(`<text x="${x + 10 + lx + 20}" y="${ly}" font-size="10.5" fill="${THEME.text}">${escape(line.name)}</text>`);
    }
  });
  return out.join('\n');
}

function render(panels: Panel[], scrapes: Sample[][], caption: string): string {
  const seconds = scrapes.length - 1;
  const width = 24 * UNIT_PX + 2 * PAD;
  const body: string[] = [];
  let y = PAD + 30;
  body.push(`<text x="${PAD}" y="${PAD + 16}" font-size="18" font-weight="600" fill="${THEME.text}">nestjs-tunnel-pool</text>`);
  // Grafana's grid rows (one y each): a row header, or panels side by side, as tall as the tallest legend needs.
  const byY = new Map<number, Panel[]>();
  for (const panel of panels) byY.set(panel.gridPos.y, [...(byY.get(panel.gridPos.y) ?? []), panel]);
  for (const y0 of [...byY.keys()].sort((a, b) => a - b)) {
    const group = byY.get(y0)!;
    if (group[0]!.type === 'row') {
      body.push(`<text x="${PAD}" y="${y + 18}" font-size="15" font-weight="600" fill="${THEME.row}">${escape(group[0]!.title)}</text>`);
      y += 28;
      continue;
    }
    const drawn = group.map((panel) => {
      const w = panel.gridPos.w * UNIT_PX - 8;
      const lines = panelLines(panel, scrapes);
      return { panel, lines, w, h: 34 + CHART_H + 30 + legendRows(lines, w - 20).length * LEGEND_LINE + 6 };
    });
    const h = Math.max(...drawn.map((d) => d.h));
    for (const d of drawn) body.push(drawPanel(d.panel, d.lines, PAD + d.panel.gridPos.x * UNIT_PX, y, d.w, h, seconds));
    y += h + 8;
  }
  body.push(`<text x="${PAD}" y="${y + 16}" font-size="11" font-style="italic" fill="${THEME.muted}">${escape(caption)}</text>`);
  const height = y + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Inter, Helvetica, Arial, sans-serif" role="img" aria-label="nestjs-tunnel-pool dashboard, drawn from a real run">`,
    `<rect width="${width}" height="${height}" fill="${THEME.background}"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const { scrapes, started } = await run();
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  const caption = `Drawn by scripts/render-dashboard.ts from a real run on ${started.toISOString().slice(0, 10)} (${SECONDS} s on 127.0.0.1), ` +
    `${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.platform()}; not a Grafana screenshot.`;
  writeFileSync(OUT, render(dashboard.panels, scrapes, caption));
  console.log(`render-dashboard: wrote ${OUT}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
