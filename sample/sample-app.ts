import 'reflect-metadata';
import { ConsoleLogger, type INestApplication, type LoggerService, type LogLevel } from '@nestjs/common';
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { ClientPoolService, ServerPoolService } from '../lib/index.js';
import { AppModule } from './app.module.js';
import { dialableHost, hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import { formatEndpoint } from './endpoints.js';
import { listen } from './sockets.js';
import { TargetService } from './target.js';
import { loadTlsMaterial } from './tls.js';
import { TunnelEntryService } from './tunnel-entry.service.js';
import { TunnelExitService } from './tunnel-exit.service.js';

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
  /** Server side only. */
  public?: number;
  pool?: number;
  control?: number;
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
   * Resolves once this process can carry a tunnelled connection: the client
   * pool holds an idle stream (client side) and the control connection is
   * up (both sides). Rejects after `timeout` ms or when `signal` aborts.
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
  const app = await NestFactory.create(AppModule.register(config, tls), {
    logger,
    // DI errors throw here instead of exiting the process.
    abortOnError: false,
    // /health clients with keep-alive connections must not hold the shutdown up.
    forceCloseConnections: true,
  });
  // Why here and not in the library: a library must not decide how a process
  // reacts to signals. The application opts in, so Ctrl-C and SIGTERM run
  // onModuleDestroy everywhere: pools closed, listeners closed, sockets ended.
  if (options.enableShutdownHooks) app.enableShutdownHooks(['SIGINT', 'SIGTERM']);
  try {
    // Not app.listen(): Nest's init logs "successfully started" before a taken port fails the
    // listen. The health port is bound first (a request before init ends is a 404), then init.
    await listen(app.getHttpServer() as Server, config.ports.health, config.host, 'HEALTH_PORT');
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }

  const entry = hasServerSide(config.role) ? app.get(TunnelEntryService) : undefined;
  const exit = hasClientSide(config.role) ? app.get(TunnelExitService) : undefined;
  const clientPool = exit ? app.get(ClientPoolService) : undefined;
  const serverPool = entry ? app.get(ServerPoolService) : undefined;
  const health = (app.getHttpServer().address() as AddressInfo).port;
  const target = exit ? app.get(TargetService).address()?.port : undefined;
  const ports: SamplePortsBound = {
    health,
    ...(entry ? { public: entry.publicPort, control: entry.controlPort, pool: serverPool!.address()?.port } : {}),
    ...(target !== undefined ? { target } : {}),
  };
  const url = (port: number, path: string): string => `http://${formatEndpoint({ host: dialableHost(config.host), port })}${path}`;
  const urls = {
    health: url(health, '/health'),
    ...(ports.public !== undefined ? { public: url(ports.public, '/') } : {}),
    ...(ports.target !== undefined ? { target: url(ports.target, '/') } : {}),
  };

  const isReady = (): boolean =>
    (!clientPool || clientPool.active > 0) && (!exit || exit.controlConnected) && (!entry || entry.exitConnected);
  const ready = ({ timeout = Infinity, signal }: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + timeout;
      const poll = (): void => {
        if (signal?.aborted) return reject(new Error('stopped before the tunnel was ready'));
        if (isReady()) return resolve();
        if (Date.now() >= deadline) {
          return reject(new Error(`the tunnel was not ready within ${timeout} ms (idle pooled streams: ${clientPool?.active ?? 'n/a'}, exit connected: ${exit?.controlConnected ?? entry?.exitConnected})`));
        }
        // Unreferenced: waiting for readiness never keeps the process alive.
        setTimeout(poll, 25).unref();
      };
      poll();
    });

  return { app, config, ports, urls, ready };
}
