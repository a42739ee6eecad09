import net from 'node:net';
import { InvalidOptionsError, RouteLimitError, TargetConnectError, type TargetConnectFailure } from '../core/errors.js';
import { listen } from '../core/listeners.js';
import { show } from '../core/validate.js';
import { proxyHeader, type ProxyAddress } from './proxy-protocol.js';

export interface TargetOptions {
  readonly host: string;
  readonly port: number;
  /**
   * Milliseconds for the TCP connect (from the call to the established
   * connection: name resolution, SYN, SYN-ACK). It covers nothing after:
   * a target that accepts and then stays silent is the forwarding's
   * `idleTimeout`. Default 10 000.
   */
  readonly timeout?: number;
  /** Aborts the connect (`TargetConnectError`, reason `'aborted'`). */
  readonly signal?: AbortSignal;
  /**
   * Send a PROXY protocol header (version 1 or 2) first, so the target
   * sees the real client: `source` (the public peer) and `destination`
   * (the address it connected to; by default the target's own). Without
   * `source`, a v1 `UNKNOWN` or a v2 `LOCAL` header. Default: none.
   */
  readonly proxyProtocol?: 1 | 2;
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
}

const DEFAULT_TIMEOUT = 10_000;

const REASONS: Readonly<Record<string, TargetConnectFailure>> = {
  ECONNREFUSED: 'refused',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ENETDOWN: 'unreachable',
  EADDRNOTAVAIL: 'unreachable',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  EAI_FAIL: 'dns',
  EAI_NONAME: 'dns',
};

/**
 * Connects to a route's target: a TCP socket (`allowHalfOpen`, no Nagle
 * delay) with the PROXY header, if asked for, queued before any other
 * byte. Rejects with a `TargetConnectError` whose `reason` is `'refused'`,
 * `'timeout'`, `'unreachable'`, `'dns'`, `'aborted'` or `'failed'`; options
 * that are not valid throw an `InvalidOptionsError` at once.
 */
export function connectTarget(options: TargetOptions): Promise<net.Socket> {
  const { host, port } = options;
  if (typeof host !== 'string' || host.length === 0) throw new InvalidOptionsError('target.host', `got ${show(host)}, expected a non-empty string`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidOptionsError('target.port', `got ${show(port)}, expected an integer from 1 to 65535`);
  const timeout = options.timeout ?? DEFAULT_TIMEOUT;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2_147_483_647) throw new InvalidOptionsError('target.timeout', `got ${show(timeout)}, expected milliseconds, an integer >= 1`);
  if (options.proxyProtocol !== undefined && options.proxyProtocol !== 1 && options.proxyProtocol !== 2) {
    throw new InvalidOptionsError('target.proxyProtocol', `got ${show(options.proxyProtocol)}, expected 1 or 2`);
  }
  const where = `${host}:${port}`;
  const fail = (reason: TargetConnectFailure, message: string, cause?: unknown): TargetConnectError =>
    new TargetConnectError(reason, host, port, `could not connect to the target ${where}: ${message}`, cause === undefined ? undefined : { cause });
  const signal = options.signal;
  if (signal?.aborted) return Promise.reject(fail('aborted', 'aborted before the connect'));

  // Built before the connect when it can be (a bad address throws its ProxyHeaderError here),
  // queued on the socket at once, so it is the first byte on the wire whatever the caller writes next.
  const version = options.proxyProtocol;
  const source = options.source;
  const early = version === undefined ? undefined : !source ? proxyHeader(version) : options.destination ? proxyHeader(version, { source, destination: options.destination }) : undefined;

  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    if (early) socket.write(early);
    const connected = (): void => {
      if (version === undefined || early) return settle();
      // The destination is the address the connect reached (its number, not the host name).
      try {
        socket.write(proxyHeader(version, { source: source!, destination: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? port } }));
      } catch (error) {
        return settle(fail('failed', (error as Error).message, error));
      }
      settle();
    };
    const settle = (error?: TargetConnectError): void => {
      clearTimeout(timer);
      stop();
      signal?.removeEventListener('abort', onAbort);
      if (!error) return resolve(socket);
      socket.on('error', () => undefined);
      socket.destroy();
      reject(error);
    };
    const stop = listen(socket, {
      connect: connected,
      error: (error: NodeJS.ErrnoException) => settle(fail(REASONS[error.code ?? ''] ?? 'failed', error.message, error)),
    });
    const timer = setTimeout(() => settle(fail('timeout', `no connection within ${timeout} ms (timeout)`)), timeout);
    const onAbort = (): void => settle(fail('aborted', 'aborted during the connect', signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A route's limit on concurrent connections (`maxConnections`): `acquire()`
 * takes a place or, when all are held, throws a `RouteLimitError` at once
 * (no queue) and counts the refusal.
 */
export class ConnectionLimit {
  private held = 0;
  private refusals = 0;

  constructor(readonly max: number) {
    if (max !== Infinity && (!Number.isInteger(max) || max < 1)) throw new InvalidOptionsError('maxConnections', `got ${show(max)}, expected an integer >= 1 or Infinity`);
  }

  /** Places held now. */
  get open(): number {
    return this.held;
  }

  /** Connections refused so far because every place was held. */
  get refused(): number {
    return this.refusals;
  }

  /** Takes a place; the function it returns gives it back (calling it again does nothing). */
  acquire(): () => void {
    if (this.held >= this.max) {
      this.refusals++;
      throw new RouteLimitError(this.max);
    }
    this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held--;
    };
  }
}
