/**
 * Helpers of the command-line specs: the built command (dist/) run as a
 * child process with only the environment given, bounded waits on its
 * output, an HTTP target and requests through the tunnel. Whatever a spec
 * opens here is closed by `closeAll()` (its afterEach).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export const MAIN = path.resolve('dist/lib/cli/main.js');
export const KEY = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';

const children: ChildProcess[] = [];
const servers: http.Server[] = [];

/** Kills the children still running, closes the HTTP targets. */
export async function closeAll(): Promise<void> {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
}

export interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

/** The command with `args`, its environment only PATH and `env` (so no TUNNEL_* of the machine leaks in). */
export function run(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

/** Waits (bounded) for `pattern` in stdout (or stderr); its first group. */
export function waitFor(r: Run, pattern: RegExp, timeout = 20_000, stream: 'out' | 'err' = 'out'): Promise<string> {
  const source = stream === 'out' ? r.child.stdout! : r.child.stderr!;
  const text = stream === 'out' ? r.out : r.err;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const match = pattern.exec(text());
      if (!match) return;
      cleanup();
      resolve(match[1] ?? match[0]);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${pattern} on std${stream} within ${timeout} ms; stdout: ${r.out()} stderr: ${r.err()}`));
    }, timeout);
    const onData = (): void => void setImmediate(check); // after run()'s own listener appended the chunk
    const cleanup = (): void => {
      clearTimeout(timer);
      source.off('data', onData);
    };
    source.on('data', onData);
    check();
  });
}

/** The exit code, or a rejection naming the command's output when it is still running after `timeout`. */
export function exitOf(r: Run, timeout = 20_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${timeout} ms; stdout: ${r.out()} stderr: ${r.err()}`)), timeout);
  });
  return Promise.race([r.exited, late]).finally(() => clearTimeout(timer));
}

/** An HTTP target on 127.0.0.1 answering `target saw <path>`; its port. */
export async function httpTarget(): Promise<number> {
  const target = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`target saw ${req.url}`);
  });
  servers.push(target);
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  return (target.address() as net.AddressInfo).port;
}

export function get(port: number, urlPath = '/hello'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}
