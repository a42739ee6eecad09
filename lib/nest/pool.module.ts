import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { InvalidOptionsError } from '../core/errors.js';
import { OptionReader } from '../core/validate.js';
import type { PoolModuleAsyncOptions, PoolModuleRootOptions } from './pool-module-options.interface.js';
import type { AnyTransportFactory } from '../transports/transport-factory.js';
import { getPoolOptionsToken } from './pool.constants.js';
import { createAsyncOptionsProviders, createPoolProviders, poolExports } from './pool.providers.js';
import { tokenName, type StaticPoolOptions } from './pool-registration.js';

const USE_KEYS = ['useFactory', 'useClass', 'useExisting'] as const;

/**
 * Pre-warmed, ID-matched tunnel pools as Nest providers. Each `forRoot` /
 * `forRootAsync` registers one pool (a client side, a server side or both)
 * under its name; the pools start with the application and close with it.
 *
 * The options are validated once, when Nest instantiates the registration
 * (`compile()`, `NestFactory.create()`), the same way for both forms.
 */
@Module({})
export class PoolModule {
  static forRoot<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never>(options: PoolModuleRootOptions<C, S>): DynamicModule {
    const plain = options !== null && typeof options === 'object' ? options : undefined;
    const { isGlobal, ...poolOptions } = plain ?? {};
    const fixed: StaticPoolOptions = { name: plain?.name, isGlobal, async: false };
    const name = tokenName(fixed.name);
    return PoolModule.registration(name, fixed, isGlobal, [], [
      { provide: getPoolOptionsToken(name), useValue: plain ? poolOptions : options },
    ]);
  }

  /**
   * Options from a factory (`useFactory` + `inject`), a class
   * (`useClass`), or a provider that exists already (`useExisting`). A config
   * without exactly one of them is rejected here, at once.
   */
  static forRootAsync<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never>(typed: PoolModuleAsyncOptions<C, S>): DynamicModule {
    // The option types have done their work; the registration reads the options at run time.
    const options = typed as unknown as PoolModuleAsyncOptions;
    assertAsyncOptions(options);
    const fixed: StaticPoolOptions = { name: options.name, isGlobal: options.isGlobal, async: true };
    const name = tokenName(fixed.name);
    return PoolModule.registration(name, fixed, options.isGlobal, options.imports ?? [], [
      ...createAsyncOptionsProviders(name, options),
      ...(options.extraProviders ?? []),
    ]);
  }

  private static registration(
    name: string,
    fixed: StaticPoolOptions,
    isGlobal: unknown,
    imports: NonNullable<DynamicModule['imports']>,
    optionProviders: Provider[],
  ): DynamicModule {
    return {
      module: PoolModule,
      global: isGlobal === true,
      imports,
      providers: [...optionProviders, ...createPoolProviders(name, fixed)],
      exports: poolExports(name),
    };
  }
}

/** The shape of an async config: known keys, and exactly one of useFactory, useClass, useExisting. */
function assertAsyncOptions(options: PoolModuleAsyncOptions): void {
  const read = new OptionReader(options as unknown as Record<string, unknown>, '');
  read.accept('name', 'isGlobal'); // static, but validated with the pool options at start-up
  for (const key of ['imports', 'inject', 'extraProviders'] as const) {
    const value = read.raw(key);
    if (value !== undefined && !Array.isArray(value)) read.fail(key, 'an array');
  }
  const given = USE_KEYS.filter((key) => read.fn(key) !== undefined);
  read.rejectUnknown();
  if (given.length !== 1) {
    throw new InvalidOptionsError(
      USE_KEYS.join('|'),
      `PoolModule.forRootAsync() needs exactly one of useFactory, useClass or useExisting to provide the pool options; got ${given.length === 0 ? 'none' : given.join(' and ')}`,
    );
  }
}
