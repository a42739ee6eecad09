import { CLIENT_POOL_OPTION_KEYS, ClientPool, resolveClientPoolOptions, type ClientPoolOptions } from './core/client-pool.js';
import { resolveServerPoolOptions, SERVER_POOL_OPTION_KEYS, ServerPool, type ServerPoolOptions } from './core/server-pool.js';
import { OptionReader } from './core/validate.js';
import { TRANSPORTS, type TransportName } from './transports/index.js';
import type { TcpClientOptions } from './transports/tcp/tcp-client.transport.js';
import type { TcpServerOptions } from './transports/tcp/tcp-server.transport.js';
import type { Http2ClientOptions } from './transports/http2/http2-client.transport.js';
import type { Http2ServerOptions } from './transports/http2/http2-server.transport.js';
import type { WsClientOptions } from './transports/ws/ws-client.transport.js';
import type { WsServerOptions } from './transports/ws/ws-server.transport.js';

/** A client pool definition: core options plus the chosen transport's options. */
export type ClientPoolConfig = ClientPoolOptions &
  (({ transport?: 'tcp' } & TcpClientOptions) | ({ transport: 'http2' } & Http2ClientOptions) | ({ transport: 'ws' } & WsClientOptions));

/** A server pool definition: core options plus the chosen transport's options. */
export type ServerPoolConfig = ServerPoolOptions &
  (({ transport?: 'tcp' } & TcpServerOptions) | ({ transport: 'http2' } & Http2ServerOptions) | ({ transport: 'ws' } & WsServerOptions));

function transportOf(read: OptionReader) {
  const name = read.oneOf('transport', Object.keys(TRANSPORTS) as TransportName[], 'tcp');
  return TRANSPORTS[name]!;
}

function pick<T extends object>(source: T, keys: readonly string[]): Partial<T> {
  const picked: Record<string, unknown> = {};
  for (const key of keys) if (key in source) picked[key] = (source as Record<string, unknown>)[key];
  return picked as Partial<T>;
}

/**
 * Validates a client pool definition (naming the option, the value and the
 * expected range on any error) and builds the pool; `start()` it to dial.
 */
export function createClientPool(config: ClientPoolConfig, prefix = ''): ClientPool {
  const read = new OptionReader(config as Record<string, unknown>, prefix);
  const core = pick(config, CLIENT_POOL_OPTION_KEYS) as ClientPoolOptions;
  resolveClientPoolOptions(core, prefix);
  read.accept(...CLIENT_POOL_OPTION_KEYS);
  const factory = transportOf(read);
  if (factory.clientOptionKeys) {
    read.accept(...factory.clientOptionKeys);
    read.rejectUnknown();
  }
  const transport = factory.createClient(read);
  read.rejectUnknown();
  return new ClientPool(transport, core);
}

/** Validates a server pool definition and builds the pool; `start()` it to listen. */
export function createServerPool(config: ServerPoolConfig, prefix = ''): ServerPool {
  const read = new OptionReader(config as Record<string, unknown>, prefix);
  const core = pick(config, SERVER_POOL_OPTION_KEYS) as ServerPoolOptions;
  resolveServerPoolOptions(core, prefix);
  read.accept(...SERVER_POOL_OPTION_KEYS);
  const factory = transportOf(read);
  if (factory.serverOptionKeys) {
    read.accept(...factory.serverOptionKeys);
    read.rejectUnknown();
  }
  const transport = factory.createServer(read);
  read.rejectUnknown();
  return new ServerPool(transport, core);
}
