import { defineTransport } from '../transport-factory.js';
import type { Http2ClientOptions } from './http2-client.transport.js';
import type { Http2ServerOptions } from './http2-server.transport.js';
import { HTTP2_CLIENT_OPTION_KEYS, Http2ClientTransport, resolveHttp2ClientOptions } from './http2-client.transport.js';
import { HTTP2_SERVER_OPTION_KEYS, Http2ServerTransport, resolveHttp2ServerOptions } from './http2-server.transport.js';

export { Http2ClientTransport, resolveHttp2ClientOptions, type Http2ClientOptions } from './http2-client.transport.js';
export { Http2ServerTransport, resolveHttp2ServerOptions, type Http2ServerOptions } from './http2-server.transport.js';
export { Http2StreamAbortedError, type Http2AbortReason } from './http2-stream.error.js';
export type { Http2FlowOptions } from './http2-settings.js';

/** HTTP/2 over TLS 1.3 (ALPN h2), one request per pooled stream, wire-compatible with the Go `nph2`. */
export const http2Transport = defineTransport<'http2', Http2ClientOptions, Http2ServerOptions>({
  name: 'http2',
  clientOptionKeys: HTTP2_CLIENT_OPTION_KEYS,
  serverOptionKeys: HTTP2_SERVER_OPTION_KEYS,
  createClient: (read) => new Http2ClientTransport(resolveHttp2ClientOptions(read)),
  createServer: (read) => new Http2ServerTransport(resolveHttp2ServerOptions(read)),
});
