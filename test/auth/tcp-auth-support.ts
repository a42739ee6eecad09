/**
 * What the tcp auth specs share: the four modes (plain/TLS, hex8/raw4),
 * pool configs of each, and a "stranger": a raw connection the test drives
 * byte by byte, which keeps every byte it received.
 */
import { expect } from '@jest/globals';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { TCP_AUTH_MAGIC, TcpAuthType, TcpClientAuth, channelBinding, resolveClientAuth } from '../../lib/auth/index.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { testCertificate } from '../support/kinds.js';
import { eventually } from '../support/net.js';
import type { TestScope } from '../support/scope.js';

export type IdFormat = 'hex8' | 'raw4';
export const MODES: ReadonlyArray<{ name: string; secure: boolean; idFormat: IdFormat }> = [
  { name: 'tcp hex8', secure: false, idFormat: 'hex8' },
  { name: 'tcp raw4', secure: false, idFormat: 'raw4' },
  { name: 'tls hex8', secure: true, idFormat: 'hex8' },
  { name: 'tls raw4', secure: true, idFormat: 'raw4' },
];

export const CHALLENGE_HEAD = Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([1, TcpAuthType.CHALLENGE])]);
export const CHALLENGE_BYTES = 38;
export const PROOF_BYTES = 70;

export const dialOnce = (client: ClientPool) => client.transport.dial({ signal: new AbortController().signal, readId: true });

export function serverOf(secure: boolean, idFormat: IdFormat, extra: Record<string, unknown> = {}): ServerPoolConfig {
  const { key, cert } = testCertificate();
  return { transport: 'tcp', host: '127.0.0.1', port: 0, idFormat, ...(secure ? { tls: { key, cert } } : {}), ...extra } as ServerPoolConfig;
}

export function clientOf(secure: boolean, idFormat: IdFormat, extra: Record<string, unknown> = {}): Partial<ClientPoolConfig> {
  return { transport: 'tcp', idFormat, ...(secure ? { tls: '1' } : {}), ...extra } as Partial<ClientPoolConfig>;
}

export async function startServer(scope: TestScope, config: ServerPoolConfig): Promise<ServerPool> {
  const server = createServerPool(config);
  await server.start();
  scope.defer(() => server.close());
  return server;
}

/** A client pool that is never started: the test dials through its transport by hand. */
export function idleClient(scope: TestScope, port: number, config: Partial<ClientPoolConfig>): ClientPool {
  const client = createClientPool({ address: `127.0.0.1:${port}`, ...config } as ClientPoolConfig);
  scope.defer(() => client.close());
  return client;
}

/** A raw connection the test drives byte by byte; it keeps every byte it received. */
export interface Stranger {
  socket: Duplex;
  received(): Buffer;
  /** Resolves once `count` bytes arrived (rejects if the connection closes first). */
  bytes(count: number): Promise<Buffer>;
  closed: Promise<void>;
}

export async function stranger(scope: TestScope, port: number, secure: boolean, localAddress = '127.0.0.1'): Promise<Stranger> {
  const raw = scope.track(net.connect({ host: '127.0.0.1', port, localAddress }));
  raw.on('error', () => undefined);
  const socket: Duplex = secure ? tls.connect({ socket: raw, rejectUnauthorized: false, minVersion: 'TLSv1.3' }) : raw;
  scope.track(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once(secure ? 'secureConnect' : 'connect', () => resolve());
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
  const chunks: Buffer[] = [];
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => (isClosed = true));
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const received = (): Buffer => Buffer.concat(chunks);
  return {
    socket,
    received,
    closed,
    bytes: async (count) => {
      await eventually(() => received().length >= count || isClosed, 10_000, `${count} bytes from the server`);
      if (received().length < count) throw new Error(`the server closed after ${received().length} of ${count} bytes`);
      return received().subarray(0, count);
    },
  };
}

/** The PROOF a client holding `key` answers `challenge` with, on `socket` (its channel binding when TLS). */
export function proofFor(key: string, idFormat: IdFormat, socket: Duplex, challenge: Buffer): { proof: Buffer; exchange: TcpClientAuth } {
  const exchange = new TcpClientAuth(resolveClientAuth({ key })!, idFormat, channelBinding(socket));
  const step = exchange.push(challenge);
  if (step.kind !== 'send') throw new Error(`expected a proof to send, got ${step.kind}`);
  return { proof: step.bytes, exchange };
}

/** The stranger was refused: closed, and all it ever received is the challenge. */
export async function expectOnlyChallenge(peer: Stranger): Promise<void> {
  await peer.closed;
  const got = peer.received();
  expect({ length: got.length, head: got.subarray(0, 6).toString('hex') }).toEqual({ length: CHALLENGE_BYTES, head: CHALLENGE_HEAD.toString('hex') });
}
