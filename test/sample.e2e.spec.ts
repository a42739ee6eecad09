// The sample tunnel end to end, on real sockets (127.0.0.1, ephemeral ports):
// in this process through createSampleApp, and as `node dist/sample/main.js`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ClientPoolService, ControlRefusedError, createClientPool, createSelfSignedCertificate, ServerPoolService, TunnelClient, TunnelServerService } from '../lib/index.js';
import { loadConfig } from '../sample/config.js';
import { createSampleApp, type SampleApp } from '../sample/sample-app.js';
import { TargetService } from '../sample/target.js';
import { freePorts } from './support/net.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUILT_MAIN = resolve(ROOT, 'dist/sample/main.js');
// The route sends a PROXY v1 header to the target: it names the real client at the public end.
const HELLO = /^hello through the tunnel \(from (127\.0\.0\.1:\d+)\)\n$/;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET on its own connection (no keep-alive agent), bounded by `timeout`. */
function get(url: string, timeout = 5000): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const request = http.get(url, { agent: false, timeout }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolvePromise({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error(`GET ${url} timed out after ${timeout} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
  });
}

/** Resolves with the error code of a TCP connect to `port` (or 'CONNECTED'). */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolvePromise) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise('CONNECTED');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolvePromise(String(error.code)));
  });
}

/** Polls `condition` every 10 ms; rejects after `timeout` ms naming what it waited for. */
async function until(condition: () => boolean, timeout: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

/** Every byte `socket` sends until its end, bounded by `timeout`. */
function readAll(socket: net.Socket, timeout = 5000): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`no end within ${timeout} ms (${Buffer.concat(chunks).length} bytes so far)`)), timeout);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => {
      clearTimeout(timer);
      resolvePromise(Buffer.concat(chunks));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** `promise`'s value, or 'timeout' after `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<'timeout'>((done) => (timer = setTimeout(() => done('timeout'), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('sample tunnel in this process (TUNNEL_ROLE=both, ephemeral ports)', () => {
  let sample: SampleApp;
  let closed = false;

  beforeAll(async () => {
    // Through the env parser, as `npm start` does, with every port ephemeral.
    const config = loadConfig({
      TUNNEL_ROLE: 'both',
      PUBLIC_PORT: '0',
      POOL_PORT: '0',
      TARGET_PORT: '0',
      HEALTH_PORT: '0',
    });
    expect(config.tls).toBe('1');
    sample = await createSampleApp(config, { logger: ['error', 'warn'] });
    await sample.app.get(ClientPoolService).waitForActive(2, 10_000);
    await sample.ready({ timeout: 10_000 });
  }, 20_000);

  afterAll(async () => {
    if (sample && !closed) await sample.app.close();
  });

  it('binds every listener on its own ephemeral port', () => {
    const { public: publicPort, pool, target, health } = sample.ports;
    const all = [publicPort, pool, target, health];
    for (const port of all) expect(port).toBeGreaterThan(0);
    expect(new Set(all).size).toBe(all.length);
    expect(sample.urls.public).toBe(`http://127.0.0.1:${publicPort}/`);
    expect(sample.urls.health).toBe(`http://127.0.0.1:${health}/health`);
  });

  it('carries an HTTP request through a pooled TLS stream to the target', async () => {
    const serverPool = sample.app.get(ServerPoolService).pool;
    const clientPool = sample.app.get(ClientPoolService).pool;
    const serverTaken = serverPool.stats.totals.taken;
    const clientTaken = clientPool.stats.totals.taken;

    const reply = await get(sample.urls.public!);

    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(HELLO);
    expect(reply.headers['x-tunnel-peer']).toBe(HELLO.exec(reply.body)![1]);
    // The request really went through a pooled stream: both pools handed one out.
    expect(serverPool.stats.totals.taken).toBeGreaterThan(serverTaken);
    expect(clientPool.stats.totals.taken).toBeGreaterThan(clientTaken);
    expect(serverPool.stats.transport).toBe('tls');
    expect(clientPool.stats.transport).toBe('tls');
  });

  it('the target told apart: a direct request is not tunnelled', async () => {
    const reply = await get(sample.urls.target!);
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('hello from the target (direct, not through the tunnel)\n');
  });

  it('serves concurrent requests, each through its own pooled stream, each target connection naming its own client', async () => {
    const count = 24; // more than POOL_MAX_CAP's default of 16: some wait for the pool to refill
    const serverTaken = sample.app.get(ServerPoolService).pool.stats.totals.taken;

    const replies = await Promise.all(Array.from({ length: count }, () => get(sample.urls.public!, 10_000)));

    const peers = replies.map((reply) => {
      expect(reply.status).toBe(200);
      expect(reply.body).toMatch(HELLO);
      return HELLO.exec(reply.body)![1];
    });
    expect(new Set(peers).size).toBe(count);
    expect(sample.app.get(ServerPoolService).pool.stats.totals.taken - serverTaken).toBe(count);
  }, 20_000);

  it('GET /health answers 200 over real HTTP with the pools up', async () => {
    const reply = await get(sample.urls.health);

    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body) as { status: string; info: Record<string, { status: string }> };
    expect(body.status).toBe('ok');
    expect(body.info.serverPool?.status).toBe('up');
    expect(body.info.clientPool?.status).toBe('up');
    expect(body.info.tunnel?.status).toBe('up');
  });

  it('a second tunnel client with the same key is refused (duplicate), never takes the control channel over, and the tunnel keeps working', async () => {
    const server = sample.app.get(TunnelServerService);
    const [client] = server.clients;
    expect(client).toMatch(/^key:/);
    const duplicates: string[] = [];
    const subscription = server.events$.subscribe((event) => event.type === 'duplicate' && duplicates.push(event.client));
    const pool = createClientPool({ transport: 'tcp', tls: '1', address: `127.0.0.1:${sample.ports.pool}`, auth: { key: sample.config.auth!.key as string }, minCap: 1, maxCap: 2 });
    const second = new TunnelClient({ pool, routes: [{ name: 'web', target: '127.0.0.1:9' }], reconnect: false, helloTimeout: 5000 });
    try {
      await expect(second.start()).rejects.toBeInstanceOf(ControlRefusedError);
      expect(duplicates).toEqual([client]);
      expect(server.clients).toEqual([client]);
      expect((await get(sample.urls.public!)).body).toMatch(HELLO);
    } finally {
      subscription.unsubscribe();
      await second.close();
      await pool.close();
    }
  }, 15_000);

  it('"a request, then FIN": the target reads it to the end and the client still gets the whole reply', async () => {
    const client = net.connect({ host: '127.0.0.1', port: sample.ports.public!, allowHalfOpen: true });
    try {
      const answer = readAll(client, 10_000);
      await once(client, 'connect');
      client.end('GET /after-fin HTTP/1.1\r\nHost: sample\r\n\r\n');
      const reply = (await answer).toString();
      expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(reply).toMatch(/\r\n\r\nhello through the tunnel \(from 127\.0\.0\.1:\d+\)\n$/);
    } finally {
      client.destroy();
    }
  });

  it('an unreachable target closes only that public connection', async () => {
    await sample.app.get(TargetService).target.close(); // stop the target listener; the app stays up

    await expect(get(sample.urls.public!)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect((await get(sample.urls.health)).status).toBe(200);
  });

  it('app.close() closes the pools and every listener', async () => {
    const { public: publicPort, pool, target, health } = sample.ports;
    const serverPool = sample.app.get(ServerPoolService).pool;
    const clientPool = sample.app.get(ClientPoolService).pool;

    await sample.app.close();
    closed = true;

    expect(serverPool.stats.state).toBe('closed');
    expect(clientPool.stats.state).toBe('closed');
    expect(await connectOutcome(publicPort!)).toBe('ECONNREFUSED');
    for (const port of [pool, target, health]) expect(await connectOutcome(port!)).toBe('ECONNREFUSED');
  });
});

describe('the built sample as a separate process (node dist/sample/main.js)', () => {
  let child: ChildProcess | undefined;

  afterAll(async () => {
    // Only if the test failed half-way: never leave the process behind.
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child!.once('exit', done));
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('prints where to connect, tunnels a request, and exits with code 0 on SIGTERM', async () => {
    if (!existsSync(BUILT_MAIN)) {
      throw new Error(`${BUILT_MAIN} does not exist: build first with \`npm run build\` (\`npm test\` builds before running Jest)`);
    }
    const [publicPort, pool, target, health] = await freePorts(4);
    const proc = spawn(process.execPath, [BUILT_MAIN], {
      cwd: ROOT,
      env: {
        ...process.env,
        TUNNEL_ROLE: 'both',
        PUBLIC_PORT: String(publicPort),
        POOL_PORT: String(pool),
        TARGET_PORT: String(target),
        HEALTH_PORT: String(health),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      proc.once('exit', (code, signal) => done({ code, signal })),
    );

    // Wait for the "ready" line (bounded); fail at once if the process dies.
    await new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        proc.stdout!.off('data', onData);
        reject(new Error(`no "tunnel ready" line within 15 s.\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      }, 15_000);
      const onData = (): void => {
        if (!stdout.includes('tunnel ready')) return;
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        resolvePromise();
      };
      proc.stdout!.on('data', onData);
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`the sample exited early (code ${code}, signal ${signal}).\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      });
      onData();
    });
    expect(stdout).toContain(`curl http://127.0.0.1:${publicPort}/`);
    expect(stdout).toContain(`curl http://127.0.0.1:${health}/health`);

    const response = await fetch(`http://127.0.0.1:${publicPort}/`, { signal: AbortSignal.timeout(5000) });
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(HELLO);

    proc.kill('SIGTERM');
    expect(await within(exited, 8000)).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('SIGTERM received, shutting down');
    // Nothing on stderr but what Node itself may print (e.g. an inherited NODE_OPTIONS flag's warning).
    expect(stderr.split('\n').filter((line) => line && !/ExperimentalWarning|--trace-warnings/.test(line))).toEqual([]);
  }, 30_000);
});

// The sample's default TLS mode is "1": a ws pool over TLS reports itself as 'wss'.
describe.each([
  ['http2', 'http2'],
  ['ws', 'wss'],
])('the sample with TUNNEL_TRANSPORT=%s and no other change', (transport, kind) => {
  let sample: SampleApp | undefined;

  afterAll(async () => {
    await sample?.app.close();
  });

  it('tunnels a request through a pooled stream of that transport and reports healthy', async () => {
    const config = loadConfig({
      TUNNEL_ROLE: 'both',
      TUNNEL_TRANSPORT: transport,
      PUBLIC_PORT: '0',
      POOL_PORT: '0',
      TARGET_PORT: '0',
      HEALTH_PORT: '0',
    });
    sample = await createSampleApp(config, { logger: ['error', 'warn'] });
    await sample.app.get(ClientPoolService).waitForActive(2, 10_000);
    await sample.ready({ timeout: 10_000 });
    const serverPool = sample.app.get(ServerPoolService).pool;
    expect(serverPool.stats.transport).toBe(kind);
    expect(sample.app.get(ClientPoolService).pool.stats.transport).toBe(kind);

    const reply = await get(sample.urls.public!);
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(HELLO);
    expect(serverPool.stats.totals.taken).toBeGreaterThanOrEqual(1);

    const health = await get(sample.urls.health!);
    expect(health.status).toBe(200);
  }, 30_000);
});

describe('a server side on ws and a client side on tcp (a transport mismatch)', () => {
  const samples: SampleApp[] = [];

  afterAll(async () => {
    for (const sample of samples.reverse()) await sample.app.close();
  });

  it('/health answers 503 on both sides, naming what fails, and nothing is tunnelled', async () => {
    const [pool, publicPort] = (await freePorts(2)) as [number, number];
    const key = 'a-key-both-sides-share-0123456789';
    const common = { TUNNEL_KEY: key, POOL_PORT: String(pool), PUBLIC_PORT: String(publicPort), TARGET_PORT: '0', HEALTH_PORT: '0' };
    const server = await createSampleApp(loadConfig({ ...common, TUNNEL_ROLE: 'server', TUNNEL_TRANSPORT: 'ws' }), { logger: false });
    samples.push(server);
    const client = await createSampleApp(loadConfig({ ...common, TUNNEL_ROLE: 'client', TUNNEL_TRANSPORT: 'tcp' }), { logger: false });
    samples.push(client);

    let reply: Reply | undefined;
    const deadline = Date.now() + 25_000;
    while (Date.now() < deadline) {
      reply = await get(client.urls.health);
      if (reply.status === 503 && /dial round/.test(reply.body)) break;
      await new Promise((done) => setTimeout(done, 200));
    }
    expect(reply?.status).toBe(503);
    const body = JSON.parse(reply!.body) as { error: { tunnel: { message: string } } };
    expect(body.error.tunnel.message).toMatch(/the tunnel client's pool has no ready stream and its last \d+ dial rounds? failed/);
    expect(body.error.tunnel.message).toMatch(/the tunnel client has no control channel/);
    const serverHealth = await get(server.urls.health);
    expect(serverHealth.status).toBe(503);
    expect(JSON.parse(serverHealth.body).error.tunnel.message).toBe('no tunnel client has a control channel');
    // Nothing listens on the public port: the route was never announced.
    expect(await connectOutcome(publicPort)).toBe('ECONNREFUSED');
  }, 40_000);
});

describe('the sample authenticates its pooled connections by default', () => {
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const proc of children) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      const exited = new Promise((done) => proc.once('exit', done));
      proc.kill('SIGKILL');
      await exited;
    }
  });

  /** Starts `node dist/sample/main.js` with `env`; resolves once stdout matches `line` (bounded, fails early if the process exits). */
  async function start(env: Record<string, string>, line: RegExp): Promise<{ proc: ChildProcess; output: () => string; match: RegExpMatchArray }> {
    if (!existsSync(BUILT_MAIN)) throw new Error(`${BUILT_MAIN} does not exist: build first with \`npm run build\``);
    const proc = spawn(process.execPath, [BUILT_MAIN], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let output = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const match = await new Promise<RegExpMatchArray>((resolvePromise, reject) => {
      const timer = setTimeout(() => done(new Error(`no line matching ${line} within 20 s:\n${output}`)), 20_000);
      const onExit = (code: number | null): void => done(new Error(`the sample exited early (code ${code}):\n${output}`));
      const onData = (): void => {
        const found = line.exec(output);
        if (found) done(undefined, found);
      };
      function done(error: Error | undefined, found?: RegExpMatchArray): void {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        proc.stderr!.off('data', onData);
        proc.off('exit', onExit);
        if (error) reject(error);
        else resolvePromise(found!);
      }
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', onExit);
      onData();
    });
    return { proc, output: () => output, match };
  }

  /** SIGTERM, then how the process exited; its output is in the failure if it did not exit by itself in time. */
  async function stop(started: { proc: ChildProcess; output: () => string }): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => started.proc.once('exit', (code, signal) => done({ code, signal })));
    started.proc.kill('SIGTERM');
    const outcome = await within(exited, 15_000);
    if (outcome === 'timeout') throw new Error(`no exit within 15 s of SIGTERM:\n${started.output()}`);
    return outcome;
  }

  it('reads TUNNEL_AUTH, TUNNEL_KEY and TUNNEL_KEY_FILE; the client side without a key is a one-line problem naming TUNNEL_KEY', () => {
    expect(loadConfig({ TUNNEL_ROLE: 'both' }).auth?.source).toBe('generated');
    expect(loadConfig({ TUNNEL_ROLE: 'server' }).auth?.source).toBe('generated');
    expect(loadConfig({ TUNNEL_ROLE: 'both', TUNNEL_AUTH: 'off' }).auth).toBeUndefined();
    expect(loadConfig({ TUNNEL_ROLE: 'client', TUNNEL_KEY: 'k'.repeat(20) }).auth).toEqual({ key: 'k'.repeat(20), source: 'TUNNEL_KEY' });
    expect(loadConfig({ TUNNEL_ROLE: 'client', TUNNEL_KEY_FILE: '/etc/key' }).auth).toEqual({ key: { file: '/etc/key' }, source: 'TUNNEL_KEY_FILE' });
    expect(() => loadConfig({ TUNNEL_ROLE: 'client' })).toThrow(/^invalid sample configuration:\n {2}TUNNEL_KEY: the client side must prove the key of the server side/);
    expect(() => loadConfig({ TUNNEL_AUTH: 'off', TUNNEL_KEY: 'x'.repeat(20) })).toThrow(/TUNNEL_AUTH=off with TUNNEL_KEY/);
    expect(() => loadConfig({ TUNNEL_AUTH: 'maybe' })).toThrow(/TUNNEL_AUTH: got "maybe"/);
    // Two runs never share a generated key.
    expect(loadConfig({}).auth?.key).not.toEqual(loadConfig({}).auth?.key);
  });

  it('in one process: every pooled stream the server hands out carries the key identity', async () => {
    const sample = await createSampleApp(loadConfig({ TUNNEL_ROLE: 'both', PUBLIC_PORT: '0', POOL_PORT: '0', TARGET_PORT: '0', HEALTH_PORT: '0' }), { logger: ['error', 'warn'] });
    try {
      await sample.ready({ timeout: 10_000 });
      const reply = await get(sample.urls.public!);
      expect(reply.body).toMatch(HELLO);
      const clients = sample.app.get(ServerPoolService).pool.stats.clients ?? {};
      const labels = Object.keys(clients);
      expect(labels).toHaveLength(1);
      expect(labels[0]).toMatch(/^key:k-[0-9a-f]{12}$/);
      expect(clients[labels[0]!]!.taken).toBeGreaterThanOrEqual(1);
    } finally {
      await sample.app.close();
    }
  }, 30_000);

  it('as two processes: the server prints the key it made, a client with it tunnels, a client with another key is refused', async () => {
    const [publicPort, pool, serverHealth, target, clientHealth, target2, clientHealth2] = await freePorts(7);
    const common = { POOL_PORT: String(pool), PUBLIC_PORT: String(publicPort) };
    const server = await start(
      { ...common, TUNNEL_ROLE: 'server', HEALTH_PORT: String(serverHealth) },
      /start the client side with TUNNEL_KEY=([A-Za-z0-9_-]{43})\n/,
    );
    const key = server.match[1]!;

    // A client with another key: its dials are refused (and say so), the tunnel never comes up.
    const stranger = await start(
      { ...common, TUNNEL_ROLE: 'client', TUNNEL_KEY: 'another-key-of-the-right-length-0123456789', TARGET_PORT: String(target2), HEALTH_PORT: String(clientHealth2) },
      /POOL_ERR_AUTH_REFUSED/,
    );
    expect(stranger.output()).not.toContain('tunnel ready');
    expect(await stop(stranger)).toEqual({ code: 0, signal: null });

    const client = await start(
      { ...common, TUNNEL_ROLE: 'client', TUNNEL_KEY: key, TARGET_PORT: String(target), HEALTH_PORT: String(clientHealth) },
      /tunnel ready/,
    );
    expect(client.output()).toContain('pooled connections:   authenticated (key from TUNNEL_KEY)');
    const reply = await get(`http://127.0.0.1:${publicPort}/`).catch((error: Error) => {
      throw new Error(`${error.message}\n--- server:\n${server.output()}\n--- client:\n${client.output()}`);
    });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(HELLO);
    // The key is printed once, by the server side that made it, and by nobody else.
    expect(server.output().split(key).length - 1).toBe(1);
    expect(client.output()).not.toContain(key);

    // Both exit by themselves with code 0 on SIGTERM, the client role first (its tunnel drains, then its pools close).
    expect(await stop(client)).toEqual({ code: 0, signal: null });
    expect(await stop(server)).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe('start-up errors of the built sample: one line naming the variable, no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sample-startup-'));
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a pem\n');
  const one = createSelfSignedCertificate({ commonName: 'one' });
  const other = createSelfSignedCertificate({ commonName: 'other' });
  const cert = join(dir, 'cert.pem');
  const otherKey = join(dir, 'other-key.pem');
  writeFileSync(cert, one.cert);
  writeFileSync(otherKey, other.key);
  let blocker: net.Server | undefined;

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    if (blocker) await new Promise((done) => blocker!.close(done));
  });

  /** Runs the sample to its exit; resolves with its exit code and everything it wrote. */
  function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    if (!existsSync(BUILT_MAIN)) throw new Error(`${BUILT_MAIN} does not exist: build first with \`npm run build\``);
    const proc = spawn(process.execPath, [BUILT_MAIN], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', PUBLIC_PORT: '0', POOL_PORT: '0', TARGET_PORT: '0', HEALTH_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    return new Promise((done) => proc.once('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    }));
  }

  it.each([
    ['an unknown transport', { TUNNEL_TRANSPORT: 'quic' }, /^the sample failed to start: invalid option server\.transport: got "quic".*\(check TUNNEL_TRANSPORT\)$/],
    ['http2 without TLS', { TUNNEL_TRANSPORT: 'http2', TUNNEL_TLS: '0' }, /^the sample cannot start: TUNNEL_TLS=0 with TUNNEL_TRANSPORT=http2: .*set TUNNEL_TLS=1/],
    ['a file that is no certificate', { TLS_CERT_FILE: garbage, TLS_KEY_FILE: garbage }, /^the sample cannot start: TLS_CERT_FILE: ".*garbage\.pem" is not a PEM certificate/],
    ['a key that is no key', { TLS_CERT_FILE: cert, TLS_KEY_FILE: garbage }, /^the sample cannot start: TLS_KEY_FILE: ".*garbage\.pem" is not a PEM private key/],
    ['a key of another certificate', { TLS_CERT_FILE: cert, TLS_KEY_FILE: otherKey }, /^the sample cannot start: TLS_KEY_FILE: the key in ".*other-key\.pem" does not belong to the certificate in TLS_CERT_FILE/],
    ['a client without the key', { TUNNEL_ROLE: 'client', POOL_PORT: '1' }, /^the sample cannot start: TUNNEL_KEY: the client side must prove the key of the server side/],
  ])('%s', async (_what, env, line) => {
    const { code, stdout, stderr } = await run(env);
    expect(code).not.toBe(0);
    const errors = stderr.split('\n').filter((text) => text && !/ExperimentalWarning|--trace-warnings/.test(text));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(line);
    // No stack trace and no Nest error block anywhere.
    expect(`${stdout}\n${stderr}`).not.toMatch(/^\s+at |ERROR \[ExceptionHandler\]|successfully started/m);
  }, 30_000);

  it('a taken HEALTH_PORT: one line naming HEALTH_PORT and the fix, never "successfully started"', async () => {
    blocker = net.createServer();
    await new Promise<void>((done) => blocker!.listen(0, '127.0.0.1', done));
    const port = (blocker.address() as net.AddressInfo).port;
    const { code, stdout, stderr } = await run({ HEALTH_PORT: String(port) });
    expect(code).toBe(1);
    const errors = stderr.split('\n').filter((text) => text && !/ExperimentalWarning|--trace-warnings/.test(text));
    expect(errors).toEqual([`the sample failed to start: HEALTH_PORT: cannot listen on 127.0.0.1:${port}: the port is already in use: set another port, or 0 for any free one`]);
    expect(`${stdout}\n${stderr}`).not.toMatch(/^\s+at |successfully started|EADDRINUSE/m);
  }, 30_000);
});
