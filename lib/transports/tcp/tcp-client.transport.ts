import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AuthHandshakeError, DialError, HandshakeError, InvalidOptionsError, PoolError, PoolRefusedError } from '../../core/errors.js';
import { decodeId, idWireLength, type IdWireForm } from '../../core/ids.js';
import type { ClientTransport, DialContext, DialResult } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { endpointSource, type AddressResolver, type Endpoint, type EndpointInput } from '../common/endpoint.js';
import { readExact } from '../common/read-exact.js';
import { resetOnCut } from './reset-on-cut.js';
import { readClientTls, type CaInput, type ClientTlsConfig, type TlsModeInput } from '../common/tls.js';
import { serverMaySpeakTlsHint } from '../common/tls-mismatch.js';
import { connectTcp, secureConnect, whenConnected } from '../common/connect.js';
import { describeError } from '../common/describe-error.js';
import { poolClosed } from '../common/pool-signal.js';
import { resolveClientAuth, type ClientAuth, type ClientAuthOptions } from '../../auth/keys.js';
import { looksLikeTcpChallenge } from '../../auth/tcp-wire.js';
import { tcpClientAuthentication } from './tcp-auth.js';

export interface TcpClientOptions {
  /** Where the server pool listens: "host:port", "[v6]:port" or { host, port }. */
  address?: EndpointInput;
  /** Asked on every dial; may return a different endpoint each time. */
  addressResolver?: AddressResolver;
  /** Opens the raw connection yourself (a proxy, a socket path...); TLS and the ID exchange still run on top. */
  dialer?: (context: { signal: AbortSignal }) => Duplex | Promise<Duplex>;
  /** "0" plain (default), "1" TLS 1.3 unverified, "2" TLS 1.3 verified against hostname; aliases accepted. */
  tls?: TlsModeInput;
  /** SNI and verification name in mode "2" (and SNI in mode "1" when set). */
  hostname?: string;
  /** Trusted CA certificate(s) for mode "2" (default: Node's root store). */
  ca?: CaInput;
  /** Mutual TLS: this client's certificate and key (PEM), for a server with `tls.requestCert`. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Mode "1" (or "2"): accept only a server whose certificate or public key has this SHA-256 fingerprint (or one of these). */
  pin?: string | string[];
  /** TLS session resumption for later dials (TLS 1.3 tickets, a fresh (EC)DHE each time; default true): false makes every dial a full handshake. */
  tlsResume?: boolean;
  /** TCP keep-alive period in ms (default 30000). */
  keepAlive?: number;
  /** ID wire form: 'hex8' (8 ASCII hex bytes, default) or 'raw4' (4 raw bytes). */
  idFormat?: IdWireForm;
  /** Bound on connecting, in ms (default 10000). */
  dialTimeout?: number;
  /** Bound on TLS, the authentication exchange and the ID read, in ms (default 10000). */
  handshakeTimeout?: number;
  /**
   * Shared-key authentication of every pooled connection (off by default:
   * the wire is then the Go pools' own). The server must have `auth` too.
   * `key`: the key (string or Buffer), `{ env: 'NAME' }` or `{ file: '/path' }`.
   */
  auth?: ClientAuthOptions;
}

export const TCP_CLIENT_OPTION_KEYS = [
  'address', 'addressResolver', 'dialer', 'tls', 'hostname', 'ca', 'cert', 'key', 'pin', 'tlsResume', 'keepAlive', 'idFormat', 'dialTimeout', 'handshakeTimeout', 'auth',
] as const;

interface ResolvedTcpClient {
  endpoint: () => Promise<Endpoint>;
  dialer?: TcpClientOptions['dialer'];
  tls: ClientTlsConfig;
  keepAlive: number;
  idFormat: IdWireForm;
  dialTimeout: number;
  handshakeTimeout: number;
  /** Resolved `auth` (the key held out of reach of JSON and inspect); unset: no authentication. */
  auth?: ClientAuth;
}

export function resolveTcpClientOptions(read: OptionReader): ResolvedTcpClient {
  const dialer = read.fn<NonNullable<TcpClientOptions['dialer']>>('dialer');
  const resolver = read.fn<AddressResolver>('addressResolver');
  const address = read.raw('address');
  if (!dialer && !resolver && address === undefined) {
    throw new InvalidOptionsError(read.name('address'), 'a tcp client pool needs address ("host:port"), addressResolver or dialer');
  }
  const auth = resolveClientAuth(read.raw('auth'), read.name('auth'));
  const endpoint = dialer && address === undefined && !resolver ? async () => ({ host: 'dialer', port: 0 }) : endpointSource(address, resolver, read.name('address'));
  return {
    endpoint,
    ...(dialer ? { dialer } : {}),
    tls: readClientTls(read),
    keepAlive: read.ms('keepAlive', 30_000),
    idFormat: read.oneOf('idFormat', ['hex8', 'raw4'] as const, 'hex8'),
    dialTimeout: read.ms('dialTimeout', 10_000),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...(auth ? { auth } : {}),
  };
}

/**
 * Dials the server pool over TCP, optionally wraps the socket in TLS 1.3,
 * and reads the ID. The pooled stream is the socket itself (or its
 * TLSSocket): no extra layer between the application and the wire. It is
 * half-open (`allowHalfOpen`): the peer's FIN ends one direction, so a
 * reply after a request's FIN still arrives; the application ends its side.
 * During the handshake a FIN still ends it (`readExact`, and Node's own
 * check before `secureConnect`).
 */
export class TcpClientTransport implements ClientTransport {
  readonly kind: string;

  /**
   * Not for direct use: takes options already validated. Build one with `tcpTransport.client(options)`
   * (or give the pool factory `transport: 'tcp'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedTcpClient) {
    this.kind = config.tls.mode === '0' ? 'tcp' : 'tls';
  }

  async dial({ signal, readId }: DialContext): Promise<DialResult> {
    if (signal.aborted) throw poolClosed();
    const socket = await this.connect(signal);
    let stream: Duplex = socket;
    const started = Date.now();
    try {
      const deadline = started + this.config.handshakeTimeout;
      if (this.config.tls.mode !== '0') stream = await secureConnect(socket, this.config.tls, this.config.handshakeTimeout, signal);
      if (!readId) return { id: null, stream: pooled(stream, socket) };
      const { auth, idFormat } = this.config;
      if (auth) await tcpClientAuthentication(stream, auth, idFormat, Math.max(1, deadline - Date.now()), signal, NO_ID_REFUSAL);
      const bytes = await readExact(stream, idWireLength(idFormat), Math.max(1, deadline - Date.now()), signal, { refusal: NO_ID_REFUSAL });
      // A client without auth meeting a server that asks for a proof: say so, not "invalid ID".
      if (!auth && looksLikeTcpChallenge(bytes)) throw new AuthHandshakeError('required', 'the server sent an authentication challenge where the ID should be');
      return { id: decodeId(bytes, idFormat), stream: pooled(stream, socket) };
    } catch (error) {
      stream.destroy();
      socket.destroy();
      throw this.plainToTls(error, socket, started);
    }
  }

  /**
   * A plain client that got not one byte: a plain pool server writes the
   * ID at once and refuses with a bare close at once, so silence until our
   * timeout, or a close after a long silence (the server's own handshake
   * timeout), points at a TLS server waiting for a ClientHello.
   */
  private plainToTls(error: unknown, socket: Duplex, started: number): unknown {
    if (this.config.tls.mode !== '0' || !(socket instanceof net.Socket) || socket.bytesRead > 0) return error;
    if (!(error instanceof HandshakeError || error instanceof PoolRefusedError) || error.code === 'POOL_ERR_TLS_MISMATCH') return error;
    const silentFor = Date.now() - started;
    const timedOut = error instanceof HandshakeError && /did not arrive within/.test(error.message);
    if (!timedOut && silentFor < SILENCE_BEFORE_TLS_HINT) return error;
    return new HandshakeError(`${error.message}; no byte came in ${silentFor} ms: ${serverMaySpeakTlsHint()}`, { cause: error });
  }

  async close(): Promise<void> {
    // Nothing shared between connections: the secure context needs no release.
  }

  /** The raw connection: ours (TCP to the address), or the user's dialer's, then connected. */
  private async connect(signal: AbortSignal): Promise<Duplex> {
    const { dialer, keepAlive, dialTimeout } = this.config;
    if (!dialer) {
      const endpoint = await dialStep(this.config.endpoint, 'the address');
      return connectTcp(endpoint, { keepAlive, timeout: dialTimeout, allowHalfOpen: true }, signal);
    }
    const socket = await dialStep(() => dialer({ signal }), 'the custom dialer');
    if (socket instanceof net.Socket) {
      // Ours is created with all three; a user's socket gets them here
      // (a Duplex may change allowHalfOpen until its 'end').
      socket.setNoDelay(true);
      socket.setKeepAlive(true, keepAlive);
      socket.allowHalfOpen = true;
      await whenConnected(socket, 'the custom dialer', dialTimeout, signal);
    }
    return socket;
  }
}

/** A step before the connection (resolving the address, the user's dialer): a failure is a DialError. */
async function dialStep<T>(step: () => T | Promise<T>, where: string): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof PoolError) throw error;
    throw new DialError(`dialing ${where} failed: ${describeError(error)}`, { cause: error });
  }
}

const NO_ID_REFUSAL = 'the server closed the connection without sending an ID (it refuses: pool full or this address is not allowed)';

/** A close after this much silence is no bare-close refusal (those come at once). */
const SILENCE_BEFORE_TLS_HINT = 1000;

/** From here a destroy() before end() is a cut the peer reads as one (an RST), and an RST read as an end is caught. */
function pooled(stream: Duplex, socket: Duplex): Duplex {
  resetOnCut(stream, socket);
  return stream;
}
