import { InvalidOptionsError } from '../../core/errors.js';
import { OptionReader, show } from '../../core/validate.js';
import { RouteAllowlist, validateRoutes } from '../../tunnel/routes.js';
import { DEFAULT_POOL_NAME } from '../pool.constants.js';
import type { TunnelModuleClientOptions, TunnelModuleServerOptions } from './tunnel-module-options.interface.js';

/** A validated tunnel registration: which pool it runs over and each end's options (the core objects are built at init, over that pool). */
export interface TunnelRegistration {
  readonly name: string;
  /** The PoolModule registration's name. */
  readonly pool: string;
  readonly server?: TunnelModuleServerOptions & { allow: RouteAllowlist };
  readonly client?: TunnelModuleClientOptions;
  readonly autoStart: boolean;
}

export interface StaticTunnelOptions {
  name?: unknown;
  isGlobal?: unknown;
  async: boolean;
}

const SERVER_KEYS = ['allow', 'host', 'openTimeout', 'closeTimeout', 'accountingTimeout', 'earlyData', 'control', 'router'] as const;
const CLIENT_KEYS = ['routes', 'name', 'helloTimeout', 'openTimeout', 'closeTimeout', 'reconnect', 'control'] as const;

/**
 * Validates a registration once, when Nest instantiates it, so `forRoot` and
 * `forRootAsync` fail the same way (an `InvalidOptionsError` naming the
 * option: `server.allow.rules[0].ports`, `client.routes[1].target`...).
 */
export function createTunnelRegistration(options: unknown, fixed: StaticTunnelOptions): TunnelRegistration {
  const statics = new OptionReader({ name: fixed.name, isGlobal: fixed.isGlobal });
  const name = statics.string('name') ?? DEFAULT_POOL_NAME;
  statics.bool('isGlobal', false);

  const read = new OptionReader(options as Record<string, unknown>);
  const source = options as Record<string, unknown>;
  if (fixed.async) {
    if (source['isGlobal'] !== undefined) {
      throw new InvalidOptionsError('isGlobal', 'isGlobal is static: set it in TunnelModule.forRootAsync({ isGlobal }), not in the options the factory returns');
    }
    const returned = read.string('name');
    if (returned !== undefined && returned !== name) {
      throw new InvalidOptionsError('name', `the options factory returned ${show(returned)}, but the tunnel is registered as ${show(name)}: the name is static, set it in TunnelModule.forRootAsync({ name })`);
    }
  } else {
    read.accept('name');
  }
  const pool = read.string('pool') ?? name;
  const autoStart = read.bool('autoStart', true);
  const server = read.raw('server');
  const client = read.raw('client');
  read.rejectUnknown();
  if (server === undefined && client === undefined) {
    throw new InvalidOptionsError('server', `tunnel ${show(name)} sets neither server nor client: set server (it listens for tunnel clients), client (it dials a tunnel server) or both`);
  }
  return {
    name,
    pool,
    autoStart,
    ...(server !== undefined ? { server: serverOptions(server) } : {}),
    ...(client !== undefined ? { client: clientOptions(client, name) } : {}),
  };
}

function serverOptions(value: unknown): TunnelModuleServerOptions & { allow: RouteAllowlist } {
  const read = new OptionReader(value as Record<string, unknown>, 'server');
  const given = value as TunnelModuleServerOptions;
  const allowValue = read.raw('allow');
  if (allowValue === undefined) read.fail('allow', 'an allowlist ({ rules: [{ names, ports, ... }] }): a tunnel server opens nothing unless a rule allows it');
  const allow = allowValue instanceof RouteAllowlist ? allowValue : new RouteAllowlist(allowValue as never, read.name('allow'));
  read.string('host');
  for (const key of ['openTimeout', 'closeTimeout', 'accountingTimeout'] as const) read.ms(key, 1, 1);
  read.bool('earlyData', true);
  objectOrUndefined(read, 'control');
  const router = objectOrUndefined(read, 'router');
  if (router && typeof (router as { attach?: unknown }).attach !== 'function') read.fail('router', 'a ControlRouter (attach, toClient, close...)');
  read.accept(...SERVER_KEYS);
  read.rejectUnknown();
  return { ...given, allow };
}

function clientOptions(value: unknown, name: string): TunnelModuleClientOptions {
  const read = new OptionReader(value as Record<string, unknown>, 'client');
  const given = value as TunnelModuleClientOptions;
  validateRoutes(read.raw('routes'), read.name('routes'));
  const label = read.string('name');
  for (const key of ['helloTimeout', 'openTimeout', 'closeTimeout'] as const) read.ms(key, 1, 1);
  const reconnect = read.raw('reconnect');
  if (reconnect !== undefined && reconnect !== false) {
    const backoff = new OptionReader(reconnect as Record<string, unknown>, read.name('reconnect'));
    const min = backoff.ms('minDelay', 200, 1);
    const max = backoff.ms('maxDelay', 10_000, 1);
    backoff.rejectUnknown();
    if (max < min) backoff.fail('maxDelay', `at least minDelay (${min})`);
  }
  objectOrUndefined(read, 'control');
  read.accept(...CLIENT_KEYS);
  read.rejectUnknown();
  return { ...given, name: label ?? name };
}

function objectOrUndefined(read: OptionReader, key: string): object | undefined {
  const value = read.raw(key);
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) read.fail(key, 'an object');
  return value as object;
}
