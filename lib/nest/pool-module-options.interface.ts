import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Provider, Type } from '@nestjs/common';
import type { ClientPoolConfig, ServerPoolConfig } from '../pool-factory.js';

/** One pool registration: a client side, a server side, or both, under one name. */
export interface PoolModuleOptions {
  /** The pool's name; the default pool when omitted. Named pools are injected with `@InjectClientPool(name)`. */
  name?: string;
  /** The dialing side: keeps pre-warmed streams to a server pool. */
  client?: ClientPoolConfig;
  /** The listening side: accepts pooled streams from client pools. */
  server?: ServerPoolConfig;
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
export interface PoolModuleRootOptions extends PoolModuleOptions {
  /** Register the pool services in the global scope: feature modules inject them without importing PoolModule. */
  isGlobal?: boolean;
}

/** A class that builds the pool options, for `useClass` and `useExisting`. */
export interface PoolOptionsFactory {
  createPoolOptions(): PoolModuleOptions | Promise<PoolModuleOptions>;
}

/** `PoolModule.forRootAsync()` options. Exactly one of `useFactory`, `useClass`, `useExisting`. */
export interface PoolModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /**
   * The pool's name. It is static because it builds the injection tokens; if
   * the factory returns a `name` too, it must be the same.
   */
  name?: string;
  /** Tokens to inject into `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory?: (...args: any[]) => PoolModuleOptions | Promise<PoolModuleOptions>;
  useClass?: Type<PoolOptionsFactory>;
  useExisting?: Type<PoolOptionsFactory>;
  /** Providers that only the options factory needs. */
  extraProviders?: Provider[];
  isGlobal?: boolean;
}
