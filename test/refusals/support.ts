import { expect } from '@jest/globals';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { GeneratedCertificate } from '../../lib/certs/index.js';
import type { ClientPoolConfig, ServerPoolConfig } from '../../lib/pool-factory.js';
import { KINDS, type Kind } from '../support/kinds.js';
import { eventually } from '../support/net.js';
import type { PoolPair } from '../support/pools.js';
import type { TestScope } from '../support/scope.js';
import { Collector } from '../ws/ws-support.js';

/** One server of each transport kind (test/support/kinds.ts), with the client options that reach it. */
export interface ServerKind {
  name: Kind;
  /** Whether a raw peer must do TLS before it reaches the protocol. */
  tls: boolean;
  server(certificate: GeneratedCertificate): ServerPoolConfig;
  client: Partial<ClientPoolConfig>;
}

export const SERVERS: readonly ServerKind[] = KINDS.map((kind) => ({
  name: kind.name,
  tls: kind.tls,
  server: ({ key, cert }: GeneratedCertificate) => ({ ...kind.server, ...(kind.tls ? { tls: { key, cert } } : {}) }) as ServerPoolConfig,
  client: kind.client as Partial<ClientPoolConfig>,
}));

export const byName = (...names: Kind[]): ServerKind[] => SERVERS.filter((kind) => names.includes(kind.name));

/** A raw connection the test writes garbage into, and what comes back. */
export interface Raw {
  socket: net.Socket;
  received: Collector;
  /** Resolves once the server has closed the connection. */
  closed(timeout?: number): Promise<void>;
}

/** Opens a raw TCP connection, or a raw TLS one (no verification; optional ALPN) when `secure`. */
export async function openRaw(scope: TestScope, port: number, secure: boolean, alpn?: string[]): Promise<Raw> {
  const socket = secure
    ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) })
    : net.connect({ host: '127.0.0.1', port });
  scope.track(socket);
  const received = new Collector(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once(secure ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, received, closed: (timeout = 5000) => eventually(() => socket.destroyed || received.ended, timeout, 'the server to close the connection') };
}

/** The status code of the HTTP response the collector holds. */
export async function statusOf(raw: Raw): Promise<number> {
  const { head } = await raw.received.head();
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
}

/** The refusal counters as they are now. */
export function refusals(p: PoolPair): Record<string, number> {
  return { ...p.server.stats.refusals };
}

/** Waits until exactly one refusal was added since `before`, under `reason`, and nothing else changed. */
export async function expectOneRefusal(p: PoolPair, before: Record<string, number>, reason: string): Promise<void> {
  await eventually(() => (p.server.stats.refusals[reason] ?? 0) > (before[reason] ?? 0), 3000, `a refusal counted as '${reason}' (refusals now ${JSON.stringify(p.server.stats.refusals)})`);
  expect(p.server.stats.refusals).toEqual({ ...before, [reason]: (before[reason] ?? 0) + 1 });
}

/**
 * The server still serves: the real client's idle streams are flushed, it
 * dials again, and a fresh stream is handed off and carries bytes.
 */
export async function expectStillServing(scope: TestScope, p: PoolPair): Promise<void> {
  const accepted = p.server.stats.totals.accepted;
  p.client.flush();
  await eventually(() => p.server.stats.totals.accepted > accepted, 5000, 'a new stream accepted after the garbage');
  await eventually(() => p.server.active >= 1, 5000, 'a ready server stream');
  const { id, server, client } = await scope.handOff(p);
  expect(id).toMatch(/^[0-9a-f]{8}$/);
  client.write('after the garbage');
  const got = await new Promise<string>((resolve) => server.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  expect(got).toBe('after the garbage');
}

/** Arbitrary bytes that are not a TLS record (first byte not 0x14–0x17), fixed so a run is reproducible. */
export function noise(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = 0x2545f491;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  bytes[0] = 0x9c;
  return bytes;
}

/** An HTTP/2 client session over TLS to `port` (no verification), closed after the test. */
export function h2Session(scope: TestScope, port: number, options: http2.SecureClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, ...options });
  session.on('error', () => undefined);
  scope.defer(() => void session.destroy());
  return session;
}
