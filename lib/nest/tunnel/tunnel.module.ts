import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { InvalidOptionsError } from '../../core/errors.js';
import { OptionReader } from '../../core/validate.js';
import type { TunnelModuleAsyncOptions, TunnelModuleRootOptions } from './tunnel-module-options.interface.js';
import { getTunnelOptionsToken } from './tunnel.constants.js';
import { createAsyncTunnelOptionsProviders, createTunnelProviders, tunnelExports } from './tunnel.providers.js';
import { tokenName } from '../pool-registration.js';
import type { StaticTunnelOptions } from './tunnel-registration.js';

const USE_KEYS = ['useFactory', 'useClass', 'useExisting'] as const;

/**
 * The tunnel (server end, client end, or both) as Nest providers, over the
 * application's `PoolModule` registrations: each `forRoot` / `forRootAsync`
 * takes the pool registered under its `pool` name (by default its own name)
 * and creates none beside it. The ends start once the application has
 * bootstrapped and drain on shutdown before the pools close.
 */
@Module({})
export class TunnelModule {
  static forRoot(options: TunnelModuleRootOptions): DynamicModule {
    const plain = options !== null && typeof options === 'object' ? options : undefined;
    const { isGlobal, ...tunnelOptions } = plain ?? {};
    const fixed: StaticTunnelOptions = { name: plain?.name, isGlobal, async: false };
    const name = tokenName(fixed.name);
    return TunnelModule.registration(name, fixed, isGlobal, [], [{ provide: getTunnelOptionsToken(name), useValue: plain ? tunnelOptions : options }]);
  }

  /** Options from a factory (`useFactory` + `inject`), a class (`useClass`) or an existing provider (`useExisting`): exactly one. */
  static forRootAsync(options: TunnelModuleAsyncOptions): DynamicModule {
    assertAsyncOptions(options);
    const fixed: StaticTunnelOptions = { name: options.name, isGlobal: options.isGlobal, async: true };
    const name = tokenName(fixed.name);
    return TunnelModule.registration(name, fixed, options.isGlobal, options.imports ?? [], [
      ...createAsyncTunnelOptionsProviders(name, options),
      ...(options.extraProviders ?? []),
    ]);
  }

  private static registration(name: string, fixed: StaticTunnelOptions, isGlobal: unknown, imports: NonNullable<DynamicModule['imports']>, optionProviders: Provider[]): DynamicModule {
    return {
      module: TunnelModule,
      global: isGlobal === true,
      imports,
      providers: [...optionProviders, ...createTunnelProviders(name, fixed)],
      exports: tunnelExports(name),
    };
  }
}

function assertAsyncOptions(options: TunnelModuleAsyncOptions): void {
  const read = new OptionReader(options as unknown as Record<string, unknown>, '');
  read.accept('name', 'isGlobal');
  for (const key of ['imports', 'inject', 'extraProviders'] as const) {
    const value = read.raw(key);
    if (value !== undefined && !Array.isArray(value)) read.fail(key, 'an array');
  }
  const given = USE_KEYS.filter((key) => read.fn(key) !== undefined);
  read.rejectUnknown();
  if (given.length !== 1) {
    throw new InvalidOptionsError(
      USE_KEYS.join('|'),
      `TunnelModule.forRootAsync() needs exactly one of useFactory, useClass or useExisting to provide the tunnel options; got ${given.length === 0 ? 'none' : given.join(' and ')}`,
    );
  }
}
