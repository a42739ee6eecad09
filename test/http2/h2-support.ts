import net from 'node:net';
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

/** Transport figures of a pool, typed loosely for assertions. */
export function h2Stats(pool: ClientPool | ServerPool): Record<string, number & number[]> {
  return pool.stats.transportStats as Record<string, number & number[]>;
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of `targetPort`, so a test can act
 * on the wire under a session: stop forwarding (a peer that stops
 * answering) or cut every connection (a socket that dies).
 */
export interface Proxy {
  port: number;
  /** Connections made through it so far. */
  readonly connections: number;
  /** Existing connections stop forwarding in both directions; new ones still work. */
  freeze(): void;
  /** Existing connections stop reading in both directions, so writes into them back up. */
  stall(): void;
  /** Destroys every connection made so far. */
  cut(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const pairs: Array<{ inbound: net.Socket; outbound: net.Socket; frozen: boolean }> = [];
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { inbound, outbound, frozen: false };
    pairs.push(pair);
    inbound.on('error', () => undefined);
    outbound.on('error', () => undefined);
    inbound.on('data', (chunk: Buffer) => {
      if (!pair.frozen) outbound.write(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      if (!pair.frozen) inbound.write(chunk);
    });
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return pairs.length;
    },
    freeze: () => {
      for (const pair of pairs) pair.frozen = true;
    },
    stall: () => {
      for (const pair of pairs) {
        pair.inbound.pause();
        pair.outbound.pause();
      }
    },
    cut: () => {
      for (const pair of pairs) {
        pair.inbound.destroy();
        pair.outbound.destroy();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.inbound.destroy();
          pair.outbound.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

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
