/**
 * The transport kinds every end-to-end spec runs over, in one table: how to
 * make a server pool and a client pool of each kind (with a test
 * certificate where the kind runs TLS), and what each kind promises where
 * kinds differ (half-close, the first ID, how a refusal reaches the client).
 * The conformance suite (test/conformance) runs one describe over all of
 * them; the reliability and refusal specs pick kinds from here too.
 */
import { expect } from '@jest/globals';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ClientPoolConfig, ServerPoolConfig } from '../../lib/pool-factory.js';
import { createCertificateAuthority, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import { testCertificate } from './certificate.js';
import { socketEcho, startRawH2Server, wsEcho, type EchoPeer } from './echo-peers.js';
import { startPair, type PoolPair } from './pools.js';

export { testCertificate };

/** 'tcp' and 'tls' are the tcp transport plain and over TLS; 'wss' is ws over TLS. Also what `stats.transport` says. */
export type Kind = 'tcp' | 'tls' | 'http2' | 'ws' | 'wss';

/**
 * One transport kind. `Name` is a built-in kind by default; a transport from
 * outside the library (test/third-party) is a KindSpec<string> the
 * conformance suite adds to the table (`conformanceKinds`).
 */
export interface KindSpec<Name extends string = Kind> {
  name: Name;
  /** What `stats.transport` says, when it is not `name` (a variant of a built-in kind, such as 'tls+mtls'). */
  transportName?: string;
  /** Whether the pooled connection runs TLS. */
  tls: boolean;
  /** Whether pooled streams are half-open: one side can end while the other still writes. */
  halfClose: boolean;
  /** Whether a server connection has a handshake (TLS, an HTTP upgrade) before its stream is pooled. */
  serverHandshake: boolean;
  /**
   * The client options that bound a dial to a server that accepts and never
   * answers: handshakeTimeout bounds TLS and the ID on tcp and ws; http2
   * bounds its TLS (with the SETTINGS) by dialTimeout.
   */
  clientHandshakeTimeouts: readonly string[];
  /** Whether the server issues 00000000 as the first ID of its life with the kind's default options. */
  firstIdZero: boolean;
  /** Options (both sides) under which the server issues 00000000 first, for specs that need to know an ID in advance. */
  zeroFirst: Record<string, unknown>;
  /** The code a client dial gets when the server refuses it for its address / because the pool is full; what its message says. */
  refusedIp: { code: string; name?: string; message?: RegExp };
  refusedFull: { code: string; name?: string; message?: RegExp };
  /** A transport counter (stats.transportStats) of connections that passed the transport's own handshake. */
  handshakesStat?: string;
  /** What the peer of a stream cut at close sees, where the kind promises it. */
  cutSeenByPeer?: Record<string, unknown>;
  /** A cut reaches the reader as the library's StreamCutError (tcp: often Node's own ECONNRESET socket error). */
  typedCut?: boolean;
  /** Kind-specific checks on a pair of pooled streams (what they are). */
  expectStreams(client: Duplex, server: Duplex): void;
  /** Kind-specific checks after pooled streams ended gracefully on both sides. */
  expectGracefulEnd?(p: PoolPair): void;
  /** Starts a peer a single-mode client of this kind dials: it echoes every stream. */
  echoPeer(): Promise<EchoPeer>;
  server: Record<string, unknown>;
  client: Record<string, unknown>;
}

const transportStats = (pool: PoolPair['client'] | PoolPair['server']): Record<string, unknown> => pool.stats.transportStats;

/** The server's TLS option of a kind that runs TLS (the test certificate), or none. */
const serverTls = (secure: boolean): Record<string, unknown> => {
  if (!secure) return {};
  const { key, cert } = testCertificate();
  return { tls: { key, cert } };
};

/** The tcp transport, plain ('tcp') or over TLS 1.3 ('tls'): a refusal is a bare close. */
function tcpKind(secure: boolean): KindSpec {
  return {
    name: secure ? 'tls' : 'tcp',
    tls: secure,
    halfClose: true,
    serverHandshake: secure,
    clientHandshakeTimeouts: ['handshakeTimeout'],
    firstIdZero: false,
    zeroFirst: { idFormat: 'raw4' },
    refusedIp: { code: 'POOL_ERR_REFUSED' },
    refusedFull: { code: 'POOL_ERR_REFUSED' },
    expectStreams: (client, server) => {
      for (const stream of [client, server]) {
        expect(stream).toBeInstanceOf(secure ? tls.TLSSocket : net.Socket);
        if (secure) expect((stream as tls.TLSSocket).getProtocol()).toBe('TLSv1.3');
        else expect(stream).not.toBeInstanceOf(tls.TLSSocket);
      }
    },
    echoPeer: () => socketEcho(secure),
    get server() {
      return { transport: 'tcp', ...serverTls(secure) };
    },
    client: { transport: 'tcp', ...(secure ? { tls: '1' } : {}) },
  };
}

/** The ws transport, plain ('ws') or over TLS 1.3 ('wss'): a refusal is an HTTP status before the upgrade. */
function wsKind(secure: boolean): KindSpec {
  return {
    name: secure ? 'wss' : 'ws',
    tls: secure,
    halfClose: true, // the half-close extension, on by default between two ends of this library
    serverHandshake: true,
    clientHandshakeTimeouts: ['handshakeTimeout'],
    firstIdZero: true,
    zeroFirst: {},
    refusedIp: { code: 'POOL_ERR_IP_NOT_ALLOWED', message: /403 Forbidden/ },
    refusedFull: { code: 'POOL_ERR_FULL', name: 'PoolFullError', message: /503 Service Unavailable.*pool is full/ },
    handshakesStat: 'upgrades',
    typedCut: true,
    expectStreams: (client, server) => {
      for (const stream of [client, server]) expect(stream.constructor.name).toBe('WebSocketDuplex');
    },
    echoPeer: () => wsEcho(secure),
    get server() {
      return { transport: 'ws', ...serverTls(secure) };
    },
    client: { transport: 'ws', ...(secure ? { tls: '1' } : {}) },
  };
}

/** HTTP/2 always runs TLS; a refusal is a status on the stream (404 full, 403 address). */
const http2Kind: KindSpec = {
  name: 'http2',
  tls: true,
  halfClose: true,
  serverHandshake: true,
  clientHandshakeTimeouts: ['dialTimeout', 'handshakeTimeout'],
  firstIdZero: true,
  zeroFirst: {},
  refusedIp: { code: 'POOL_ERR_IP_NOT_ALLOWED', name: 'IpNotAllowedError', message: /status 403.*unauthorized/ },
  refusedFull: { code: 'POOL_ERR_REFUSED', message: /status 404.*not found/ },
  // RST_STREAM(CANCEL): what destroy() sends on a pooled stream.
  cutSeenByPeer: { code: 'ECONNRESET', name: 'StreamCutError', reason: 'reset', rstCode: 8 },
  typedCut: true,
  expectStreams: (client, server) => {
    // The HTTP/2 streams themselves: nothing sits between the application and the wire.
    expect((client as Duplex & { session?: unknown }).session).toBeDefined();
    expect((server as Duplex & { session?: unknown }).session).toBeDefined();
  },
  expectGracefulEnd: (p) => {
    // Graceful ends cost no resets.
    expect(transportStats(p.client)['resets']).toBe(0);
    expect(transportStats(p.server)['resets']).toBe(0);
  },
  echoPeer: startRawH2Server,
  get server() {
    return { transport: 'http2', ...serverTls(true) };
  },
  client: { transport: 'http2', tls: '1' },
};

export const KINDS: readonly KindSpec[] = [tcpKind(false), tcpKind(true), http2Kind, wsKind(false), wsKind(true)];

let mutualTlsCertificates: { ca: CertificateAuthority; server: GeneratedCertificate; client: GeneratedCertificate } | undefined;
/** A CA made once for the suite, the server's certificate and the one client certificate it issued. */
function mutualTlsCerts(): NonNullable<typeof mutualTlsCertificates> {
  if (!mutualTlsCertificates) {
    const ca = createCertificateAuthority({ commonName: 'conformance CA' });
    mutualTlsCertificates = { ca, server: ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] }), client: ca.issue({ commonName: 'conformance-client' }) };
  }
  return mutualTlsCertificates;
}

/**
 * A TLS kind with mutual TLS on top ('tls+mtls', 'http2+mtls',
 * 'wss+mtls'): the server requires a client certificate from a CA made for
 * the suite, the client presents one, and every pooled stream on the server
 * carries the client's identity. The conformance suite runs them all.
 */
export function withMutualTls(base: KindSpec): KindSpec<string> {
  return {
    ...base,
    name: `${base.name}+mtls`,
    transportName: base.name,
    expectStreams: (client, server) => {
      base.expectStreams(client, server);
      expect(streamIdentity(server)).toMatchObject({ kind: 'certificate', commonName: 'conformance-client' });
      expect(streamIdentity(client)).toBeUndefined(); // the client side is told nothing about the server this way
    },
    get server() {
      const { ca, server } = mutualTlsCerts();
      return { ...base.server, tls: { key: server.key, cert: server.cert, ca: ca.cert, requestCert: true } };
    },
    get client() {
      const { client } = mutualTlsCerts();
      return { ...base.client, cert: client.cert, key: client.key };
    },
  };
}

/** Every built-in TLS kind with mutual TLS on top. */
export const mutualTlsKinds = (): Array<KindSpec<string>> => KINDS.filter((kind) => kind.tls).map(withMutualTls);

/** The shared key the '+auth' kinds use on both ends. */
export const CONFORMANCE_AUTH_KEY = 'c0nf0rmance-Key-9f3Xq7LmZ2vB8nWd';

/**
 * A kind with shared-key authentication on both ends ('tcp+auth',
 * 'tls+auth', 'http2+auth', 'ws+auth', 'wss+auth'): every pooled stream on
 * the server carries the key's id.
 */
export function withSharedKey(base: KindSpec): KindSpec<string> {
  return {
    ...base,
    name: `${base.name}+auth`,
    transportName: base.name,
    expectStreams: (client, server) => {
      base.expectStreams(client, server);
      expect(streamIdentity(server)).toEqual({ kind: 'key', id: 'conformance' });
      expect(streamIdentity(client)).toBeUndefined();
    },
    get server() {
      return { ...base.server, auth: { key: [{ id: 'conformance', key: CONFORMANCE_AUTH_KEY }] } };
    },
    get client() {
      return { ...base.client, auth: { key: CONFORMANCE_AUTH_KEY } };
    },
  };
}

/** The built-in kinds wired for shared-key authentication, with it on. */
export const sharedKeyKinds = (): Array<KindSpec<string>> => KINDS.map(withSharedKey);

/** Every built-in kind's name, for specs that run over all of them. */
export const KIND_NAMES: readonly Kind[] = KINDS.map((spec) => spec.name);

/**
 * The table the conformance suite runs over: the built-in kinds and any
 * kinds of transports from outside the library. Other specs stay on the
 * built-in KINDS.
 */
export const conformanceKinds = (...extra: ReadonlyArray<KindSpec<string>>): ReadonlyArray<KindSpec<string>> => [...KINDS, ...extra];

export function kindSpec(kind: Kind): KindSpec {
  const spec = KINDS.find((k) => k.name === kind);
  if (!spec) throw new Error(`no transport kind ${kind}`);
  return spec;
}

/** The kinds named, in table order. */
export const kinds = (...names: Kind[]): KindSpec[] => KINDS.filter((k) => names.includes(k.name));

/** The server side of a kind on 127.0.0.1:0, with `extra` core/transport options on top. */
export function serverConfig(kind: Kind, extra: Record<string, unknown> = {}): ServerPoolConfig {
  return { host: '127.0.0.1', port: 0, ...kindSpec(kind).server, ...extra } as ServerPoolConfig;
}

/** The client side of a kind (without the address), with `extra` on top. */
export function clientConfig(kind: Kind, extra: Record<string, unknown> = {}): Partial<ClientPoolConfig> {
  return { ...kindSpec(kind).client, ...extra } as Partial<ClientPoolConfig>;
}

/** A started server pool of `kind` on 127.0.0.1:0 and a started client pool dialing it. */
export function startKind(kind: Kind, server: Record<string, unknown> = {}, client: Record<string, unknown> = {}): Promise<PoolPair> {
  return startPair(serverConfig(kind, server), clientConfig(kind, client));
}

/** Whether the kind runs TLS on the pooled connection. */
export const usesTls = (kind: Kind): boolean => kindSpec(kind).tls;
