import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Provider, Type } from '@nestjs/common';
import type { ClientPoolConfig, ServerPoolConfig } from '../pool-factory.js';
import type { AnyTransportFactory } from '../transports/transport-factory.js';

/**
 * One pool registration: a client side, a server side, or both, under one
 * name. Each side's `transport` is a built-in name or a transport factory
 * object; `C` and `S` are those factories (inferred by `forRoot` and
 * `forRootAsync`), whose option types then apply.
 */
export interface PoolModuleOptions<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never> {
  /** The pool's name; the default pool when omitted. Named pools are injected with `@InjectClientPool(name)`. */
  name?: string;
  /** The dialing side: keeps pre-warmed streams to a server pool. */
  client?: ClientPoolConfig<C>;
  /** The listening side: accepts pooled streams from client pools. */
  server?: ServerPoolConfig<S>;
  /** Start the pools with the application (default true); otherwise call `start()` on the services. */
  autoStart?: boolean;
  /**
   * Bound in ms on the graceful close when the application shuts down
   * (default 5000): streams the application took get this long to finish;
   * those still open then are destroyed with a `PoolClosedError`.
   */
  shutdownTimeout?: number;
}

/** `PoolModule.forRoot()` options: the pool options plus module scope. */
export interface PoolModuleRootOptions<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never>
  extends PoolModuleOptions<C, S> {
  /** Register the pool services in the global scope: feature modules inject them without importing PoolModule. */
  isGlobal?: boolean;
}

/** A class that builds the pool options, for `useClass` and `useExisting`. */
export interface PoolOptionsFactory<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never> {
  createPoolOptions(): PoolModuleOptions<C, S> | Promise<PoolModuleOptions<C, S>>;
}

/** `PoolModule.forRootAsync()` options. Exactly one of `useFactory`, `useClass`, `useExisting`. */
export interface PoolModuleAsyncOptions<C extends AnyTransportFactory = never, S extends AnyTransportFactory = never> extends Pick<ModuleMetadata, 'imports'> {
  /**
   * The pool's name. It is static because it builds the injection tokens; if
   * the factory returns a `name` too, it must be the same.
   */
  name?: string;
  /** Tokens to inject into `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory?: (...args: any[]) => PoolModuleOptions<C, S> | Promise<PoolModuleOptions<C, S>>;
  useClass?: Type<PoolOptionsFactory<C, S>>;
  useExisting?: Type<PoolOptionsFactory<C, S>>;
  /** Providers that only the options factory needs. */
  extraProviders?: Provider[];
  isGlobal?: boolean;
}
