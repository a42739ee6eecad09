import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The package as a user gets it: `npm pack` of the built tree (dist/, as
// `npm test` builds it first), installed from the tarball into an empty app
// with npm's defaults except --omit=peer, so no Nest, rxjs nor
// reflect-metadata is there. Then the Nest-free entry point must load and
// work, and the published declarations must type-check for a user who does
// not skip library checks and has no @types/ws.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  return new Promise((resolvePromise) => {
    execFile(file, args, { cwd, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let work: string;
let app: string;
let packed: string[] = [];

beforeAll(async () => {
  expect(existsSync(join(root, 'dist/lib/core-entry.js'))).toBe(true); // npm test builds dist/ first
  work = mkdtempSync(join(tmpdir(), 'ntp-packed-'));
  // --ignore-scripts: dist/ is already built; prepack would build it again under the running suite.
  const pack = await run(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root);
  expect(pack.code).toBe(0);
  const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((file) => file.path).sort();
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  const install = await run(npm, ['install', '--omit=peer', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(work, info!.filename)], app, 300_000);
  expect(install.stderr).toBe('');
  expect(install.code).toBe(0);
}, 360_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('carries the built library, its declarations, README, LICENSE and docs; no source maps, sources or tests', () => {
    expect(packed).toEqual(expect.arrayContaining([
      'LICENSE', 'README.md', 'package.json', 'docs/SECURITY.md',
      'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/core-entry.js', 'dist/lib/core-entry.d.ts',
      'dist/lib/nest/health/index.js', 'dist/lib/nest/health/index.d.ts', 'dist/lib/tunnel-entry.js', 'dist/lib/tunnel-entry.d.ts',
    ]));
    const stray = packed.filter((path) => path.endsWith('.map') || (path.endsWith('.ts') && !path.endsWith('.d.ts')) || /(^|\/)(test|sample|bench)\//.test(path));
    expect(stray).toEqual([]);
  });

  it('installs with no peer: neither Nest nor rxjs nor reflect-metadata is in the app', () => {
    const installed = readdirSync(join(app, 'node_modules'));
    expect(installed).toContain('nestjs-tunnel-pool');
    expect(installed.filter((name) => ['@nestjs', 'rxjs', 'reflect-metadata'].includes(name))).toEqual([]);
  });

  it('nestjs-tunnel-pool/core loads there and runs a real TLS hand-off', async () => {
    const { code, stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', `
      import { createServerPool, createClientPool, PoolErrorCode, createSelfSignedCertificate, WebSocketDuplex } from 'nestjs-tunnel-pool/core';
      const server = createServerPool({ port: 0, tls: 'self-signed' });
      await server.start();
      const client = createClientPool({ address: '127.0.0.1:' + server.address().port, tls: '1' });
      client.start();
      const [id, theirs] = await server.incomingGet(10000);
      const mine = await client.outgoingGet(id, 10000);
      theirs.write('hi');
      const got = await new Promise((r) => mine.once('data', r));
      mine.destroy(); theirs.destroy();
      await client.close(); await server.close();
      console.log(JSON.stringify({ got: got.toString(), code: PoolErrorCode.TIMEOUT, certs: typeof createSelfSignedCertificate, ws: typeof WebSocketDuplex }));
    `], app, 60_000);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim())).toEqual({ got: 'hi', code: 'POOL_ERR_TIMEOUT', certs: 'function', ws: 'function' });
  });

  it('nestjs-tunnel-pool/tunnel loads there and carries an HTTP request over a reverse route', async () => {
    const { code, stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', `
      import http from 'node:http';
      import { createServerPool, createClientPool } from 'nestjs-tunnel-pool/core';
      import { TunnelServer, TunnelClient } from 'nestjs-tunnel-pool/tunnel';
      const target = http.createServer((req, res) => { res.setHeader('connection', 'close'); res.end('through ' + req.url); });
      await new Promise((r) => target.listen(0, '127.0.0.1', r));
      const serverPool = createServerPool({ port: 0 });
      const server = new TunnelServer({ pool: serverPool, allow: { rules: [{ ports: ['1024-65535'] }] } });
      await server.start();
      const clientPool = createClientPool({ address: '127.0.0.1:' + serverPool.address().port, minCap: 2 });
      const client = new TunnelClient({ pool: clientPool, routes: [{ name: 'web', target: '127.0.0.1:' + target.address().port }] });
      const [route] = await client.start();
      const body = await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: route.port, path: '/x', agent: false }, (res) => {
        let text = ''; res.on('data', (c) => (text += c)); res.on('end', () => resolve(text));
      }).on('error', reject));
      await client.close(); await server.close(); await clientPool.close(); await serverPool.close();
      await new Promise((r) => target.close(r));
      console.log(JSON.stringify({ body }));
    `], app, 60_000);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim())).toEqual({ body: 'through /x' });
  });

  it('the main entry there fails for want of Nest, as it must (the peers really are absent)', async () => {
    const { code, stderr } = await run(process.execPath, ['--input-type=module', '-e', `await import('nestjs-tunnel-pool');`], app, 60_000);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/ERR_MODULE_NOT_FOUND[\s\S]*@nestjs\/common|Cannot find package '@nestjs\/common'/);
  });

  it('its declarations type-check with skipLibCheck off and no @types/ws', async () => {
    writeFileSync(join(app, 'check.ts'), [
      "import { createClientPool, createServerPool, ClientPool, WebSocketDuplex, PoolErrorCode, wsTransport, type ClientPoolStats, type WsStreamError } from 'nestjs-tunnel-pool/core';",
      "const pool: ClientPool = createClientPool({ transport: 'ws', address: '127.0.0.1:1' });",
      'const stats: ClientPoolStats = pool.stats;',
      'export const used = [createServerPool, WebSocketDuplex, PoolErrorCode.TIMEOUT, wsTransport, stats, undefined as WsStreamError | undefined];',
      '',
    ].join('\n'));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false,
        // Node's own types from this project (the app has none installed); @types/ws is not among them.
        typeRoots: [join(root, 'node_modules/@types')], types: ['node'],
      },
      files: ['check.ts'],
    }));
    expect(existsSync(join(app, 'node_modules/@types/ws'))).toBe(false);
    const { code, stdout, stderr } = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], app);
    expect(stdout + stderr).toBe('');
    expect(code).toBe(0);
  });
});
