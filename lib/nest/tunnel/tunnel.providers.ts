import type { Provider } from '@nestjs/common';
import { ModuleRef, ModulesContainer } from '@nestjs/core';
import { DuplicatePoolError } from '../../core/errors.js';
import { DEFAULT_POOL_NAME } from '../pool.constants.js';
import { shutdownGroupOf } from '../pool-shutdown-group.js';
import { TunnelClientService } from './tunnel-client.service.js';
import type { TunnelModuleAsyncOptions, TunnelOptionsFactory } from './tunnel-module-options.interface.js';
import {
  getTunnelClientToken,
  getTunnelLifecycleToken,
  getTunnelOptionsToken,
  getTunnelRegistrationToken,
  getTunnelServerToken,
} from './tunnel.constants.js';
import { TunnelLifecycle } from './tunnel.lifecycle.js';
import { createTunnelRegistration, type StaticTunnelOptions, type TunnelRegistration } from './tunnel-registration.js';
import { TunnelServerService } from './tunnel-server.service.js';

/** The providers of one tunnel registration: the validated registration, the two services, the lifecycle. */
export function createTunnelProviders(name: string, fixed: StaticTunnelOptions): Provider[] {
  const registrationToken = getTunnelRegistrationToken(name);
  const providers: Provider[] = [
    {
      provide: registrationToken,
      useFactory: (options: unknown, modules: ModulesContainer): TunnelRegistration => {
        assertSingleRegistration(modules, registrationToken, name);
        return createTunnelRegistration(options, fixed);
      },
      inject: [getTunnelOptionsToken(name), ModulesContainer],
    },
    {
      provide: getTunnelServerToken(name),
      useFactory: (registration: TunnelRegistration) => new TunnelServerService(registration.name, registration),
      inject: [registrationToken],
    },
    {
      provide: getTunnelClientToken(name),
      useFactory: (registration: TunnelRegistration) => new TunnelClientService(registration.name, registration),
      inject: [registrationToken],
    },
    {
      provide: getTunnelLifecycleToken(name),
      useFactory: (registration: TunnelRegistration, server: TunnelServerService, client: TunnelClientService, moduleRef: ModuleRef, modules: ModulesContainer) =>
        new TunnelLifecycle(registration, server, client, moduleRef, shutdownGroupOf(modules)),
      inject: [registrationToken, getTunnelServerToken(name), getTunnelClientToken(name), ModuleRef, ModulesContainer],
    },
  ];
  if (name === DEFAULT_POOL_NAME) {
    providers.push(
      { provide: TunnelServerService, useExisting: getTunnelServerToken(name) },
      { provide: TunnelClientService, useExisting: getTunnelClientToken(name) },
    );
  }
  return providers;
}

export function tunnelExports(name: string): Array<string | typeof TunnelServerService | typeof TunnelClientService> {
  const tokens = [getTunnelServerToken(name), getTunnelClientToken(name)];
  return name === DEFAULT_POOL_NAME ? [...tokens, TunnelServerService, TunnelClientService] : tokens;
}

export function createAsyncTunnelOptionsProviders(name: string, options: TunnelModuleAsyncOptions): Provider[] {
  const provide = getTunnelOptionsToken(name);
  if (options.useFactory) return [{ provide, useFactory: options.useFactory, inject: options.inject ?? [] }];
  const factory = (options.useClass ?? options.useExisting)!;
  const optionsProvider: Provider = { provide, useFactory: (instance: TunnelOptionsFactory) => instance.createTunnelOptions(), inject: [factory] };
  return options.useClass ? [optionsProvider, { provide: options.useClass, useClass: options.useClass }] : [optionsProvider];
}

function assertSingleRegistration(modules: ModulesContainer, token: string, name: string): void {
  let count = 0;
  for (const module of modules.values()) if (module.providers.has(token)) count++;
  if (count > 1) {
    throw new DuplicatePoolError(`${count} TunnelModule registrations use the tunnel name '${name}' in one application; give each forRoot/forRootAsync a distinct name (the unnamed tunnel is '${DEFAULT_POOL_NAME}')`);
  }
}
