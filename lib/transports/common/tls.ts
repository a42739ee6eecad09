import { isIP } from 'node:net';
import tls from 'node:tls';
import { certificateIdentity } from '../../auth/identity.js';
import { certificateFingerprints, createPinnedIdentityCheck, createSelfSignedCertificate, type CertificateFingerprints } from '../../certs/index.js';
import { InvalidOptionsError } from '../../core/errors.js';
import type { ClientIdentity } from '../../core/stream-identity.js';
import { show, type OptionReader } from '../../core/validate.js';

/**
 * Client TLS modes of the Go pools: "0" plain, "1" TLS 1.3 without
 * verification (open to a man in the middle), "2" TLS 1.3 verified against
 * `hostname` (SNI + certificate check).
 */
export type TlsMode = '0' | '1' | '2';

/** What users may write for a mode: the Go codes, numbers, or readable names. */
export type TlsModeInput = TlsMode | 0 | 1 | 2 | 'none' | 'off' | 'insecure' | 'self-signed' | 'verify' | 'verified' | false;

const MODE_ALIASES: Record<string, TlsMode> = {
  '0': '0', none: '0', off: '0', false: '0',
  '1': '1', insecure: '1', 'self-signed': '1', unverified: '1',
  '2': '2', verify: '2', verified: '2', strict: '2',
};

export function parseTlsMode(value: unknown, option = 'tls'): TlsMode {
  if (value === undefined) return '0';
  const mode = MODE_ALIASES[String(value)];
  if (mode === undefined || (typeof value !== 'string' && typeof value !== 'number' && value !== false)) {
    throw new InvalidOptionsError(option, `got ${show(value)}, expected "0" (none), "1" (insecure: TLS without verification) or "2" (verify: TLS verified against hostname)`);
  }
  return mode;
}

export type CaInput = string | Buffer | Array<string | Buffer>;

export type PemInput = string | Buffer;

export interface ClientTlsConfig {
  mode: TlsMode;
  /** The name used for SNI and certificate verification. */
  hostname?: string;
  /** One secure context per pool, reused by every connection (trusted CAs, the client certificate). */
  secureContext?: tls.SecureContext;
  /**
   * The pinned server certificate(s): checked on 'secureConnect', before a
   * byte is read or written (mode "1" verifies no chain, so this is the
   * whole check; in mode "2" it comes on top of the chain and hostname).
   */
  pin?: (hostname: string, cert: tls.PeerCertificate) => Error | undefined;
  /**
   * TLS session resumption (`tlsResume`, on by default): the last session
   * ticket a server of this pool gave, offered by the next dial so that a
   * refill costs a PSK handshake with a fresh (EC)DHE exchange (forward
   * secrecy kept) instead of a certificate check. Only a connection that
   * passed every check (chain and hostname in mode "2", the pin) feeds it.
   * Off with a client certificate (mutual TLS).
   */
  sessions?: { session?: Buffer };
}

/** What a client transport may add to its TLS mode: trusted CAs, a client certificate (mutual TLS), pins. */
export interface ClientTlsExtras {
  ca?: CaInput;
  /** The client certificate and its key (PEM), for a server that requires one (mutual TLS). */
  cert?: PemInput;
  key?: PemInput;
  /** SHA-256 fingerprint(s) of the server's certificate or public key ("AB:CD:…" hex or base64). */
  pin?: string | readonly string[];
}

export function createClientTls(mode: TlsMode, hostname: string | undefined, ca: CaInput | undefined, extras: Omit<ClientTlsExtras, 'ca'> = {}, names: (key: string) => string = (key) => key): ClientTlsConfig {
  const { cert, key, pin } = extras;
  if (mode === '0') {
    const set = (['cert', 'key', 'pin'] as const).find((name) => extras[name] !== undefined);
    if (set) throw new InvalidOptionsError(names(set), `needs TLS: set tls to "1" (self-signed, best with pin) or "2" (verified)`);
    return { mode };
  }
  if (mode === '2' && !hostname) {
    throw new InvalidOptionsError(names('hostname'), 'TLS mode "2" verifies the server certificate against hostname: set hostname (for example "localhost")');
  }
  if ((cert === undefined) !== (key === undefined)) {
    throw new InvalidOptionsError(names(cert === undefined ? 'cert' : 'key'), 'a client certificate needs both cert and key (PEM)');
  }
  const contextOptions: tls.SecureContextOptions = { minVersion: 'TLSv1.3' };
  if (ca !== undefined) contextOptions.ca = ca;
  if (cert !== undefined && key !== undefined) {
    contextOptions.cert = cert;
    contextOptions.key = key;
  }
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext(contextOptions);
  } catch (error) {
    throw new InvalidOptionsError(names(cert !== undefined ? 'cert' : 'ca'), `was not accepted: ${(error as Error).message}`);
  }
  const config: ClientTlsConfig = hostname ? { mode, hostname, secureContext } : { mode, secureContext };
  if (pin !== undefined) config.pin = createPinnedIdentityCheck(pin as string | readonly string[], names('pin'));
  return config;
}

/** The client TLS options every client transport reads the same way: tls, hostname, ca, cert, key, pin. */
export function readClientTls(read: OptionReader): ClientTlsConfig {
  const mode = parseTlsMode(read.raw('tls'), read.name('tls'));
  const hostname = read.string('hostname');
  const extras: Omit<ClientTlsExtras, 'ca'> = {};
  const resume = read.bool('tlsResume', true);
  for (const name of ['cert', 'key'] as const) {
    const value = read.raw(name);
    if (value === undefined) continue;
    if (typeof value !== 'string' && !Buffer.isBuffer(value)) read.fail(name, 'PEM text (a string or a Buffer)');
    extras[name] = value;
  }
  const pin = read.raw('pin');
  if (pin !== undefined) {
    if (typeof pin !== 'string' && !(Array.isArray(pin) && pin.every((p) => typeof p === 'string'))) read.fail('pin', 'a SHA-256 fingerprint or an array of them');
    extras.pin = pin as string | string[];
  }
  const config = createClientTls(mode, hostname, read.raw('ca') as CaInput | undefined, extras, (key) => read.name(key));
  // Not with a client certificate: an OpenSSL server that requires one fails a resumption attempt outright (no session
  // ID context) rather than falling back to a full handshake, and the client identity is checked on every connection.
  if (resume && config.mode !== '0' && extras.cert === undefined) config.sessions = {};
  return config;
}

/**
 * Options for `tls.connect` with no key whose value is `undefined` (on Node
 * 20 `checkServerIdentity: undefined` throws an internal assertion).
 */
export function clientTlsOptions(config: ClientTlsConfig, extra: tls.ConnectionOptions = {}): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = {
    ...extra,
    secureContext: config.secureContext!,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: config.mode === '2',
  };
  const hostname = config.hostname;
  if (hostname && isIP(hostname) === 0) options.servername = hostname;
  if (config.mode === '2' && hostname) {
    options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(hostname, cert);
  }
  return options;
}

/** The pin check on a secured client socket: the error to fail with, or undefined when no pin is set or it matches. */
export function checkPin(config: ClientTlsConfig, socket: tls.TLSSocket): Error | undefined {
  // A resumed session carries no certificate: it resumes one that passed this check (only those feed `sessions`),
  // and only a server holding that session's ticket key can resume it.
  if (socket.isSessionReused()) return undefined;
  return config.pin?.(config.hostname ?? '', socket.getPeerCertificate(true));
}

/**
 * Server TLS: a key and certificate, a ready secure context, or a
 * certificate made at start-up. `requestCert: true` (with `ca`, or a
 * secure context holding the CAs) requires a client certificate signed by
 * one of them: mutual TLS.
 */
export type ServerTlsInput =
  | { key: PemInput; cert: PemInput; ca?: CaInput; requestCert?: boolean }
  | { secureContext: tls.SecureContext; requestCert?: boolean }
  | 'self-signed';

/** Server TLS resolved once per pool. */
export interface ServerTls {
  secureContext: tls.SecureContext;
  /** Mutual TLS: a client without a certificate verified against the CAs is refused in the handshake. */
  requestCert: boolean;
  /** The fingerprints of a certificate made at start-up ('self-signed'): what a client pins. */
  selfSigned?: CertificateFingerprints;
}

export function resolveServerTls(input: ServerTlsInput, option = 'tls'): ServerTls {
  if (input === 'self-signed') {
    const { key, cert } = createSelfSignedCertificate();
    return { secureContext: tls.createSecureContext({ key, cert, minVersion: 'TLSv1.3' }), requestCert: false, selfSigned: certificateFingerprints(cert) };
  }
  if (input && typeof input === 'object') {
    const requestCert = (input as { requestCert?: unknown }).requestCert;
    if (requestCert !== undefined && typeof requestCert !== 'boolean') {
      throw new InvalidOptionsError(`${option}.requestCert`, `got ${show(requestCert)}, expected true (require a client certificate) or false`);
    }
    if ('secureContext' in input && input.secureContext) return { secureContext: input.secureContext, requestCert: requestCert === true };
    if ('key' in input && 'cert' in input && input.key && input.cert) {
      if (requestCert && input.ca === undefined) {
        throw new InvalidOptionsError(`${option}.ca`, 'requestCert verifies client certificates against ca: set ca to the CA certificate(s) that sign your clients');
      }
      const options: tls.SecureContextOptions = { key: input.key, cert: input.cert, minVersion: 'TLSv1.3' };
      if (input.ca !== undefined) options.ca = input.ca;
      try {
        return { secureContext: tls.createSecureContext(options), requestCert: requestCert === true };
      } catch (error) {
        throw new InvalidOptionsError(option, `the key and certificate were not accepted: ${(error as Error).message}`);
      }
    }
  }
  throw new InvalidOptionsError(option, `got ${showTlsInput(input)}, expected { key, cert } (plus ca and requestCert: true for mutual TLS), { secureContext } or "self-signed"`);
}

/** The TLS option as an error may show it: an object by its keys only, since it may hold a private key. */
function showTlsInput(input: unknown): string {
  if (input === null || typeof input !== 'object' || Buffer.isBuffer(input)) return show(input);
  const keys = Object.keys(input).filter((key) => (input as Record<string, unknown>)[key] !== undefined);
  return keys.length === 0 ? 'an empty object' : `an object with ${keys.join(', ')}`;
}

export function createServerSecureContext(input: ServerTlsInput, option = 'tls'): tls.SecureContext {
  return resolveServerTls(input, option).secureContext;
}

/** Logs once, at listen, the fingerprint of a certificate made at start-up, for the client's `pin`. */
export function announceSelfSigned(serverTls: ServerTls | undefined, log: ((message: string) => void) | undefined): void {
  const fingerprints = serverTls?.selfSigned;
  if (!fingerprints || !log) return;
  log(`TLS with a certificate made at start-up: clients in tls mode "1" pin it with pin: "${fingerprints.certificate.hex}" (or its public key, "sha256/${fingerprints.publicKey.base64}")`);
}

/**
 * After a server TLS handshake that asked for a client certificate: whether
 * OpenSSL verified it against the CAs. A TLSSocket made outside a
 * `tls.Server` (the front door makes its own) gets no such check from
 * Node, so this does what `tls.Server` does and sets `authorized` /
 * `authorizationError` on the socket.
 */
export function verifyClientCertificate(socket: tls.TLSSocket): boolean {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null | undefined } })._handle;
  // No way to ask: refuse rather than trust an unverified certificate.
  if (typeof handle?.verifyError !== 'function') {
    socket.authorizationError = new Error('cannot verify the client certificate') as never;
    return false;
  }
  const error = handle.verifyError();
  const cert = socket.getPeerCertificate();
  if (error || !cert || !Buffer.isBuffer(cert.raw)) {
    socket.authorizationError = (error ?? new Error('no client certificate')) as never;
    return false;
  }
  socket.authorized = true;
  return true;
}

/** The identity of the verified client certificate on a server-side connection (mutual TLS), if any. */
export function clientCertificateIdentity(stream: unknown): ClientIdentity | undefined {
  if (!(stream instanceof tls.TLSSocket) || !stream.authorized) return undefined;
  return certificateIdentity(stream.getPeerCertificate());
}
