/**
 * Issue 10, item 5, "Out of file descriptors": a pool in a process started
 * with `ulimit -n 256`, facing a peer that wants 1024 streams. Past the
 * limit, libuv accepts each new connection and closes it at once, and Node
 * reports nothing: the pool counted nothing and the application's own
 * listener got nothing either. Now the pool leaves the last descriptors
 * (an eighth of the limit, at least 32) to the application: refusals are
 * counted ('fds' on a server, POOL_ERR_FD_LIMIT on a client) and the
 * application's HTTP listener in that process keeps answering.
 *
 * Real processes: the limited side runs the built package (npm run build)
 * from test/reliability/fixtures/fd-limited.mjs; this process, unlimited,
 * plays the peer.
 */
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = resolve(ROOT, 'test/reliability/fixtures/fd-limited.mjs');
const BUILT = resolve(ROOT, 'dist/lib/index.js');
const LIMIT = 256;
/** What the pools leave free under that limit (fdReserve(256)). */
const RESERVE = 32;
/**
 * How far past `LIMIT - RESERVE` the process may be when counted: a dial
 * granted just before a count may open its socket just after it, and the
 * budget only learns of it at the next count.
 */
const SLACK = 4;
const PEER_CAP = 1024;

interface Figures {
  active: number;
  refusals?: Record<string, number>;
  failures?: Record<string, number>;
  totals: Record<string, number>;
  openFds: number | string;
}

interface Limited {
  poolPort: number | null;
  appPort: number;
  stats(): Promise<Figures>;
  exit(): Promise<void>;
}

/** Starts the fixture under `ulimit -n LIMIT` (soft and hard: Node raises its soft limit to the hard one at start), bounded in time; stopped after the test. */
async function startLimited(args: string[]): Promise<Limited> {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} does not exist: build first with \`npm run build\``);
  const child = spawn('bash', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, FIXTURE, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  scope.defer(async () => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    clearTimeout(killer);
  });
  const replies: Array<(line: string) => void> = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => replies.shift()?.(line));
  const next = (): Promise<string> =>
    new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error('the limited process did not answer within 10 s')), 10_000);
      replies.push((line) => {
        clearTimeout(timer);
        done(line);
      });
    });
  const ready = JSON.parse(await next()) as { poolPort: number | null; appPort: number };
  return {
    ...ready,
    stats: async () => {
      const reply = next();
      child.stdin.write('stats\n');
      return JSON.parse(await reply) as Figures;
    },
    exit: async () => {
      child.stdin.write('exit\n');
      await exited;
    },
  };
}

/** One GET to the limited process's own listener, on a fresh connection: its body, or the error code. */
function askApp(port: number): Promise<string> {
  return new Promise((done) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => done(body));
      response.on('error', (error: NodeJS.ErrnoException) => done(String(error.code)));
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    request.on('error', (error: NodeJS.ErrnoException) => done(String(error.code)));
  });
}

async function askAppTimes(port: number, times: number): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < times; i++) answers.push(await askApp(port));
  return answers;
}

// The pools can only know the limit where /proc tells it (see lib/core/fd-budget.ts).
const onLinux = process.platform === 'linux' ? describe : describe.skip;

onLinux(`a pool in a process limited to ${LIMIT} open files, its peer wanting ${PEER_CAP} streams`, () => {
  // (http2 is left out: its streams share a few sessions, so a peer's 1024
  // streams cost a handful of descriptors.)
  it.each(['tcp', 'ws'] as const)('%s server: refuses past the reserve, counts it, and the application listener still answers', async (transport) => {
    const limited = await startLimited(['server', transport]);
    const client = createClientPool({
      transport,
      address: `127.0.0.1:${limited.poolPort}`,
      minCap: PEER_CAP,
      maxCap: PEER_CAP,
      minIvl: 50,
      maxIvl: 50,
      maxBackoff: 500,
    });
    client.start();
    scope.defer(() => client.close(0));
    // The first round alone dials the whole capacity, far past the limit.
    await eventually(() => client.stats.totals.dials >= PEER_CAP && client.stats.dialing === 0, 30_000, `${PEER_CAP} dials`);
    // Counted before the application's own connections add theirs.
    const figures = await limited.stats();
    const answers = await askAppTimes(limited.appPort, 5);
    const report = { answers, active: figures.active, fdsRefused: figures.refusals?.fds ?? 0, openFds: figures.openFds, clientHolds: client.active };
    expect({
      ...report,
      leftTheReserve: typeof figures.openFds === 'number' && figures.openFds <= LIMIT - RESERVE + SLACK,
      counted: report.fdsRefused > 0,
      filled: figures.active >= LIMIT / 2,
    }).toEqual({ ...report, answers: Array(5).fill('app ok'), leftTheReserve: true, counted: true, filled: true });
    await client.close(0);
    await limited.exit();
  }, 60_000);

  it('client: stops dialing at the reserve with POOL_ERR_FD_LIMIT, and the application listener still answers', async () => {
    const server = createServerPool({ transport: 'tcp', host: '127.0.0.1', port: 0 });
    await server.start();
    scope.defer(() => server.close(0));
    const limited = await startLimited(['client', 'tcp', `127.0.0.1:${server.address()!.port}`, String(PEER_CAP)]);
    let figures = await limited.stats();
    const deadline = Date.now() + 30_000;
    while (Object.values(figures.failures ?? {}).reduce((sum, n) => sum + n, 0) === 0 && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 100));
      figures = await limited.stats();
    }
    figures = await limited.stats();
    const answers = await askAppTimes(limited.appPort, 5);
    const report = { answers, active: figures.active, failures: figures.failures, openFds: figures.openFds, serverHolds: server.active };
    expect({
      ...report,
      leftTheReserve: typeof figures.openFds === 'number' && figures.openFds <= LIMIT - RESERVE + SLACK,
      counted: (figures.failures?.POOL_ERR_FD_LIMIT ?? 0) > 0,
      filled: figures.active >= LIMIT / 2,
    }).toEqual({ ...report, answers: Array(5).fill('app ok'), leftTheReserve: true, counted: true, filled: true });
    await limited.exit();
  }, 60_000);
});
