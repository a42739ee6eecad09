import type { Duplex } from 'node:stream';
import { testCertificate } from '../support/certificate.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import type { Http2ClientOptions } from '../../lib/transports/http2/http2-client.transport.js';
import type { Http2ServerOptions } from '../../lib/transports/http2/http2-server.transport.js';
import type { ClientPoolConfig, ServerPoolConfig } from '../../lib/pool-factory.js';
import { kindSpec } from '../support/kinds.js';
import { startPair, type PoolPair } from '../support/pools.js';

export { testCertificate };
export { startRawH2Server, type RawH2Server } from '../support/echo-peers.js';

export type H2ServerConfig = Omit<Extract<ServerPoolConfig, { transport: 'http2' }>, 'transport'> & Http2ServerOptions;
export type H2ClientConfig = Omit<Extract<ClientPoolConfig, { transport: 'http2' }>, 'transport'> & Http2ClientOptions;

export type H2Pair = PoolPair;

/** A started http2 server pool on 127.0.0.1:0 (self-signed TLS) and a started client pool (mode "1") dialing it. */
export function startH2Pair(server: H2ServerConfig = {}, client: H2ClientConfig = {}, via?: (port: number) => number): Promise<H2Pair> {
  const kind = kindSpec('http2');
  return startPair({ ...kind.server, ...server } as ServerPoolConfig, { ...kind.client, ...client }, via);
}

/** The figures the http2 client transport reports in `stats.transportStats` (mirrors its `stats()`). */
export interface H2ClientStats {
  sessions: number;
  usableSessions: number;
  sessionsOpened: number;
  streamsOpened: number;
  activeStreams: number;
  peerMaxConcurrentStreams: number[];
  goaways: number;
  pingTimeouts: number;
  lastPingRttMs: number | null;
  resets: number;
}

/** The figures the http2 server transport reports in `stats.transportStats` (mirrors its `stats()`). */
export interface H2ServerStats {
  sessions: number;
  connections: number;
  sessionsOpened: number;
  streamsOpened: number;
  activeStreams: number;
  maxConcurrentStreams: number;
  goaways: number;
  goawaysSent: number;
  lastPingRttMs: number | null;
  resets: number;
}

/** Transport figures of an http2 pool, typed by side for assertions. */
export function h2Stats(pool: ClientPool): H2ClientStats;
export function h2Stats(pool: ServerPool): H2ServerStats;
export function h2Stats(pool: ClientPool | ServerPool): H2ClientStats | H2ServerStats {
  return pool.stats.transportStats as unknown as H2ClientStats | H2ServerStats;
}

export { startProxy, type Proxy } from '../support/proxy.js';

/** Resolves with the error the stream emits (or rejects if it closes cleanly within `timeout`). */
export function nextError(stream: Duplex, timeout = 5000): Promise<{ code?: string; name?: string; reason?: string; message: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error within ${timeout} ms`)), timeout);
    stream.once('error', (error) => {
      clearTimeout(timer);
      resolve(error as never);
    });
    stream.once('close', () => setImmediate(() => {
      clearTimeout(timer);
      reject(new Error('the stream closed without an error'));
    }));
  });
}
