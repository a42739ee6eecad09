/**
 * Telling a TLS mismatch from other handshake failures, for every client
 * transport: a client with TLS on whose server answers in plain bytes, and
 * a plain client whose server waits for a TLS ClientHello.
 */

/**
 * OpenSSL's verdict on a first "record" that is not TLS: the bytes of a
 * plain server (a pool's ID, an HTTP answer) read as a record header.
 */
const NOT_TLS_CODES = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_RECORD_LAYER_FAILURE',
  'ERR_SSL_UNKNOWN_PROTOCOL',
]);

/** The TLS layer failed because the server's first bytes were not TLS. */
export function isPlainAnswer(error: unknown): boolean {
  const code = error && typeof error === 'object' && 'code' in error ? error.code : undefined;
  return typeof code === 'string' && NOT_TLS_CODES.has(code);
}

/** The message of a client with TLS on whose server does not speak TLS. */
export function serverNotTlsMessage(where: string): string {
  return `the server at ${where} does not speak TLS: it answered the TLS ClientHello with bytes that are not TLS (a plain server's ID or HTTP answer). Dial it with tls "0", or give the server pool a TLS config`;
}

/** The hint for a plain client that got nothing at all from its server. */
export function serverMaySpeakTlsHint(): string {
  return 'a plain pool server sends the ID at once, so the server most likely speaks TLS and waits for this client\'s ClientHello: set tls "1" or "2" on the client (or it is stalled)';
}
