/**
 * The command line, run as child processes from dist/ (the test command
 * builds first): a reverse route tunnels an HTTP request, a bad flag exits
 * 2 with one line naming it, SIGTERM exits 0 and leaves nothing listening.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const MAIN = path.resolve('dist/lib/cli/main.js');
const KEY = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';
const children: ChildProcess[] = [];
const servers: http.Server[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
});

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

/** Waits (bounded) for a line of stdout matching `pattern`; its first group. */
function waitFor(r: Run, pattern: RegExp, timeout = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const match = pattern.exec(r.out());
      if (match) {
        cleanup();
        resolve(match[1] ?? match[0]);
      }
      return !!match;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${pattern} within ${timeout} ms; stdout: ${r.out()} stderr: ${r.err()}`));
    }, timeout);
    const onData = (): void => void check();
    const cleanup = (): void => {
      clearTimeout(timer);
      r.child.stdout!.off('data', onData);
    };
    r.child.stdout!.on('data', onData);
    check();
  });
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/hello', agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('nestjs-tunnel-pool command line', () => {
  it.each([
    ['tcp', ['--transport', 'tcp']],
    ['ws', ['--transport', 'ws']],
    ['http2 (tls 1, certificate made at start-up)', ['--transport', 'http2', '--tls', '1']],
  ])('%s: tunnels an HTTP request through a reverse route and a forward route; SIGTERM exits 0 and closes every port', async (_kind, wire) => {
    const target = http.createServer((req, res) => {
      res.setHeader('connection', 'close');
      res.end(`target saw ${req.url}`);
    });
    servers.push(target);
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as net.AddressInfo).port;

    const server = run(['server', ...(wire as string[]), '--listen', '127.0.0.1:0', '--key', KEY, '--ports', '20000-40000', '--allow-target', `127.0.0.1:${targetPort}`]);
    const tunnelPort = Number(await waitFor(server, /listening for tunnel clients on 127\.0\.0\.1:(\d+)/));
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const listenPort = (free.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    const client = run(['client', ...(wire as string[]), '--connect', `127.0.0.1:${tunnelPort}`, '--key', KEY, '--route', `web=reverse:0:127.0.0.1:${targetPort}`, '--route', `back=forward:${listenPort}:127.0.0.1:${targetPort}`]);
    const publicPort = Number(await waitFor(server, /route web: connect to 127\.0\.0\.1:(\d+)/));
    const forwardPort = Number(await waitFor(client, /route back: listening on 127\.0\.0\.1:(\d+)/));

    expect(await get(publicPort)).toBe('target saw /hello');
    expect(await get(forwardPort)).toBe('target saw /hello');

    client.child.kill('SIGTERM');
    expect(await client.exited).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.err()).toBe('');
    expect(await refused(tunnelPort)).toBe(true);
    expect(await refused(publicPort)).toBe(true);
    expect(await refused(forwardPort)).toBe(true);
  }, 60_000);

  it.each([
    [['server', '--transport', 'quic', '--insecure'], /^nestjs-tunnel-pool server: invalid option --transport: got "quic"/],
    [['server', '--listen', '127.0.0.1:0'], /^nestjs-tunnel-pool server: invalid option --key: no shared key/],
    [['server', '--insecure', '--tls', '2', '--tls-cert', '/no/such.pem', '--tls-key', '/no/such.key'], /^nestjs-tunnel-pool server: invalid option --tls-cert: cannot read "\/no\/such.pem"/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', '--route', 'web=sideways:80:127.0.0.1:1'], /^nestjs-tunnel-pool client: invalid option --route: bad route/],
    [['server', '--bogus'], /^nestjs-tunnel-pool server: invalid option --bogus: unknown flag/],
  ])('%j exits 2 with one line naming the flag', async (args, line) => {
    const r = run(args as string[]);
    expect(await r.exited).toBe(2);
    expect(r.err().trimEnd().split('\n')).toHaveLength(1);
    expect(r.err()).toMatch(line);
  }, 30_000);

  it('a --listen port in use exits 2 naming --listen', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const r = run(['server', '--insecure', '--listen', `127.0.0.1:${port}`]);
      expect(await r.exited).toBe(2);
      expect(r.err()).toMatch(/^nestjs-tunnel-pool server: invalid option --listen: .*EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 30_000);
});
