import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { DialError, HandshakeError, PoolClosedError, PoolRefusedError, TlsMismatchError } from '../../core/errors.js';
import { describeError } from './describe-error.js';
import { formatEndpoint, type Endpoint } from './endpoint.js';
import { checkPin, clientTlsOptions, type ClientTlsConfig } from './tls.js';
import { isPlainAnswer, serverNotTlsMessage } from './tls-mismatch.js';
import { waitForEvent } from './wait-for-event.js';

/**
 * The client side of a connection, shared by the transports that dial a
 * socket themselves (tcp, and http2's sessions): TCP connect, then TLS 1.3,
 * each bounded in time, stopped by the pool's close, and failing with one
 * typed error per cause.
 */

export interface TcpConnectOptions {
  /** TCP keep-alive period, ms. */
  keepAlive: number;
  /** Bound on the connect, ms. */
  timeout: number;
  allowHalfOpen?: boolean;
}

/** Opens a TCP connection (no delay, keep-alive); `DialError` if it fails, `PoolClosedError` if the pool closes first. */
export async function connectTcp(endpoint: Endpoint, options: TcpConnectOptions, signal: AbortSignal): Promise<net.Socket> {
  const socket = net.connect({
    host: endpoint.host,
    port: endpoint.port,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: options.keepAlive,
    allowHalfOpen: options.allowHalfOpen ?? false,
  });
  await whenConnected(socket, formatEndpoint(endpoint), options.timeout, signal);
  return socket;
}

/** Waits for a connecting socket's 'connect'; destroys it and throws a typed error otherwise. */
export async function whenConnected(socket: net.Socket, where: string, timeout: number, signal: AbortSignal): Promise<void> {
  if (!socket.connecting) return;
  try {
    await waitForEvent(socket, 'connect', timeout, signal);
  } catch (error) {
    socket.destroy();
    if (error instanceof PoolClosedError) throw error;
    throw new DialError(`dialing ${where} failed: ${describeError(error)}`, { cause: error });
  }
}

/**
 * Runs a TLS 1.3 client handshake over `socket`. On failure both are
 * destroyed and the error says which of these it was: the server answered
 * in plain bytes (`TlsMismatchError`), hung up before the handshake ended
 * (`PoolRefusedError`: a pool refuses with a bare close), or TLS itself
 * failed (`HandshakeError`: certificate, hostname, timeout). With a pin,
 * a server whose certificate matches none is a `CertificatePinError`.
 */
export async function secureConnect(
  socket: Duplex,
  config: ClientTlsConfig,
  timeout: number,
  signal: AbortSignal,
  extra: tls.ConnectionOptions = {},
): Promise<tls.TLSSocket> {
  const where = peerOf(socket); // now: a destroyed socket forgets its peer
  const offered = config.sessions?.session;
  const secured = tls.connect(clientTlsOptions(config, { ...extra, socket, ...(offered ? { session: offered } : {}) }));
  try {
    await waitForEvent(secured, 'secureConnect', timeout, signal);
  } catch (error) {
    secured.destroy();
    socket.destroy();
    if (error instanceof PoolClosedError) throw error;
    // A TLS server says nothing before the ClientHello and answers a bad one
    // with an alert; bytes and then a bare close are a plain server whose
    // first bytes happened to parse as a record header still waiting for its
    // body (a raw4 ID such as 16 03 xx xx), which OpenSSL reports as a
    // disconnect rather than a wrong version.
    if (isPlainAnswer(error) || (isDisconnect(error) && spokeFirst(socket))) {
      throw new TlsMismatchError(serverNotTlsMessage(where), { cause: error });
    }
    if (isDisconnect(error)) {
      throw new PoolRefusedError('the server closed the connection during the TLS handshake (it refuses: pool full or this address is not allowed)', { cause: error });
    }
    throw new HandshakeError(`TLS handshake with ${where} failed: ${describeError(error)}`, { cause: error });
  }
  // Pinned: the server is this one or nobody, decided before a byte is read or written.
  const pinError = checkPin(config, secured);
  if (pinError) {
    secured.destroy();
    socket.destroy();
    throw pinError;
  }
  // Checked: the tickets this server sends from now on may resume the next dials.
  const sessions = config.sessions;
  if (sessions) secured.on('session', (session: Buffer) => (sessions.session = session));
  return secured;
}


/** The dialed address, for messages. */
export function peerOf(socket: Duplex): string {
  return socket instanceof net.Socket && socket.remoteAddress ? formatEndpoint({ host: socket.remoteAddress, port: socket.remotePort ?? 0 }) : 'the other end';
}

/** The server sent bytes on the raw connection (TLS took it over, so only the count is known). */
function spokeFirst(socket: Duplex): boolean {
  return socket instanceof net.Socket && socket.bytesRead > 0;
}

/** The peer hung up before the TLS handshake finished: a bare-close refusal. */
function isDisconnect(error: unknown): boolean {
  const code = error && typeof error === 'object' && 'code' in error ? error.code : undefined;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}
