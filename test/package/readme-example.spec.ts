import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { freePorts } from '../support/net.js';

// The README's Nest example, as written: its src/*.ts blocks are cut out
// of README.md, compiled like a Nest CLI app compiles them (decorators with
// metadata), and run in a separate Node process against the built package
// (dist/, through the package name). Only the port numbers are swapped for
// free ones. A README that no longer runs fails here.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function readmeFiles(): Record<string, string> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const files: Record<string, string> = {};
  for (const match of readme.matchAll(/^`(src\/[\w.-]+\.ts)`[^\n]*\n(?:[^\n]+\n)*\n```ts\n([\s\S]*?)```/gm)) files[match[1]!] = match[2]!;
  return files;
}

function compile(source: string): string {
  return ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.ES2022,
      target: ts.ScriptTarget.ES2022,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      useDefineForClassFields: false,
    },
  }).outputText;
}

/** The app around the example: AppModule with a "Hello World!" route, as `nest new` makes it. */
const MAIN = `
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import net from 'node:net';
import { ClientPoolService, TunnelClientService } from 'nestjs-tunnel-pool';
import { AppTunnelModule } from './tunnel.module.js';

@Controller()
class AppController {
  @Get()
  hello(): string {
    return 'Hello World!';
  }
}

@Module({ imports: [AppTunnelModule], controllers: [AppController] })
class AppModule {}

/** A raw HTTP request with a half-close after it, read to the end. */
function request(port: number, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.end('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));
    let data = '';
    socket.setEncoding('utf8').on('data', (chunk) => (data += chunk)).on('end', () => { socket.end(); resolve(data); }).on('error', reject);
  });
}

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
await app.listen(PORT_APP, '127.0.0.1');
// Warm: the first streams are in (a check before that is down, and Terminus logs it as an error).
await app.get(ClientPoolService).waitForActive(2, 20_000);
await app.get(TunnelClientService).whenUp(20_000);
const health = await request(PORT_APP, '/health');
const one = await request(PORT_PUBLIC);
const burst = await Promise.all(Array.from({ length: 20 }, () => request(PORT_PUBLIC)));
const started = Date.now();
await app.close();
console.log(JSON.stringify({ health: health.split('\\r\\n')[0], healthBody: health.split('\\r\\n\\r\\n')[1], one, burst, closeMs: Date.now() - started }));
`;

describe('the README Nest example', () => {
  it('has its files (the example and its spec)', () => {
    expect(Object.keys(readmeFiles()).sort()).toEqual(['src/health.controller.ts', 'src/tunnel.module.ts', 'src/tunnel.spec.ts']);
  });

  it('runs as written: a request and a burst through the tunnel, /health up, a prompt close', async () => {
    const [publicPort, poolPort, appPort] = await freePorts(3);
    const ports = (code: string): string => code.replace(/\b8080\b/g, String(publicPort)).replace(/\b10101\b/g, String(poolPort)).replace(/\b3000\b/g, String(appPort));
    // Inside the package (dist/ is ignored), so that 'nestjs-tunnel-pool' resolves to the build.
    const dir = mkdtempSync(join(root, 'dist', 'readme-example-'));
    try {
      for (const [file, source] of Object.entries(readmeFiles())) {
        if (file.endsWith('.spec.ts')) continue;
        writeFileSync(join(dir, file.replace(/^src\//, '').replace(/\.ts$/, '.js')), compile(ports(source)));
      }
      writeFileSync(join(dir, 'main.js'), compile(MAIN.replace(/PORT_APP/g, String(appPort)).replace(/PORT_PUBLIC/g, String(publicPort))));
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolvePromise) => {
        execFile(process.execPath, [join(dir, 'main.js')], { cwd: dir, timeout: 60_000 }, (error, out, err) =>
          resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out, stderr: err }),
        );
      });
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { health: string; healthBody: string; one: string; burst: string[]; closeMs: number };
      expect(result.health).toBe('HTTP/1.1 200 OK');
      expect(JSON.parse(result.healthBody)).toMatchObject({ status: 'ok', info: { pools: { status: 'up' }, tunnel: { status: 'up' } } });
      expect(result.one).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*Hello World!$/);
      expect(result.burst.filter((reply) => reply.endsWith('Hello World!'))).toHaveLength(20);
      // Nothing was left for the pools to wait for: the close did not run
      // into shutdownTimeout (5000 ms), whatever the machine's load.
      expect(result.closeMs).toBeLessThan(4500);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
