import { CLIENT_POOL_OPTION_KEYS, ClientPool, resolveClientPoolOptions, type ClientPoolOptions } from './core/client-pool.js';
import { resolveServerPoolOptions, SERVER_POOL_OPTION_KEYS, ServerPool, type ServerPoolOptions } from './core/server-pool.js';
import { OptionReader } from './core/validate.js';
import { BUILT_IN_TRANSPORTS, DEFAULT_TRANSPORT, type BuiltInTransports, type TransportName } from './transports/index.js';
import { isTransportFactory, type AnyTransportFactory, type ClientOptionsOf, type ServerOptionsOf } from './transports/transport-factory.js';

/** A built-in client definition: `{ transport: name }` plus that transport's client options; or the default's. */
type BuiltInClientConfig =
  | ({ transport?: undefined } & ClientOptionsOf<BuiltInTransports[typeof DEFAULT_TRANSPORT]>)
  | { [N in TransportName]: { transport: N } & ClientOptionsOf<BuiltInTransports[N]> }[TransportName];
/** A built-in server definition (as `BuiltInClientConfig`). */
type BuiltInServerConfig =
  | ({ transport?: undefined } & ServerOptionsOf<BuiltInTransports[typeof DEFAULT_TRANSPORT]>)
  | { [N in TransportName]: { transport: N } & ServerOptionsOf<BuiltInTransports[N]> }[TransportName];

/**
 * A client pool definition: core options plus the chosen transport's
 * options. `transport` is a built-in name ('tcp' when omitted) or a
 * transport factory object (`defineTransport`), whose client options then
 * apply. `createClientPool` and `PoolModule.forRoot` infer `F` from the
 * factory given; to type a definition of your own transport write
 * `ClientPoolConfig<typeof myTransport>` (plain `ClientPoolConfig` is a
 * built-in one).
 */
export type ClientPoolConfig<F extends AnyTransportFactory = never> = ClientPoolOptions &
  (BuiltInClientConfig | ({ transport: F } & ClientOptionsOf<F>));

/** A server pool definition: core options plus the chosen transport's server options (see `ClientPoolConfig`). */
export type ServerPoolConfig<F extends AnyTransportFactory = never> = ServerPoolOptions &
  (BuiltInServerConfig | ({ transport: F } & ServerOptionsOf<F>));

const BUILT_IN_NAMES = Object.keys(BUILT_IN_TRANSPORTS) as Array<keyof typeof BUILT_IN_TRANSPORTS>;

/** The factory a definition names: a built-in by name, or the factory object itself. */
function transportOf(read: OptionReader): AnyTransportFactory {
  const given = read.raw('transport');
  if (given === undefined) return BUILT_IN_TRANSPORTS[DEFAULT_TRANSPORT];
  if (isTransportFactory(given)) return given;
  if (typeof given === 'string' && (BUILT_IN_NAMES as string[]).includes(given)) return BUILT_IN_TRANSPORTS[given as keyof typeof BUILT_IN_TRANSPORTS];
  return read.fail('transport', `one of ${BUILT_IN_NAMES.map((name) => JSON.stringify(name)).join(', ')}, or a transport factory object (defineTransport)`);
}

function pick<T extends object>(source: T, keys: readonly string[]): Partial<T> {
  const picked: Record<string, unknown> = {};
  for (const key of keys) if (key in source) picked[key] = (source as Record<string, unknown>)[key];
  return picked as Partial<T>;
}

/**
 * Reads one side of a definition: the pool's own options, then the
 * transport's (its keys known up front, so a typo is named as one), then
 * rejects whatever nobody read.
 */
function readSide<Options, Transport>(
  config: object,
  prefix: string,
  poolKeys: readonly string[],
  resolvePool: (options: Options, prefix: string) => unknown,
  side: (factory: AnyTransportFactory) => { keys: readonly string[]; create: (read: OptionReader, options: object) => Transport },
): { core: Options; transport: Transport } {
  const read = new OptionReader(config as Record<string, unknown>, prefix);
  const core = pick(config, poolKeys) as Options;
  resolvePool(core, prefix);
  read.accept(...poolKeys);
  const { keys, create } = side(transportOf(read));
  read.accept(...keys);
  read.rejectUnknown();
  const transport = create(read, config);
  read.rejectUnknown();
  return { core, transport };
}

/**
 * Validates a client pool definition (naming the option, the value and the
 * expected range on any error) and builds the pool; `start()` it to dial.
 */
export function createClientPool<F extends AnyTransportFactory = never>(config: ClientPoolConfig<F>, prefix = ''): ClientPool {
  const { core, transport } = readSide<ClientPoolOptions, ReturnType<AnyTransportFactory['createClient']>>(
    config,
    prefix,
    CLIENT_POOL_OPTION_KEYS,
    resolveClientPoolOptions,
    (factory) => ({ keys: factory.clientOptionKeys, create: (read, options) => factory.createClient(read, options as never) }),
  );
  return new ClientPool(transport, core);
}

/** Validates a server pool definition and builds the pool; `start()` it to listen. */
export function createServerPool<F extends AnyTransportFactory = never>(config: ServerPoolConfig<F>, prefix = ''): ServerPool {
  const { core, transport } = readSide<ServerPoolOptions, ReturnType<AnyTransportFactory['createServer']>>(
    config,
    prefix,
    SERVER_POOL_OPTION_KEYS,
    resolveServerPoolOptions,
    (factory) => ({ keys: factory.serverOptionKeys, create: (read, options) => factory.createServer(read, options as never) }),
  );
  return new ServerPool(transport, core);
}
