import 'reflect-metadata';
import { ConsoleLogger, type INestApplication, type LoggerService, type LogLevel } from '@nestjs/common';
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import net, { type AddressInfo } from 'node:net';
import { ClientPoolService, ServerPoolService, TunnelClientService, TunnelServerService } from '../lib/index.js';
import { AppModule, ROUTE } from './app.module.js';
import { dialableHost, hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import { formatEndpoint, type Endpoint } from './endpoints.js';
import { listen } from './sockets.js';
import { DemoTarget } from './target.js';
import { loadTlsMaterial } from './tls.js';

export interface SampleAppOptions {
  /** Nest logger setting (default: Nest's console logger, all levels). */
  logger?: false | LogLevel[] | LoggerService;
  /**
   * Let Nest close the app on SIGINT/SIGTERM. The library never enables this
   * itself (it listens on process signals, a choice for the application);
   * the sample's `main.ts` turns it on, tests leave it off.
   */
  enableShutdownHooks?: boolean;
}

export interface SamplePortsBound {
  /** The route's public port: known from the start in `both` and on the client side; on the server side with PUBLIC_PORT=0 once a client announced it. */
  public?: number;
  /** Server side only. */
  pool?: number;
  /** Client side only. */
  target?: number;
  health: number;
}

export interface SampleApp {
  app: INestApplication;
  config: SampleConfig;
  /** The ports actually bound (useful with port 0). */
  ports: SamplePortsBound;
  /** What to curl: the tunnel's public entry, /health, and the target directly. */
  urls: { public?: string; health: string; target?: string };
  /**
   * Resolves once this process can carry a tunnelled connection: the
   * tunnel's control channel is up and the client pool holds an idle stream
   * (client side), a client's control channel is up (server side). Rejects
   * after `timeout` ms or when `signal` aborts.
   */
  ready(options?: { timeout?: number; signal?: AbortSignal }): Promise<void>;
}

/**
 * Nest's console logger, minus the stack trace Nest's `ExceptionHandler`
 * prints when a module fails to start: the sample reports every start-up
 * error itself, in one line naming the variable to fix (main.ts).
 */
class SampleLogger extends ConsoleLogger {
  override error(message: unknown, ...rest: unknown[]): void {
    if (rest[rest.length - 1] === 'ExceptionHandler') return;
    super.error(message, ...rest);
  }
}

/**
 * Builds, starts and listens the sample for one role. On any start-up
 * failure whatever already started is closed before the error is thrown.
 */
export async function createSampleApp(config: SampleConfig, options: SampleAppOptions = {}): Promise<SampleApp> {
  const tls = loadTlsMaterial(config);
  const logger = options.logger === undefined || Array.isArray(options.logger)
    ? new SampleLogger({ logLevels: options.logger ?? ['log', 'error', 'warn'] })
    : options.logger;
  // In `both` the public port is the client side's to ask for: PUBLIC_PORT=0 becomes a port free now.
  const publicPort = config.role === 'both' && config.ports.public === 0 ? await freePort(config.host) : config.ports.public;
  // The demo target listens first, so the tunnel's route can name its port (TARGET_PORT=0 included).
  const target = hasClientSide(config.role) ? await DemoTarget.start(config.ports.target, config.host) : undefined;
  let app: INestApplication | undefined;
  const poolAddress = (): Endpoint => {
    // In `both` the client pool dials the port this process's server pool really bound.
    const bound = config.role === 'both' ? app?.get(ServerPoolService).address()?.port : undefined;
    return { host: config.server, port: bound ?? config.ports.pool };
  };
  try {
    app = await NestFactory.create(AppModule.register(config, tls, { poolAddress, publicPort, ...(target ? { target } : {}) }), {
      logger,
      // DI errors throw here instead of exiting the process.
      abortOnError: false,
      // /health clients with keep-alive connections must not hold the shutdown up.
      forceCloseConnections: true,
    });
  } catch (error) {
    await target?.close();
    throw error;
  }
  // Why here and not in the library: a library must not decide how a process
  // reacts to signals. The application opts in, so Ctrl-C and SIGTERM run
  // onModuleDestroy everywhere: tunnel drained, pools closed, listeners closed.
  if (options.enableShutdownHooks) app.enableShutdownHooks(['SIGINT', 'SIGTERM']);
  try {
    // Not app.listen(): Nest's init logs "successfully started" before a taken port fails the
    // listen. The health port is bound first (a request before init ends is a 404), then init.
    await listen(app.getHttpServer() as Server, config.ports.health, config.host, 'HEALTH_PORT');
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    await target?.close();
    throw error;
  }

  const nest = app;
  const tunnelServer = hasServerSide(config.role) ? nest.get(TunnelServerService) : undefined;
  const tunnelClient = hasClientSide(config.role) ? nest.get(TunnelClientService) : undefined;
  const clientPool = tunnelClient ? nest.get(ClientPoolService) : undefined;
  const health = (nest.getHttpServer().address() as AddressInfo).port;
  const ports: SamplePortsBound = {
    health,
    ...(publicPort !== 0 ? { public: publicPort } : {}),
    ...(tunnelServer ? { pool: nest.get(ServerPoolService).address()?.port } : {}),
    ...(target ? { target: target.port } : {}),
  };
  const url = (port: number, path: string): string => `http://${formatEndpoint({ host: dialableHost(config.host), port })}${path}`;
  const urls = {
    health: url(health, '/health'),
    ...(ports.public !== undefined && tunnelServer ? { public: url(ports.public, '/') } : {}),
    ...(ports.target !== undefined ? { target: url(ports.target, '/') } : {}),
  };

  const isReady = (): boolean =>
    (!tunnelClient || (tunnelClient.connected && tunnelClient.routeStates.some((r) => r.name === ROUTE && r.accepted) && (clientPool?.active ?? 0) > 0)) && (!tunnelServer || tunnelServer.clients.some((client) => tunnelServer.routesOf(client).some((r) => r.name === ROUTE)));
  const ready = ({ timeout = Infinity, signal }: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + timeout;
      const poll = (): void => {
        if (signal?.aborted) return reject(new Error('stopped before the tunnel was ready'));
        if (isReady()) return resolve();
        if (Date.now() >= deadline) {
          const why = tunnelClient ? `control channel up: ${tunnelClient.connected}, idle pooled streams: ${clientPool?.active}` : `tunnel clients: ${tunnelServer?.clients.length ?? 0}`;
          return reject(new Error(`the tunnel was not ready within ${timeout} ms (${why})`));
        }
        // Unreferenced: waiting for readiness never keeps the process alive.
        setTimeout(poll, 25).unref();
      };
      poll();
    });

  return { app: nest, config, ports, urls, ready };
}

/** A port that was free a moment ago on `host`. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await listen(server, 0, host, 'PUBLIC_PORT');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
