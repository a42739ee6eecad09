import type { ClientTransport, ServerTransport } from '../core/transport.js';
import { OptionReader } from '../core/validate.js';

/**
 * What a transport folder exports: its name, the option keys each side
 * takes, and how to build each side from the user's options. Built-in and
 * third-party transports are the same kind of object: `createClientPool`,
 * `createServerPool` and `PoolModule` take either a built-in name or such an
 * object, so a new transport needs no edit inside the library.
 *
 * Make one with `defineTransport`, which also gives it `client(options)` and
 * `server(options)`: the public way to build one side on its own.
 */
export interface TransportFactory<Name extends string = string, ClientOptions extends object = object, ServerOptions extends object = object> {
  readonly name: Name;
  /**
   * The option keys each side reads. Keys that are neither these nor the
   * pool's own are rejected before the transport validates anything, so a
   * typo ("adress") is reported as such rather than as the option it hides.
   */
  readonly clientOptionKeys: readonly (keyof ClientOptions & string)[];
  readonly serverOptionKeys: readonly (keyof ServerOptions & string)[];
  /**
   * Validates the client options and builds the client side. `read` names the
   * option (with the caller's prefix, e.g. `client.address`) in every error;
   * `options` is the same object, typed, for what `read` has no reader for.
   */
  createClient(read: OptionReader, options: Readonly<ClientOptions>): ClientTransport;
  /** As `createClient`, for the listening side. */
  createServer(read: OptionReader, options: Readonly<ServerOptions>): ServerTransport;
  /** Builds the client side alone from its options (validated, unknown keys rejected). */
  client(options: Readonly<ClientOptions>, prefix?: string): ClientTransport;
  /** Builds the server side alone from its options (validated, unknown keys rejected). */
  server(options: Readonly<ServerOptions>, prefix?: string): ServerTransport;
}

/**
 * Any transport factory, whatever its name and option types (every factory
 * is assignable to it; its options are known to be nothing, so a config
 * typed with it alone accepts no factory: the generic parameter that names
 * the factory does).
 */
export type AnyTransportFactory = TransportFactory<string, never, never>;

/** The client option type of a transport factory. */
export type ClientOptionsOf<F> = F extends TransportFactory<string, infer C, infer _S> ? C : never;
/** The server option type of a transport factory. */
export type ServerOptionsOf<F> = F extends TransportFactory<string, infer _C, infer S> ? S : never;

/** What `defineTransport` takes: a factory without the two helpers it adds. */
export type TransportDefinition<Name extends string, ClientOptions extends object, ServerOptions extends object> = Omit<
  TransportFactory<Name, ClientOptions, ServerOptions>,
  'client' | 'server'
>;

/**
 * Defines a transport: the one object a transport folder exports. Give the
 * name and the two option types as generic arguments,
 * `defineTransport<'pipe', PipeClientOptions, PipeServerOptions>({...})`,
 * so the pool factories type-check the options of whoever uses it.
 */
export function defineTransport<Name extends string, ClientOptions extends object, ServerOptions extends object>(
  definition: TransportDefinition<Name, ClientOptions, ServerOptions>,
): TransportFactory<Name, ClientOptions, ServerOptions> {
  const factory: TransportFactory<Name, ClientOptions, ServerOptions> = {
    ...definition,
    client: (options, prefix = '') => build(options, prefix, definition.clientOptionKeys, (read) => definition.createClient(read, options)),
    server: (options, prefix = '') => build(options, prefix, definition.serverOptionKeys, (read) => definition.createServer(read, options)),
  };
  return Object.freeze(factory);
}

/** Whether `value` is a transport factory (not a name). */
export function isTransportFactory(value: unknown): value is AnyTransportFactory {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Partial<AnyTransportFactory>;
  return (
    typeof candidate.name === 'string' &&
    typeof candidate.createClient === 'function' &&
    typeof candidate.createServer === 'function' &&
    Array.isArray(candidate.clientOptionKeys) &&
    Array.isArray(candidate.serverOptionKeys)
  );
}

function build<T>(options: object, prefix: string, keys: readonly string[], create: (read: OptionReader) => T): T {
  const read = new OptionReader(options as Record<string, unknown>, prefix);
  read.accept(...keys);
  read.rejectUnknown();
  const built = create(read);
  read.rejectUnknown();
  return built;
}
