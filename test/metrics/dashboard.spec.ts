/**
 * Keeps docs/grafana/nestjs-tunnel-pool.json honest: every metric a panel's
 * expression (or a template variable) names must exist in a real scrape of
 * running pools and a tunnel, with every label the expression selects, groups by or
 * shows in its legend. Renaming a metric or a label without updating the
 * dashboard fails here.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Registry } from 'prom-client';
import { registerPoolMetrics } from '../../lib/metrics/pool-metrics.js';
import { registerTunnelMetrics } from '../../lib/metrics/tunnel-metrics.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { kindSpec } from '../support/kinds.js';
import { eventually, freePorts } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { get, httpTarget, startTunnelClient, startTunnelServer } from '../tunnel/tunnel-harness.js';
import { labelSets } from './scrape.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);

interface Target { expr: string; legendFormat?: string }
interface Panel { type: string; title: string; targets?: Target[]; panels?: Panel[] }
interface Dashboard { panels: Panel[]; templating: { list: Array<{ name: string; type: string; definition?: string }> } }

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana/nestjs-tunnel-pool.json', import.meta.url), 'utf8')) as Dashboard;

/** What one expression needs from the scrape: each metric series it names, and the labels it uses on it. */
function requirements(expr: string, legendFormat = ''): Map<string, Set<string>> {
  const needs = new Map<string, Set<string>>();
  // Labels grouped by or shown in the legend apply to every metric of the expression (they must survive the aggregation).
  const shared = new Set<string>();
  for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const label of list!.split(',')) if (label.trim()) shared.add(label.trim());
  for (const [, label] of legendFormat.matchAll(/\{\{\s*(\w+)\s*\}\}/g)) shared.add(label!);
  for (const [, name, selector] of expr.matchAll(/\b(tunnel_pool_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?/g)) {
    const labels = needs.get(name!) ?? new Set<string>();
    for (const [, label] of (selector ?? '').matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) labels.add(label!);
    for (const label of shared) labels.add(label);
    needs.set(name!, labels);
  }
  return needs;
}

/** Every panel (rows' nested panels too) with its expressions. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

/** The metric → labels needs of the whole dashboard, with where each came from. */
function dashboardNeeds(d: Dashboard): Array<{ where: string; metric: string; labels: Set<string> }> {
  const out: Array<{ where: string; metric: string; labels: Set<string> }> = [];
  for (const panel of allPanels(d.panels)) {
    for (const target of panel.targets ?? []) {
      for (const [metric, labels] of requirements(target.expr, target.legendFormat)) out.push({ where: `panel "${panel.title}"`, metric, labels });
    }
  }
  for (const variable of d.templating.list) {
    const match = /label_values\((\w+),\s*(\w+)\)/.exec(variable.definition ?? '');
    if (match) out.push({ where: `variable ${variable.name}`, metric: match[1]!, labels: new Set([match[2]!]) });
  }
  return out;
}

/** What the scrape lacks for the dashboard: one line per metric or label missing. */
function missing(d: Dashboard, text: string): string[] {
  const problems: string[] = [];
  for (const { where, metric, labels } of dashboardNeeds(d)) {
    const sets = labelSets(text, metric);
    if (sets.length === 0) {
      problems.push(`${where}: ${metric} is not in the scrape`);
      continue;
    }
    for (const label of labels) {
      if (!sets.some((set) => label in set)) problems.push(`${where}: ${metric} has no label ${label}`);
    }
  }
  return problems;
}

/** A connection that sends bytes no TLS server takes: a refusal for reason `tls`. */
function junk(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('not a ClientHello\r\n\r\n'));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('the Grafana dashboard (docs/grafana/nestjs-tunnel-pool.json)', () => {
  it('is a dashboard with a Prometheus data source input and the pool, role and transport variables', () => {
    const names = dashboard.templating.list.map((v) => v.name);
    expect(names).toEqual(expect.arrayContaining(['datasource', 'pool', 'role', 'transport']));
    const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual(['Overview', 'Hand-off', 'Dials and handshakes', 'http2 sessions', 'Tunnel']);
    const exprs = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(15);
    // Every query is filtered by the three variables.
    for (const expr of exprs) expect(expr).toContain('pool=~"$pool", role=~"$role", transport=~"$transport"');
  });

  it('reads what it needs from the expressions, so a renamed metric or label is caught', () => {
    const needs = requirements('histogram_quantile(0.5, sum by (pool, le) (rate(tunnel_pool_dial_duration_seconds_bucket{outcome="ok"}[5m])))', '{{pool}} {{role}}');
    expect([...needs.keys()]).toEqual(['tunnel_pool_dial_duration_seconds_bucket']);
    expect([...needs.get('tunnel_pool_dial_duration_seconds_bucket')!].sort()).toEqual(['le', 'outcome', 'pool', 'role']);
    const scrape = 'tunnel_pool_up{pool="a",role="client",transport="tcp"} 1\n';
    const renamed: Dashboard = { panels: [{ type: 'timeseries', title: 'x', targets: [{ expr: 'tunnel_pool_ready{pool="a"}' }] }], templating: { list: [] } };
    expect(missing(renamed, scrape)).toEqual(['panel "x": tunnel_pool_ready is not in the scrape']);
    const relabelled: Dashboard = { panels: [{ type: 'timeseries', title: 'y', targets: [{ expr: 'sum by (name) (tunnel_pool_up)' }] }], templating: { list: [] } };
    expect(missing(relabelled, scrape)).toEqual(['panel "y": tunnel_pool_up has no label name']);
  });

  it('uses only metrics and labels a real scrape of tcp, TLS and http2 pools and a tunnel with traffic has', async () => {
    const registry = new Registry();
    const live: Array<{ readonly stats: import('../../lib/core/stats.js').PoolStats }> = [];
    scope.defer(registerPoolMetrics(registry, () => live));

    const tcp = await pair({ name: 'plain' }, { name: 'plain', minCap: 2, maxCap: 2 });
    const tls = kindSpec('tls');
    const secure = await pair({ ...tls.server, name: 'secure' }, { ...tls.client, name: 'secure', minCap: 2, maxCap: 2 });
    const h2 = kindSpec('http2');
    const mux = await pair({ ...h2.server, name: 'mux' }, { ...h2.client, name: 'mux', minCap: 2, maxCap: 2, keepAlive: 100 });
    // A client whose dials all fail: nothing listens at its address.
    const [closedPort] = await freePorts(1);
    const nowhere = createClientPool({ name: 'nowhere', address: `127.0.0.1:${closedPort}`, minIvl: 50, maxIvl: 50, maxBackoff: 100 });
    scope.defer(() => nowhere.close());
    live.push(tcp.client, tcp.server, secure.client, secure.server, mux.client, mux.server, nowhere);
    nowhere.start();

    // Streams made before the histograms listened are flushed (drops by reason `flush`); their refill is observed.
    for (const p of [tcp, secure, mux]) await p.client.waitForActive(2, 15_000);
    for (const p of [tcp, secure, mux]) p.client.flush();
    for (const p of [tcp, secure, mux]) await p.client.waitForActive(2, 15_000);
    await junk(secure.port);
    await eventually(() => (secure.server.stats.refusals['tls'] ?? 0) >= 1, 15_000, 'the junk refused');
    await eventually(() => (nowhere.stats.failures['POOL_ERR_DIAL'] ?? 0) >= 1, 15_000, 'a failed dial');
    // Hand-offs on every pair, both sides.
    for (const p of [tcp, secure, mux]) {
      for (let i = 0; i < 2; i++) {
        const [id, serverStream] = await p.server.incomingGet(15_000);
        scope.track(serverStream);
        scope.track(await p.client.outgoingGet(id, 15_000));
      }
    }
    await eventually(() => (mux.client.stats.transportStats)['lastPingRttMs'] != null, 15_000, 'an http2 ping measured');

    // A tunnel: a reverse route carrying a request, one whose target refuses, control channels with an RTT.
    const [webPort, downPort, nowherePort] = await freePorts(3);
    const tunnelServer = await startTunnelServer(scope, [{ clients: 'key:site-a', names: ['web', 'down'], directions: ['reverse'], ports: [webPort!, downPort!] }], 'tcp', { control: { pingInterval: 100 } });
    const target = await httpTarget(scope, 'dashboard');
    const tunnelClient = startTunnelClient(scope, tunnelServer, 'site-a', [
      { name: 'web', serverPort: webPort, target: `127.0.0.1:${target}` },
      { name: 'down', serverPort: downPort, target: `127.0.0.1:${nowherePort}` },
    ], { control: { pingInterval: 100 } });
    await tunnelClient.start();
    scope.defer(registerTunnelMetrics(registry, [tunnelServer, tunnelClient]));
    live.push(tunnelServer.pool, tunnelClient.pool);
    expect((await get(webPort!, '/')).status).toBe(200);
    await get(downPort!, '/').catch(() => undefined);
    await eventually(() => Object.keys(tunnelServer.stats.routes['down']?.failures ?? {}).length > 0, 15_000, 'a tunnel failure');
    await eventually(() => tunnelClient.controlRtt !== undefined && tunnelServer.controlRttOf('key:site-a') !== undefined, 15_000, 'control RTTs');

    const text = await registry.metrics();
    expect(missing(dashboard, text)).toEqual([]);
  }, 60_000);
});
