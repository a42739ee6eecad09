import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Loads the built package (dist/, as `npm test` builds it first) by its
// name through package.json "exports", from a separate Node process, the
// way a user's app does.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function runNode(source: string, inputType = 'module'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [`--input-type=${inputType}`, '-e', source], { cwd: root, timeout: 20_000 }, (error, stdout, stderr) => {
      resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('the built package', () => {
  it('exists (npm test builds it before Jest runs)', () => {
    expect(existsSync(join(root, 'dist/lib/index.js'))).toBe(true);
  });

  it('runs a real hand-off from a plain Node process through the package name', async () => {
    const { code, stdout, stderr } = await runNode(`
      import { createServerPool, createClientPool, PoolErrorCode } from 'nestjs-tunnel-pool';
      const server = createServerPool({ port: 0, tls: 'self-signed' });
      await server.start();
      const client = createClientPool({ address: '127.0.0.1:' + server.address().port, tls: '1' });
      client.start();
      const [id, theirs] = await server.incomingGet(5000);
      const mine = await client.outgoingGet(id, 5000);
      theirs.write('hi');
      const got = await new Promise((r) => mine.once('data', r));
      mine.destroy(); theirs.destroy();
      await client.close(); await server.close();
      console.log(JSON.stringify({ id, got: got.toString(), timeout: PoolErrorCode.TIMEOUT }));
    `);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(stdout.trim()) as { id: string; got: string; timeout: string };
    expect(result.id).toMatch(/^[0-9a-f]{8}$/);
    expect(result.got).toBe('hi');
    expect(result.timeout).toBe('POOL_ERR_TIMEOUT');
  });

  it('a CommonJS app can require() every entry point (require of ESM, Node 22.12+: no top-level await anywhere)', async () => {
    const { code, stdout, stderr } = await runNode(`
      const main = require('nestjs-tunnel-pool');
      const core = require('nestjs-tunnel-pool/core');
      const health = require('nestjs-tunnel-pool/health');
      const metrics = require('nestjs-tunnel-pool/metrics');
      const tunnel = require('nestjs-tunnel-pool/tunnel');
      console.log(JSON.stringify([typeof main.PoolModule, typeof core.createClientPool, core.createClientPool === main.createClientPool, typeof health.PoolHealthModule, typeof metrics.registerPoolMetrics, tunnel.TunnelServer === main.TunnelServer]));
    `, 'commonjs');
    expect(stderr.replace(/^\(node:\d+\) ExperimentalWarning: CommonJS module .* is loading ES Module .*\n(\(Use .*\n)?/m, '')).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim())).toEqual(['function', 'function', true, 'function', 'function', true]);
  });

  it('keeps Terminus out of the main entry (it has its own entry point)', () => {
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const specifier = match[1] ?? match[2]!;
        if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
        else external.add(specifier);
      }
    };
    visit(join(root, 'dist/lib/index.js'));
    expect(seen.size).toBeGreaterThan(5);
    expect([...external].filter((name) => name.startsWith('@nestjs/terminus'))).toEqual([]);
  });

  it('declares its entry points and types in package.json', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { type: string; exports: Record<string, { types: string; default: string }> };
    expect(pkg.type).toBe('module');
    for (const entry of ['.', './core', './tunnel', './health', './metrics']) {
      expect(existsSync(join(root, pkg.exports[entry]!.types))).toBe(true);
      expect(existsSync(join(root, pkg.exports[entry]!.default))).toBe(true);
    }
  });
});
