import http from 'node:http';
import tlsModule from 'node:tls';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { type ClientOptions, type RawData } from 'ws';
import { AuthHandshakeError, AuthRefusedError, CertificatePinError, DialError, HandshakeError, InvalidIdError, InvalidOptionsError, PoolError, refusalForStatus } from '../../core/errors.js';
import { AUTH_HEADER, HeaderClientAuth, isAuthChallenge, type ClientHeaderProof } from '../../auth/header.js';
import { resolveClientAuth, type ClientAuth, type ClientAuthOptions } from '../../auth/keys.js';
import { channelBinding } from '../../auth/proof.js';
import { connectTcp, secureConnect } from '../common/connect.js';
import { Disposers, listen } from '../../core/listeners.js';
import { decodeId } from '../../core/ids.js';
import type { ClientTransport, DialContext, DialResult } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { endpointSource, formatEndpoint, type AddressResolver, type Endpoint, type EndpointInput } from '../common/endpoint.js';
import { describeError } from '../common/describe-error.js';
import { poolClosed, whenClosed } from '../common/pool-signal.js';
import { checkPin, clientTlsOptions, createClientTls, readClientTls, type CaInput, type ClientTlsConfig, type TlsModeInput } from '../common/tls.js';
import { wsMasking } from './masking.js';
import { closeWebSocket, HALF_CLOSE_HEADER, HALF_CLOSE_VERSION, toBuffer, WebSocketDuplex, type WsKeepAlive } from './ws-duplex.js';
import { readWsCommonOptions, watchOversized, type WsCommonOptions } from './ws-options.js';

export interface WsClientOptions extends WsCommonOptions {
  /** Where the server pool listens: "host:port", "[v6]:port" or { host, port }. */
  address?: EndpointInput;
  /** Asked on every dial; may return a different endpoint each time. */
  addressResolver?: AddressResolver;
  /**
   * "0" `ws://` (default; but `wss://` verified against hostname, or the
   * address's host, when the port is 443), "1" `wss://` TLS 1.3 unverified,
   * "2" `wss://` TLS 1.3 verified against hostname; aliases accepted.
   */
  tls?: TlsModeInput;
  /** SNI, verification name and `Host` header (default: the address's host). */
  hostname?: string;
  /** Trusted CA certificate(s) for verification (default: Node's root store). */
  ca?: CaInput;
  /** Mutual TLS: this client's certificate and key (PEM), for a server with `tls.requestCert`. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Mode "1" (or "2"): accept only a server whose certificate or public key has this SHA-256 fingerprint (or one of these). */
  pin?: string | string[];
  /** TLS session resumption for later dials (TLS 1.3 tickets, a fresh (EC)DHE each time; default true): false makes every dial a full handshake. */
  tlsResume?: boolean;
  /** Request path of the upgrade (default '/', what the Go client asks for). */
  path?: string;
  /** Extra request headers, e.g. `{ Authorization: 'Bearer …' }` for a reverse proxy in front of the server. */
  headers?: Record<string, string>;
  /** An `http.Agent` (`https.Agent` for wss) that opens the connection, e.g. an HTTP(S) proxy agent. */
  agent?: http.Agent;
  /**
   * Shared-key authentication (off by default: the Go wire): the upgrade
   * request carries a proof of the key (on wss bound to this TLS
   * connection, on ws:// to the clock), and the server's proof on the 101
   * is checked before the ID is taken. See docs/extensions/auth.md.
   */
  auth?: ClientAuthOptions;
}

export const WS_CLIENT_OPTION_KEYS = [
  'address', 'addressResolver', 'tls', 'hostname', 'ca', 'cert', 'key', 'pin', 'tlsResume', 'path', 'headers', 'agent', 'auth',
  'keepAlive', 'pongTimeout', 'requirePong', 'maxPayload', 'handshakeTimeout', 'closeHandshakeTimeout', 'halfClose',
] as const;

interface ResolvedWsClient {
  endpoint: () => Promise<Endpoint>;
  tls: ClientTlsConfig;
  hostname?: string;
  ca?: CaInput;
  path: string;
  headers: Record<string, string>;
  agent?: http.Agent;
  auth?: ClientAuth;
  keepAlive: WsKeepAlive;
  maxPayload: number;
  handshakeTimeout: number;
  closeHandshakeTimeout: number;
  halfClose: boolean;
}

export function resolveWsClientOptions(read: OptionReader): ResolvedWsClient {
  const endpoint = endpointSource(read.raw('address'), read.fn<AddressResolver>('addressResolver'));
  const hostname = read.string('hostname');
  const ca = read.raw('ca') as CaInput | undefined;
  const path = read.string('path') ?? '/';
  if (!path.startsWith('/') || /[\s#]/.test(path)) read.fail('path', 'a request path starting with "/", without spaces or "#"');
  const headers = read.raw('headers');
  if (headers !== undefined && !isHeaderRecord(headers)) read.fail('headers', 'an object of header names to string values');
  const agent = read.raw('agent');
  if (agent !== undefined && !(agent instanceof http.Agent)) read.fail('agent', 'an http.Agent (https.Agent for wss), e.g. an HTTP(S) proxy agent');
  // The agent opens the TLS connection, out of our sight: a pin could not be checked before the request leaves.
  if (agent !== undefined && read.raw('pin') !== undefined) read.fail('pin', 'no pin together with agent (the agent makes the TLS connection, so the pin could not be checked); pin in mode "1" without an agent, or verify with ca in mode "2"');
  const auth = resolveClientAuth(read.raw('auth'), read.name('auth'));
  const tls = readClientTls(read);
  // The binding is read from the TLS connection before the upgrade is written: an agent's connection is out of reach.
  if (auth?.channelBinding && agent !== undefined && tls.mode !== '0') {
    throw new InvalidOptionsError(read.name('auth.channelBinding'), 'an agent makes the TLS connection, so the proof cannot be bound to it: set auth.channelBinding to false on both ends (the proof then rests on the clock and a nonce), or drop the agent');
  }
  return {
    endpoint,
    tls,
    ...(auth ? { auth } : {}),
    ...(hostname !== undefined ? { hostname } : {}),
    ...(ca !== undefined ? { ca } : {}),
    path,
    headers: (headers as Record<string, string> | undefined) ?? {},
    ...(agent ? { agent: agent as http.Agent } : {}),
    ...readWsCommonOptions(read),
  };
}

/**
 * Dials the server pool with an HTTP/1.1 upgrade to WebSocket (no
 * permessage-deflate) and takes the first binary message as the ID: its
 * first 4 bytes, hex-encoded; bytes after them are the stream's first bytes.
 * The pooled stream is a `WebSocketDuplex` over the connection.
 */
export class WsClientTransport implements ClientTransport {
  readonly kind: string;
  /** Verification for mode "0" on port 443, made on first use and kept for the pool's life. */
  private implicitTls?: ClientTlsConfig;
  /** Messages refused for exceeding maxPayload (closed with 1009). */
  private oversizedMessages = 0;

  /**
   * Not for direct use: takes options already validated. Build one with `wsTransport.client(options)`
   * (or give the pool factory `transport: 'ws'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedWsClient) {
    this.kind = config.tls.mode === '0' ? 'ws' : 'wss';
  }

  async dial({ signal, readId }: DialContext): Promise<DialResult> {
    if (signal.aborted) throw poolClosed();
    let endpoint: Endpoint;
    try {
      endpoint = await this.config.endpoint();
    } catch (error) {
      if (error instanceof PoolError) throw error;
      throw new DialError(`resolving the address failed: ${describeError(error)}`, { cause: error });
    }
    const tls = this.tlsFor(endpoint);
    const url = `${tls ? 'wss' : 'ws'}://${formatEndpoint(endpoint)}${this.config.path}`;
    const deadline = Date.now() + this.config.handshakeTimeout;
    // Authentication bound to TLS: the connection is made here, so its binding is known before the upgrade header is written.
    // Not in single mode (no ID read): its peer is the target itself, not a server pool (docs/extensions/auth.md).
    const auth = readId ? this.config.auth : undefined;
    const bound = auth !== undefined && auth.channelBinding && tls !== undefined && this.config.agent === undefined;
    const socket = bound ? await this.connectTls(endpoint, tls, signal) : undefined;
    const proof = auth ? new HeaderClientAuth(auth, 'ws', socket ? channelBinding(socket) : undefined).proof() : undefined;
    const timeout = Math.max(1, deadline - Date.now());
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, this.clientOptions(endpoint, tls, timeout, proof, socket));
    } catch (error) {
      socket?.destroy();
      // ws parses the URL synchronously; a URL cannot carry an IPv6 zone (fe80::1%eth0).
      const hint = endpoint.host.includes('%') ? ': a WebSocket URL cannot name an IPv6 zone; use an address without one' : '';
      throw new DialError(`cannot dial ${url}: ${describeError(error)}${hint}`, { cause: error });
    }
    watchOversized(ws, () => this.oversizedMessages++);
    return this.handshake(ws, url, readId, signal, timeout, proof);
  }

  /** TCP then TLS 1.3 (pin, client certificate) within the handshake deadline, for an authenticated wss dial. */
  private async connectTls(endpoint: Endpoint, tls: ClientTlsConfig, signal: AbortSignal): Promise<tlsModule.TLSSocket> {
    const { handshakeTimeout, keepAlive } = this.config;
    const deadline = Date.now() + handshakeTimeout;
    const raw = await connectTcp(endpoint, { keepAlive: keepAlive.keepAlive, timeout: handshakeTimeout }, signal);
    const servername = tls.hostname === undefined && isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {};
    return secureConnect(raw, tls, Math.max(1, deadline - Date.now()), signal, servername);
  }

  /**
   * A pooled stream whose WebSocket began closing is not handed out, unless
   * the peer's bytes wait in it: those (and the end after them) are the
   * taker's, as on a tcp socket that got data and then a FIN.
   */
  isUsable(stream: Duplex): boolean {
    return !(stream instanceof WebSocketDuplex) || stream.open || stream.readableLength > 0;
  }

  async close(): Promise<void> {
    // Nothing shared between connections: the secure context needs no release, the agent is the caller's.
  }

  stats(): Record<string, unknown> {
    return { oversizedMessages: this.oversizedMessages, masking: wsMasking() };
  }

  private tlsFor(endpoint: Endpoint): ClientTlsConfig | undefined {
    const { tls } = this.config;
    if (tls.mode !== '0') return tls;
    if (endpoint.port !== 443) return undefined;
    // ws:// to port 443 is wss:// with verification, as in the Go client.
    const context = (this.implicitTls ??= createClientTls('1', undefined, this.config.ca)).secureContext!;
    return { mode: '2', hostname: this.config.hostname ?? endpoint.host, secureContext: context };
  }

  private clientOptions(
    endpoint: Endpoint,
    tls: ClientTlsConfig | undefined,
    handshakeTimeout: number,
    proof: ClientHeaderProof | undefined,
    connected: tlsModule.TLSSocket | undefined,
  ): ClientOptions & { closeTimeout: number } {
    const { hostname } = this.config;
    const headers: Record<string, string> = {};
    if (hostname && hostname !== endpoint.host) {
      const port = endpoint.port === (tls ? 443 : 80) ? '' : `:${endpoint.port}`;
      headers['Host'] = `${isIP(hostname) === 6 ? `[${hostname}]` : hostname}${port}`;
    }
    // The half-close offer (a Go npws server ignores it); a user's headers come after and may override it.
    if (this.config.halfClose) headers[HALF_CLOSE_HEADER] = HALF_CLOSE_VERSION;
    Object.assign(headers, this.config.headers);
    // After the user's headers: the proof is not theirs to replace (in any spelling of the name).
    if (proof) {
      for (const name of Object.keys(headers)) if (name.toLowerCase() === AUTH_HEADER) delete headers[name];
      headers[AUTH_HEADER] = proof.header;
    }
    const createConnection = connected ? () => connected : tls?.pin || tls?.sessions ? ownTlsConnect(tls) : undefined;
    return {
      perMessageDeflate: false,
      maxPayload: this.config.maxPayload,
      autoPong: true,
      // Text is a protocol error here, checked by type; its bytes need no UTF-8 check.
      skipUTF8Validation: true,
      followRedirects: false,
      handshakeTimeout,
      // ws >= 8.19 (its types lag behind): how long close() waits for the peer's close frame.
      closeTimeout: this.config.closeHandshakeTimeout,
      headers,
      ...(this.config.agent ? { agent: this.config.agent } : {}),
      // ws hands these to tls.connect; its types model checkServerIdentity after an older API.
      ...((tls ? clientTlsOptions(tls) : {}) as ClientOptions),
      // Our own connection (authenticated wss: already secured) or ws's, pinned.
      ...(createConnection ? { createConnection: createConnection as unknown as ClientOptions['createConnection'] } : {}),
    };
  }

  private handshake(ws: WebSocket, url: string, readId: boolean, signal: AbortSignal, handshakeTimeout: number, proof: ClientHeaderProof | undefined): Promise<DialResult> {
    const { keepAlive } = this.config;
    return new Promise<DialResult>((resolve, reject) => {
      let socket: Duplex | undefined;
      let halfClose = false;
      /** The server's proof on the 101 did not verify: the dial fails on 'open', before the ID. */
      let authError: PoolError | undefined;
      const undo = new Disposers();
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        undo.dispose();
        return true;
      };
      const fail = (error: PoolError, closeCode = 1000): void => {
        if (!settle()) return;
        ws.on('error', () => undefined);
        closeWebSocket(ws, socket, closeCode);
        reject(error);
      };
      const succeed = (id: string | null, initial?: Buffer): void => {
        if (settle()) resolve({ id, stream: new WebSocketDuplex(ws, socket, keepAlive, initial, halfClose) });
      };
      undo.add(
        listen(ws, {
          upgrade: (response: http.IncomingMessage) => {
            socket = response.socket;
            // The server accepted the half-close extension only if it echoes the offer.
            halfClose = this.config.halfClose && response.headers[HALF_CLOSE_HEADER.toLowerCase()] === HALF_CLOSE_VERSION;
            if ('setKeepAlive' in response.socket) response.socket.setKeepAlive(true, keepAlive.keepAlive);
            try {
              proof?.verifyResponse(response.headers[AUTH_HEADER]);
            } catch (error) {
              authError = error as PoolError;
            }
          },
          'unexpected-response': (_request: http.ClientRequest, response: http.IncomingMessage) => {
            const status = response.statusCode ?? 0;
            if (isAuthChallenge(status, response.headers['www-authenticate'])) {
              // 401 with our challenge: the server wants a proof (and says nothing of why one failed).
              fail(proof ? new AuthRefusedError() : new AuthHandshakeError('required', `${url} answered the upgrade with 401`));
              return;
            }
            // closeWebSocket (in fail) aborts the request and its socket: no upgrade, nothing left open.
            fail(refusalForStatus(status, `${url} refused the WebSocket upgrade: ${status} ${response.statusMessage ?? ''}${REFUSAL_HINTS[status] ?? ''}`.trim()));
          },
          open: () => {
            if (authError) return fail(authError, 1008);
            if (!readId) succeed(null);
          },
          message: (data: RawData, isBinary: boolean) => {
            if (!isBinary) {
              fail(new HandshakeError(`${url} sent a text message where the ID belongs (the first message must be 4 binary bytes)`), 1003);
              return;
            }
            const bytes = toBuffer(data);
            if (bytes.length < 4) {
              fail(new InvalidIdError(`expected the first message to hold a 4-byte ID, got ${bytes.length} bytes (hex ${bytes.toString('hex')})`), 1002);
              return;
            }
            let id: string;
            try {
              id = decodeId(bytes.subarray(0, 4), 'raw4');
            } catch (error) {
              fail(error as PoolError, 1002);
              return;
            }
            succeed(id, bytes.subarray(4));
          },
          error: (error: Error) => fail(classify(error, url)),
          close: (code: number) => fail(new HandshakeError(`${url} closed the WebSocket (code ${code}) before sending the ID`)),
        }),
      );
      const timer = setTimeout(() => fail(new HandshakeError(`${url}: the upgrade and the ID did not complete within ${handshakeTimeout} ms`)), handshakeTimeout);
      undo.add(() => clearTimeout(timer));
      undo.add(whenClosed(signal, () => fail(poolClosed('the handshake'))));
    });
  }
}

const REFUSAL_HINTS: Record<number, string> = {
  403: ' (this address is not allowed, or a proxy in front wants credentials: see headers)',
  404: ' (no pool at this path: check path)',
  503: ' (the pool is full)',
};

/** Errors ws reports before the upgrade completes. */
const DIAL_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT']);

function classify(error: Error, url: string): PoolError {
  if (error instanceof CertificatePinError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && DIAL_CODES.has(code)) return new DialError(`dialing ${url} failed: ${describeError(error)}`, { cause: error });
  return new HandshakeError(`WebSocket handshake with ${url} failed: ${describeError(error)}`, { cause: error });
}

/**
 * ws's own TLS connect, plus the pin and session resumption: the last
 * ticket of this server is offered (`tlsResume`); the socket stays corked
 * (the upgrade request, and anything after it, waits in it) until the
 * server's certificate matched on 'secureConnect'; a mismatch destroys it
 * with the CertificatePinError, which ws reports as the dial's error. Only
 * a connection that passed the check feeds the tickets of later dials.
 */
function ownTlsConnect(config: ClientTlsConfig): (options: tlsModule.ConnectionOptions) => tlsModule.TLSSocket {
  return (options) => {
    const offered = config.sessions?.session;
    const connectOptions: tlsModule.ConnectionOptions = { ...options, path: undefined as never, ...(offered ? { session: offered } : {}) };
    if (!connectOptions.servername && connectOptions.servername !== '') connectOptions.servername = isIP(String(options.host ?? '')) ? '' : String(options.host ?? '');
    const socket = tlsModule.connect(connectOptions);
    socket.cork();
    socket.once('secureConnect', () => {
      const error = checkPin(config, socket);
      if (error) return void socket.destroy(error);
      const sessions = config.sessions;
      if (sessions) socket.on('session', (session: Buffer) => (sessions.session = session));
      socket.uncork();
    });
    return socket;
  };
}

function isHeaderRecord(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every((v) => typeof v === 'string');
}
