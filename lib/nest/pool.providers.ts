import type { Provider } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { DuplicatePoolError } from '../core/errors.js';
import { ClientPoolService } from './client-pool.service.js';
import type { PoolModuleAsyncOptions, PoolOptionsFactory } from './pool-module-options.interface.js';
import {
  DEFAULT_POOL_NAME,
  getClientPoolToken,
  getPoolLifecycleToken,
  getPoolOptionsToken,
  getPoolRegistrationToken,
  getServerPoolToken,
} from './pool.constants.js';
import { PoolLifecycle } from './pool.lifecycle.js';
import { shutdownGroupOf } from './pool-shutdown-group.js';
import { createPoolRegistration, type PoolRegistration, type StaticPoolOptions } from './pool-registration.js';
import { ServerPoolService } from './server-pool.service.js';

/**
 * The providers of one registration named `name`, given the provider of its
 * raw options: the validated registration (which builds the core pools), the
 * two services, and the lifecycle that starts and closes them.
 */
export function createPoolProviders(name: string, fixed: StaticPoolOptions): Provider[] {
  const registrationToken = getPoolRegistrationToken(name);
  const providers: Provider[] = [
    {
      provide: registrationToken,
      useFactory: (options: unknown, modules: ModulesContainer): PoolRegistration => {
        assertSingleRegistration(modules, registrationToken, name);
        return createPoolRegistration(options, fixed);
      },
      inject: [getPoolOptionsToken(name), ModulesContainer],
    },
    {
      provide: getClientPoolToken(name),
      useFactory: (registration: PoolRegistration) => new ClientPoolService(registration.name, registration.client),
      inject: [registrationToken],
    },
    {
      provide: getServerPoolToken(name),
      useFactory: (registration: PoolRegistration) => new ServerPoolService(registration.name, registration.server),
      inject: [registrationToken],
    },
    {
      provide: getPoolLifecycleToken(name),
      useFactory: (registration: PoolRegistration, client: ClientPoolService, server: ServerPoolService, modules: ModulesContainer) =>
        new PoolLifecycle(registration, client, server, shutdownGroupOf(modules)),
      inject: [registrationToken, getClientPoolToken(name), getServerPoolToken(name), ModulesContainer],
    },
  ];
  if (name === DEFAULT_POOL_NAME) {
    // `constructor(private pool: ClientPoolService)` for the default pool. Aliases
    // run no lifecycle hooks (and the services have none).
    providers.push(
      { provide: ClientPoolService, useExisting: getClientPoolToken(name) },
      { provide: ServerPoolService, useExisting: getServerPoolToken(name) },
    );
  }
  return providers;
}

/** What a registration exports: the service tokens, plus the classes for the default pool. */
export function poolExports(name: string): Array<string | typeof ClientPoolService | typeof ServerPoolService> {
  const tokens = [getClientPoolToken(name), getServerPoolToken(name)];
  return name === DEFAULT_POOL_NAME ? [...tokens, ClientPoolService, ServerPoolService] : tokens;
}

/** The options provider of `forRootAsync`, plus the factory class `useClass` brings. */
export function createAsyncOptionsProviders(name: string, options: PoolModuleAsyncOptions): Provider[] {
  const provide = getPoolOptionsToken(name);
  if (options.useFactory) {
    return [{ provide, useFactory: options.useFactory, inject: options.inject ?? [] }];
  }
  const factory = (options.useClass ?? options.useExisting)!;
  const optionsProvider: Provider = {
    provide,
    useFactory: (instance: PoolOptionsFactory) => instance.createPoolOptions(),
    inject: [factory],
  };
  return options.useClass ? [optionsProvider, { provide: options.useClass, useClass: options.useClass }] : [optionsProvider];
}

/**
 * Two registrations with one name would fight over the same tokens. This is
 * checked per application (its own module container), so two applications
 * in one process, or one test after another, do not see each other.
 */
function assertSingleRegistration(modules: ModulesContainer, token: string, name: string): void {
  let count = 0;
  for (const module of modules.values()) if (module.providers.has(token)) count++;
  if (count > 1) {
    throw new DuplicatePoolError(
      `${count} PoolModule registrations use the pool name '${name}' in one application; give each forRoot/forRootAsync a distinct name (the unnamed pool is '${DEFAULT_POOL_NAME}')`,
    );
  }
}
