/**
 * Issue 6, scenario 3 (and the Go failure mode "a refusal is taken as an ID
 * and pooled"): a server pool at maxCap hit by a few thousand connection
 * attempts. Every one is refused the transport's way (tcp and TLS: a bare
 * close before any TLS; http2: 404; ws: 503), `refusals.full` counts each,
 * the idle count never exceeds maxCap, and neither the heap (after GC) nor
 * the socket count grows.
 */
import { describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import type { ClientPoolConfig } from '../../lib/pool-factory.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { clientConfig, heapAfterGc, inBatches, rawConnect, resourceCounts, resourcesBackTo, startKind, type Kind } from './support.js';

const scope = useTestScope();

const MAX_CAP = 4;
/** Enough to load and optimise every code path: the first thousands leave ~0.5 MiB of code and feedback behind. */
const WARM_UP = 1000;
const ATTEMPTS = 3000;
/** Heap the 3000 refusals may leave behind after GC: 256 bytes each would exceed it (measured: under 120 KiB). */
const HEAP_BOUND = 768 << 10;

type Outcome = 'bare-close' | `status ${number}` | `other: ${string}`;

interface Attempts {
  /** Makes `count` refused attempts, returns how each one was answered. */
  run(port: number, count: number): Promise<Outcome[]>;
  expected: Outcome;
  /** How a client pool of this kind counts the refusal. */
  clientFailure: string;
}

/** Raw TCP attempts: the refusal must come before anything is sent. */
const bareClose: Attempts = {
  expected: 'bare-close',
  clientFailure: 'POOL_ERR_REFUSED',
  run: (port, count) =>
    inBatches(count, 100, async () => {
      const attempt = await rawConnect(port);
      const timer = setTimeout(() => attempt.socket.destroy(), 5000);
      await attempt.closed;
      clearTimeout(timer);
      const closedByServer = attempt.closedAt! - attempt.connectedAt < 5000;
      if (!closedByServer) return 'other: still open after 5 s' as Outcome;
      return attempt.received.length === 0 ? 'bare-close' : (`other: ${JSON.stringify(attempt.received.toString('latin1').slice(0, 40))}` as Outcome);
    }),
};

/** HTTP/1.1 upgrade attempts, as the ws client sends them. */
const wsUpgrades: Attempts = {
  expected: 'status 503',
  clientFailure: 'POOL_ERR_FULL',
  run: (port, count) =>
    inBatches(count, 100, async () => {
      const attempt = await rawConnect(
        port,
        `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
      const timer = setTimeout(() => attempt.socket.destroy(), 5000);
      await attempt.closed;
      clearTimeout(timer);
      const text = attempt.received.toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1];
      if (!status) return `other: ${JSON.stringify(text.slice(0, 40))}` as Outcome;
      return (text.endsWith('\r\n\r\npool full\n') ? `status ${Number(status)}` : `other: ${JSON.stringify(text.slice(-40))}`) as Outcome;
    }),
};

/** POST /stream requests on raw HTTP/2 sessions, at most maxCap at once per session (its stream limit). */
const h2Requests: Attempts = {
  expected: 'status 404',
  clientFailure: 'POOL_ERR_REFUSED',
  run: async (port, count) => {
    const outcomes: Outcome[] = [];
    const perSession = 200;
    for (let done = 0; done < count; done += perSession) {
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, minVersion: 'TLSv1.3' });
      session.on('error', () => undefined);
      try {
        await new Promise<void>((resolve, reject) => {
          session.once('connect', () => resolve());
          session.once('error', reject);
        });
        const inSession = Math.min(perSession, count - done);
        outcomes.push(
          ...(await inBatches(inSession, MAX_CAP, () =>
            new Promise<Outcome>((resolve) => {
              const request = session.request({ ':method': 'POST', ':path': '/stream' });
              let status = 0;
              let body = '';
              const timer = setTimeout(() => request.close(http2.constants.NGHTTP2_CANCEL), 5000);
              request.on('response', (headers) => (status = Number(headers[':status'])));
              request.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
              request.on('error', () => undefined);
              request.on('close', () => {
                clearTimeout(timer);
                resolve(status && body === 'not found\n' ? `status ${status}` : `other: status ${status} body ${JSON.stringify(body)}`);
              });
              request.end();
            }),
          )),
        );
      } finally {
        await new Promise<void>((resolve) => session.close(() => resolve()));
      }
    }
    return outcomes;
  },
};

const ATTEMPTS_BY_KIND: Record<'tcp' | 'tls' | 'http2' | 'ws', Attempts> = { tcp: bareClose, tls: bareClose, http2: h2Requests, ws: wsUpgrades };

function tally(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

describe.each<'tcp' | 'tls' | 'http2' | 'ws'>(['tcp', 'tls', 'http2', 'ws'])('%s: refusal beyond maxCap', (kind: Kind & ('tcp' | 'tls' | 'http2' | 'ws')) => {
  it(`${ATTEMPTS} attempts against a full server: all refused and counted, idle never above maxCap, no growth`, async () => {
    const attempts = ATTEMPTS_BY_KIND[kind];
    const baseline = resourceCounts();
    const p = await startKind(kind, { maxCap: MAX_CAP }, { minCap: MAX_CAP, maxCap: MAX_CAP, minIvl: 50, maxIvl: 50 });
    let closed = false;
    const closePair = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      await p.close();
    };
    scope.defer(closePair);
    await p.client.waitForActive(MAX_CAP, 10_000);
    await eventually(() => p.server.active === MAX_CAP, 5000, 'the server to be full');

    // (stats.handshaking also counts connection-level TLS and upgrade
    // handshakes of http2 and ws, which maxCap does not bound: a stream held
    // beyond maxCap would show as an accepted stream, checked below.)
    let maxIdle = 0;
    const sample = (): void => {
      maxIdle = Math.max(maxIdle, p.server.active);
    };
    const sampler = setInterval(sample, 5);
    scope.defer(() => clearInterval(sampler));

    // A real client pool against the full server: every dial is refused, none pooled.
    const refused = createClientPool({
      ...clientConfig(kind, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20, maxBackoff: 100 }),
      address: `127.0.0.1:${p.port}`,
    } as ClientPoolConfig);
    refused.start();
    const warm = await attempts.run(p.port, WARM_UP);
    await eventually(() => (refused.stats.failures[attempts.clientFailure] ?? 0) >= 2, 5000, `two ${attempts.clientFailure} failures`);
    const refusedStats = refused.stats;
    await refused.close();
    expect({ active: refusedStats.active, created: refusedStats.totals.created, failures: Object.keys(refusedStats.failures) }).toEqual({
      active: 0,
      created: 0,
      failures: [attempts.clientFailure],
    });
    expect(tally(warm)).toEqual({ [attempts.expected]: WARM_UP });

    const heapBefore = await heapAfterGc();
    const fullBefore = p.server.stats.refusals.full ?? 0;
    const outcomes = await attempts.run(p.port, ATTEMPTS);
    sample();
    const stats = p.server.stats;
    expect(tally(outcomes)).toEqual({ [attempts.expected]: ATTEMPTS });
    expect((stats.refusals.full ?? 0) - fullBefore).toBe(ATTEMPTS);
    await eventually(() => p.server.stats.handshaking === 0, 5000, 'no handshake in progress');
    expect({ maxIdle, active: stats.active, handshaking: p.server.stats.handshaking, accepted: stats.totals.accepted }).toEqual({
      maxIdle: MAX_CAP,
      active: MAX_CAP,
      handshaking: 0,
      accepted: MAX_CAP,
    });
    // The client that holds the server's streams was never disturbed.
    expect(p.client.active).toBe(MAX_CAP);
    const heapAfter = await heapAfterGc();
    expect({ heapGrowth: heapAfter - heapBefore, within: heapAfter - heapBefore < HEAP_BOUND }).toEqual({ heapGrowth: heapAfter - heapBefore, within: true });

    clearInterval(sampler);
    await closePair();
    await resourcesBackTo(baseline, 5000, 'sockets, servers and timers');
  }, 60_000);
});
