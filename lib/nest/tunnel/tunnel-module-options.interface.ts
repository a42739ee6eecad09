import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Provider, Type } from '@nestjs/common';
import type { TunnelClientOptions } from '../../tunnel/tunnel-client.js';
import type { TunnelServerOptions } from '../../tunnel/tunnel-server.js';

/** The server end of a tunnel registration: `TunnelServer` options, over the server pool of the registration's `pool`. */
export type TunnelModuleServerOptions = Omit<TunnelServerOptions, 'pool'>;

/** The client end: `TunnelClient` options, over the client pool of the registration's `pool`. `name` (its label in the server's logs) defaults to the registration's name. */
export type TunnelModuleClientOptions = Omit<TunnelClientOptions, 'pool'>;

/**
 * One tunnel registration: a server end, a client end, or both, under one
 * name, over one `PoolModule` registration (which must configure the
 * matching pool side: `server` for the server end, `client` for the client end).
 */
export interface TunnelModuleOptions {
  /** The tunnel's name; the default tunnel when omitted. Named tunnels are injected with `@InjectTunnelServer(name)` / `@InjectTunnelClient(name)`. */
  name?: string;
  /** The `PoolModule` registration the tunnel runs over (its name); by default the one with the tunnel's name ('default' for the unnamed tunnel). */
  pool?: string;
  server?: TunnelModuleServerOptions;
  client?: TunnelModuleClientOptions;
  /**
   * Start the ends when the application has bootstrapped (default true; the
   * pools started with the modules just before). The client end keeps trying
   * in the background until its control channel is up; see
   * `TunnelClientService.whenUp()`.
   */
  autoStart?: boolean;
}

export interface TunnelModuleRootOptions extends TunnelModuleOptions {
  /** Register the tunnel services in the global scope. */
  isGlobal?: boolean;
}

/** A class that builds the tunnel options, for `useClass` and `useExisting`. */
export interface TunnelOptionsFactory {
  createTunnelOptions(): TunnelModuleOptions | Promise<TunnelModuleOptions>;
}

/** `TunnelModule.forRootAsync()` options. Exactly one of `useFactory`, `useClass`, `useExisting`. */
export interface TunnelModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** The tunnel's name: static, because it builds the injection tokens. */
  name?: string;
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory?: (...args: any[]) => TunnelModuleOptions | Promise<TunnelModuleOptions>;
  useClass?: Type<TunnelOptionsFactory>;
  useExisting?: Type<TunnelOptionsFactory>;
  extraProviders?: Provider[];
  isGlobal?: boolean;
}
