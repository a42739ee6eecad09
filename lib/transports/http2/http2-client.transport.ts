import type { Duplex } from 'node:stream';
import { constants as http2Constants, type ClientHttp2Stream, type Http2Stream, type IncomingHttpHeaders } from 'node:http2';
import { AuthHandshakeError, AuthRefusedError, DialError, HandshakeError, InvalidOptionsError, PoolError, PoolFullError, PoolRefusedError, refusalForStatus, StreamCutError } from '../../core/errors.js';
import { AUTH_HEADER, isAuthChallenge } from '../../auth/header.js';
import { resolveClientAuth, type ClientAuth, type ClientAuthOptions } from '../../auth/keys.js';
import { Disposers, listen } from '../../core/listeners.js';
import type { ClientTransport, DialContext, DialResult } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { describeError } from '../common/describe-error.js';
import { endpointSource, type AddressResolver, type Endpoint, type EndpointInput } from '../common/endpoint.js';
import { readExact } from '../common/read-exact.js';
import { poolClosed, whenClosed } from '../common/pool-signal.js';
import { parseTlsMode, readClientTls, type CaInput, type ClientTlsConfig, type TlsModeInput } from '../common/tls.js';
import { SessionPool } from './session-pool.js';
import { resolveHttp2Flow, type Http2FlowOptions, type ResolvedHttp2Flow } from './http2-settings.js';
import { linkDiagnostics } from '../../diagnostics/pool-events.js';

export interface Http2ClientOptions extends Http2FlowOptions {
  /** Where the server pool listens: "host:port", "[v6]:port" or { host, port }. */
  address?: EndpointInput;
  /** Asked for every new session; may return a different endpoint each time. */
  addressResolver?: AddressResolver;
  /** Required: "1" TLS 1.3 unverified, "2" TLS 1.3 verified against hostname ("0" is an error: HTTP/2 here is TLS only). */
  tls?: TlsModeInput;
  /** SNI, verification name in mode "2", and `:authority` (default: the address's host). */
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
  /** PING period and TCP keep-alive, in ms (default 30000). */
  keepAlive?: number;
  /** A PING not answered within this many ms marks the session dead (default 15000). */
  pingTimeout?: number;
  /** Most sessions open at once to the server (default 8); more are opened only when the peer's stream limit asks for it. */
  maxSessions?: number;
  /**
   * RST_STREAMs one session may cost before it is replaced (default 800; a
   * Node server answers about 1000 with GOAWAY). At half of it the session
   * takes no new streams and closes once its streams end.
   */
  resetBudget?: number;
  /** Bound on TCP connect, TLS and the server's SETTINGS, in ms (default 10000). */
  dialTimeout?: number;
  /** Bound on the response headers plus the ID, in ms (default 10000). */
  handshakeTimeout?: number;
  /**
   * Shared-key authentication (off by default: the Go wire): every
   * `POST /stream` carries a proof of the key, bound to the session's TLS
   * connection, and the server's proof is checked before the ID is taken.
   * See docs/extensions/auth.md.
   */
  auth?: ClientAuthOptions;
}

export const HTTP2_CLIENT_OPTION_KEYS = [
  'address', 'addressResolver', 'tls', 'hostname', 'ca', 'cert', 'key', 'pin', 'tlsResume', 'keepAlive', 'pingTimeout', 'maxSessions', 'resetBudget',
  'dialTimeout', 'handshakeTimeout', 'initialWindowSize', 'sessionWindowSize', 'maxSessionMemory', 'auth',
] as const;

export interface ResolvedHttp2Client extends ResolvedHttp2Flow {
  endpoint: () => Promise<Endpoint>;
  tls: ClientTlsConfig;
  keepAlive: number;
  pingTimeout: number;
  maxSessions: number;
  resetBudget: number;
  dialTimeout: number;
  handshakeTimeout: number;
  /** Shared-key authentication; undefined: none (the default wire). */
  auth?: ClientAuth;
}

export function resolveHttp2ClientOptions(read: OptionReader): ResolvedHttp2Client {
  const endpoint = endpointSource(read.raw('address'), read.fn<AddressResolver>('addressResolver'), read.name('address'));
  if (parseTlsMode(read.raw('tls'), read.name('tls')) === '0') {
    throw new InvalidOptionsError(read.name('tls'), 'the http2 transport runs over TLS 1.3 only: set tls to "1" (insecure: no verification) or "2" (verify against hostname)');
  }
  const auth = resolveClientAuth(read.raw('auth'), read.name('auth'));
  return {
    endpoint,
    tls: readClientTls(read),
    ...(auth ? { auth } : {}),
    keepAlive: read.ms('keepAlive', 30_000),
    pingTimeout: read.ms('pingTimeout', 15_000),
    maxSessions: read.int('maxSessions', 8, 1, 1024),
    resetBudget: read.int('resetBudget', 800, 2, 1_000_000),
    dialTimeout: read.ms('dialTimeout', 10_000),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...resolveHttp2Flow(read),
  };
}

/**
 * Dials pooled streams as requests on shared HTTP/2 sessions (Go `nph2`).
 * A stream is `POST /stream` with a streamed body; the server's first four
 * response bytes are the ID. The pooled stream handed to the application
 * is Node's `ClientHttp2Stream` itself: request body out, response body in.
 * Which session carries it, and when sessions open and close, is the
 * `SessionPool`'s business (session-pool.ts).
 */
export class Http2ClientTransport implements ClientTransport {
  readonly kind = 'http2';
  private readonly sessions: SessionPool;

  /**
   * Not for direct use: takes options already validated. Build one with `http2Transport.client(options)`
   * (or give the pool factory `transport: 'http2'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedHttp2Client) {
    this.sessions = new SessionPool(config);
    linkDiagnostics(this.sessions, this);
  }

  async dial({ signal, readId }: DialContext): Promise<DialResult> {
    if (signal.aborted || this.sessions.isClosing) throw poolClosed();
    const session = await this.sessions.acquire(signal);
    let stream: ClientHttp2Stream;
    // With authentication, this request's proof (numbered on its session); undefined without, and in
    // single mode (no ID read): its peer is the target itself, not a server pool (docs/extensions/auth.md).
    const proof = readId ? session.proof() : undefined;
    try {
      stream = session.request(proof ? { [AUTH_HEADER]: proof.header } : {});
    } catch (error) {
      throw new DialError(`opening an HTTP/2 stream failed: ${describeError(error)}`, { cause: error });
    }
    if (proof) {
      // Noted as the response arrives, before the GOAWAY that follows a refusal cuts this session's other streams.
      stream.once('response', (headers: IncomingHttpHeaders) => {
        if (isAuthChallenge(Number(headers[':status']), headers['www-authenticate'])) session.authRefused = true;
      });
    }
    try {
      const deadline = Date.now() + this.config.handshakeTimeout;
      const headers = await waitForResponse(stream, this.config.handshakeTimeout, signal);
      const status = Number(headers[':status']);
      if (isAuthChallenge(status, headers['www-authenticate'])) {
        // 401 with our challenge: the server wants a proof (and says nothing of why one failed). Its body
        // is read to its end, as for any refusal: a stream with unread data never closes, and holds its slot.
        await readSome(stream, 64, Math.max(1, deadline - Date.now()));
        throw proof ? new AuthRefusedError() : new AuthHandshakeError('required', 'HTTP/2 status 401');
      }
      if (status !== 200) {
        const body = await readSome(stream, 64, Math.max(1, deadline - Date.now()));
        throw refusalForStatus(status, `the server refused the stream with status ${status}${body ? ` (${JSON.stringify(body)})` : ''}`);
      }
      // The server proves the key before its ID is read: an impostor gets no application byte.
      proof?.verifyResponse(headers[AUTH_HEADER]);
      // The ID is always sent on this wire, also in single mode: it is not application data.
      const bytes = await readExact(stream, 4, Math.max(1, deadline - Date.now()), signal);
      return { id: readId ? bytes.toString('hex') : null, stream };
    } catch (error) {
      stream.on('error', () => undefined);
      if (!stream.destroyed) stream.close(http2Constants.NGHTTP2_CANCEL);
      // A cut before the ID is a failed handshake, not a cut of a stream in use.
      if (error instanceof PoolError && !(error instanceof StreamCutError)) throw error;
      // Not processed because the server retired the session after refusing a proof on it: that refusal is the cause.
      if (session.authRefused && error instanceof StreamCutError && error.reason === 'goaway') throw new AuthRefusedError(undefined, { cause: error });
      throw new HandshakeError(`the HTTP/2 stream failed before its ID arrived: ${describeError(error)}`, { cause: error });
    }
  }

  /** A pooled stream whose session died (socket lost, PING timeout) is not handed out. */
  isUsable(stream: Duplex): boolean {
    const session = (stream as Partial<Http2Stream>).session;
    return session === undefined || !session.destroyed;
  }

  /** See `SessionPool.close`: sessions close once their streams end, within `timeout` plus a grace. */
  close(timeout: number): Promise<void> {
    return this.sessions.close(timeout);
  }

  stats(): Record<string, unknown> {
    return this.sessions.stats();
  }
}

/** Waits for the response headers, rejecting on error, close, timeout or the pool's close. */
function waitForResponse(stream: ClientHttp2Stream, timeout: number, signal: AbortSignal): Promise<IncomingHttpHeaders> {
  if (signal.aborted) return Promise.reject(poolClosed('the handshake'));
  return new Promise((resolve, reject) => {
    const undo = new Disposers();
    const finish = (error: unknown, headers?: IncomingHttpHeaders): void => {
      undo.dispose();
      if (headers) resolve(headers);
      else reject(error);
    };
    undo.add(
      listen(stream, {
        response: (headers: IncomingHttpHeaders) => finish(null, headers),
        // RST_STREAM(REFUSED_STREAM) before any response: the Go server's "full" (PROTOCOL.md), a refusal, not a failed handshake.
        error: (error: unknown) =>
          finish(stream.rstCode === http2Constants.NGHTTP2_REFUSED_STREAM ? new PoolFullError('the server refused the stream (RST_STREAM REFUSED_STREAM: its pool is full)', { cause: error }) : error),
        close: () => finish(new PoolRefusedError(`the server closed the stream before answering (RST_STREAM code ${String(stream.rstCode)})`)),
      }),
    );
    const timer = setTimeout(() => finish(new HandshakeError(`no response headers within ${timeout} ms`)), timeout);
    undo.add(() => clearTimeout(timer));
    undo.add(whenClosed(signal, () => finish(poolClosed('the handshake'))));
  });
}

/** Up to `max` bytes of a refusal's body, for the error message; never fails. */
function readSome(stream: ClientHttp2Stream, max: number, timeout: number): Promise<string> {
  return new Promise((resolve) => {
    const undo = new Disposers();
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (): void => {
      undo.dispose();
      resolve(Buffer.concat(chunks).subarray(0, max).toString('utf8').trim());
    };
    undo.add(
      listen(stream, {
        data: (chunk: Buffer) => {
          chunks.push(chunk);
          length += chunk.length;
          if (length >= max) finish();
        },
        end: finish,
        close: finish,
        error: finish,
      }),
    );
    const timer = setTimeout(finish, Math.min(timeout, 1000));
    undo.add(() => clearTimeout(timer));
  });
}
