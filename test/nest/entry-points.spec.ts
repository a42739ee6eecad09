import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as core from '../../lib/core-entry.js';
import * as main from '../../lib/index.js';
import * as health from '../../lib/nest/health/index.js';
import * as metrics from '../../lib/metrics/index.js';
import * as tunnel from '../../lib/tunnel-entry.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Every module a source file loads at run time, following relative imports (type-only imports load nothing). */
function runtimeGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    const statements = source.match(/^(?:import|export)\s[^;]*?\sfrom\s+'[^']+'|^import\s+'[^']+'/gms) ?? [];
    for (const statement of statements) {
      if (/^(?:import|export)\s+type\s/.test(statement)) continue;
      const specifier = /'([^']+)'$/.exec(statement)![1]!;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
    }
  };
  visit(resolve(root, entry));
  return { files, packages };
}

describe('entry points', () => {
  it('the main entry never loads Terminus nor the health folder', () => {
    const { files, packages } = runtimeGraph('lib/index.ts');
    expect(files).toContain(resolve(root, 'lib/nest/pool.module.ts'));
    expect([...files].filter((file) => file.includes('/lib/nest/health/'))).toEqual([]);
    expect(packages).not.toContain('@nestjs/terminus');
    expect(packages).toContain('@nestjs/common');
  });

  it('nestjs-tunnel-pool/core loads no Nest, rxjs nor reflect-metadata module, and no Nest file', () => {
    const { files, packages } = runtimeGraph('lib/core-entry.ts');
    expect(files).toContain(resolve(root, 'lib/core/client-pool.ts'));
    expect([...files].filter((file) => file.includes('/lib/nest/'))).toEqual([]);
    expect([...packages].filter((name) => name.startsWith('@nestjs/') || name === 'rxjs' || name === 'reflect-metadata')).toEqual([]);
  });

  it('nestjs-tunnel-pool/tunnel loads no Nest, rxjs nor reflect-metadata module, and no Nest file', () => {
    const { files, packages } = runtimeGraph('lib/tunnel-entry.ts');
    expect(files).toContain(resolve(root, 'lib/tunnel/tunnel-server.ts'));
    expect(files).toContain(resolve(root, 'lib/tunnel/tunnel-client.ts'));
    expect([...files].filter((file) => file.includes('/lib/nest/'))).toEqual([]);
    expect([...packages].filter((name) => name.startsWith('@nestjs/') || name === 'rxjs' || name === 'reflect-metadata')).toEqual([]);
  });

  it('nestjs-tunnel-pool/tunnel exports the tunnel ends, routes, router, stats helpers and tunnel errors', () => {
    expect(Object.keys(tunnel).sort()).toEqual([
      'ControlProtocolError', 'ControlRefusedError', 'ControlTimeoutError', 'ControlVersionError', 'LATENCY_BOUNDS_MS',
      'LocalBus', 'LocalControlRouter', 'ProxyHeaderError', 'RouteAllowlist', 'RouteLimitError', 'StreamCutError',
      'TargetConnectError', 'TunnelClient', 'TunnelServer', 'clientLabel', 'failureReason', 'validateRoutes',
      'parseProxyHeader', 'proxyHeader', 'readProxyHeader',
    ].sort());
    // The errors are the very classes of nestjs-tunnel-pool/core, so instanceof holds whichever entry a caller used.
    expect(tunnel.ControlRefusedError).toBe(core.ControlRefusedError);
    expect(tunnel.TargetConnectError).toBe(core.TargetConnectError);
  });

  it('the main entry is nestjs-tunnel-pool/core and nestjs-tunnel-pool/tunnel plus the Nest API', () => {
    for (const name of Object.keys(core)) expect(main).toHaveProperty(name, (core as Record<string, unknown>)[name]);
    for (const name of Object.keys(tunnel)) expect(main).toHaveProperty(name, (tunnel as Record<string, unknown>)[name]);
    const nestOnly = Object.keys(main).filter((name) => !(name in core) && !(name in tunnel)).sort();
    expect(nestOnly).toEqual([
      'CLIENT_POOL', 'ClientPoolService', 'DEFAULT_POOL_NAME', 'InjectClientPool', 'InjectServerPool', 'PoolModule',
      'SERVER_POOL', 'ServerPoolService', 'getClientPoolToken', 'getServerPoolToken',
      'TunnelModule', 'TunnelServerService', 'TunnelClientService', 'TUNNEL_SERVER', 'TUNNEL_CLIENT',
      'getTunnelServerToken', 'getTunnelClientToken', 'InjectTunnelServer', 'InjectTunnelClient',
    ].sort());
    for (const name of ['createClientPool', 'createServerPool', 'ClientPool', 'ServerPool', 'PoolError', 'PoolErrorCode', 'tcpTransport', 'http2Transport', 'wsTransport', 'defineTransport', 'BUILT_IN_TRANSPORTS', 'OptionReader', 'createSelfSignedCertificate']) {
      expect(core).toHaveProperty(name);
    }
  });

  it('nestjs-tunnel-pool/health brings the indicator and Terminus', () => {
    expect(runtimeGraph('lib/nest/health/index.ts').packages).toContain('@nestjs/terminus');
    expect(Object.keys(health).sort()).toEqual(['PoolHealthIndicator', 'PoolHealthModule', 'TunnelHealthIndicator']);
  });

  it('nestjs-tunnel-pool/metrics alone loads prom-client', () => {
    expect(runtimeGraph('lib/metrics/index.ts').packages).toContain('prom-client');
    expect(runtimeGraph('lib/index.ts').packages).not.toContain('prom-client');
    expect(Object.keys(metrics).sort()).toEqual(['METRIC_PREFIX', 'POOL_METRICS', 'POOL_METRICS_OPTIONS', 'PoolMetricsModule', 'PoolMetricsService', 'TUNNEL_HISTOGRAMS', 'TUNNEL_METRICS', 'TUNNEL_METRIC_NAMES', 'registerPoolMetrics', 'registerTunnelMetrics']);
  });

  it('the main entry exports the Nest API by name', () => {
    for (const name of [
      'PoolModule', 'ClientPoolService', 'ServerPoolService', 'CLIENT_POOL', 'SERVER_POOL', 'DEFAULT_POOL_NAME',
      'getClientPoolToken', 'getServerPoolToken', 'InjectClientPool', 'InjectServerPool',
    ]) {
      expect(main).toHaveProperty(name);
    }
    expect(main).not.toHaveProperty('PoolHealthModule');
    expect(main).not.toHaveProperty('PoolLifecycle');
    expect(main).not.toHaveProperty('getPoolOptionsToken');
    expect(main).not.toHaveProperty('TunnelLifecycle');
    expect(main).not.toHaveProperty('getTunnelOptionsToken');
  });
});
