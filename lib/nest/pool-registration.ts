import { Logger } from '@nestjs/common';
import type { ClientPool } from '../core/client-pool.js';
import { InvalidOptionsError } from '../core/errors.js';
import type { ServerPool } from '../core/server-pool.js';
import { OptionReader, show } from '../core/validate.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../pool-factory.js';
import { DEFAULT_POOL_NAME } from './pool.constants.js';

/** A validated pool registration: its settings and the core pools it built (not started). */
export interface PoolRegistration {
  readonly name: string;
  readonly client?: ClientPool;
  readonly server?: ServerPool;
  readonly autoStart: boolean;
  readonly shutdownTimeout: number;
}

/** What `forRoot`/`forRootAsync` fix when the module is declared, before any options exist. */
export interface StaticPoolOptions {
  /** The name the tokens were built from (unvalidated: it is checked here, at start-up). */
  name?: unknown;
  isGlobal?: unknown;
  /** Options came from an async factory: `name` and `isGlobal` may not be in them. */
  async: boolean;
}

/** The pool name the tokens are built from; an invalid name falls back to the default and fails validation later. */
export function tokenName(name: unknown): string {
  return typeof name === 'string' && name.length > 0 ? name : DEFAULT_POOL_NAME;
}

/**
 * Validates a registration and builds its pools. Runs once per registration,
 * inside Nest's instantiation, so `forRoot` and `forRootAsync` fail the same
 * way (an `InvalidOptionsError` naming the option) from `compile()` or
 * `NestFactory.create()`. The core validates the pool definitions
 * (`client.maxCap`...); this checks the keys around them.
 */
export function createPoolRegistration(options: unknown, fixed: StaticPoolOptions): PoolRegistration {
  const statics = new OptionReader({ name: fixed.name, isGlobal: fixed.isGlobal });
  const name = statics.string('name') ?? DEFAULT_POOL_NAME;
  statics.bool('isGlobal', false);

  const read = new OptionReader(options as Record<string, unknown>);
  const source = options as Record<string, unknown>;
  if (fixed.async) {
    if (source['isGlobal'] !== undefined) {
      throw new InvalidOptionsError('isGlobal', 'isGlobal is static: set it in PoolModule.forRootAsync({ isGlobal }), not in the options the factory returns');
    }
    const returned = read.string('name');
    if (returned !== undefined && returned !== name) {
      throw new InvalidOptionsError(
        'name',
        `the options factory returned ${show(returned)}, but the pool is registered as ${show(name)}: the name is static (it builds the injection tokens), set it in PoolModule.forRootAsync({ name })`,
      );
    }
  } else {
    read.accept('name');
  }
  const autoStart = read.bool('autoStart', true);
  const shutdownTimeout = read.ms('shutdownTimeout', 5000, 0);
  const client = read.raw('client') as ClientPoolConfig | undefined;
  const server = read.raw('server') as ServerPoolConfig | undefined;
  read.rejectUnknown();
  if (client === undefined && server === undefined) {
    throw new InvalidOptionsError('client', `pool ${show(name)} sets neither client nor server: set client (the dialing side), server (the listening side) or both`);
  }

  // The core names its pools for stats, logs and errors; default that name to the
  // registration's. Background failures go to Nest's Logger, context = the pool name.
  return {
    name,
    autoStart,
    shutdownTimeout,
    ...(server !== undefined ? { server: createServerPool(withName(server, name), 'server') } : {}),
    ...(client !== undefined ? { client: createClientPool(withName(client, name), 'client') } : {}),
  };
}

function withName<T>(config: T, name: string): T {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return config; // the core names the error
  const given = config as { name?: unknown; logger?: unknown };
  return {
    ...config,
    ...(given.name === undefined ? { name } : {}),
    ...(given.logger === undefined ? { logger: new Logger(`PoolModule:${name}`) } : {}),
  };
}
