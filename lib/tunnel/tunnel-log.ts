import type { EventEmitter } from 'node:events';
import { ControlRefusedError } from '../core/errors.js';
import { DEFAULT_LOG_INTERVAL_MS, FailureReporter, type PoolLogger } from '../core/logger.js';
import type { RouteAnswer } from './control/messages.js';
import { isPeerFailure } from './tunnel-stats.js';

/*
 * What a tunnel end says in its logs, from its own events (nothing here
 * runs per byte): the control channel's life and route answers one line
 * each, as they happen; failures that can repeat (connections that could
 * not open, reconnect tries, missing or incomplete accounting) through a
 * FailureReporter: the first with its cause, then one summary per
 * interval, then the recovery. The core's rule: silent without a logger.
 */

/** A handler of one of the tunnel events this log reads; each types its own arguments. */
type Listener = (...args: any[]) => void;

/** What `attachTunnelLog` needs of a tunnel end: its events and its pool's name. */
export interface LoggedTunnel extends Pick<EventEmitter, 'on' | 'off'> {
  readonly pool: { readonly name: string };
}

const describeRoutes = (routes: readonly RouteAnswer[]): string =>
  routes.map((r) => (r.status === 'accepted' ? `${r.name}${r.port > 0 ? ` (public port ${r.port})` : ''}` : `${r.name} refused (${r.status})`)).join(', ') || 'no routes';

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Logs a tunnel end's events to `logger`; returns what detaches it (and
 * stops its reporters' timers). `role` picks the events: a server logs its
 * clients, a client its control channel.
 */
export function attachTunnelLog(tunnel: LoggedTunnel, role: 'server' | 'client', logger: PoolLogger, interval = DEFAULT_LOG_INTERVAL_MS): () => void {
  const subject = `tunnel ${role} '${tunnel.pool.name}'`;
  const safe = (level: 'log' | 'warn', text: string): void => {
    try {
      logger[level](`${subject}: ${text}`);
    } catch {
      // A logger that throws must not break the tunnel.
    }
  };
  const opening = new FailureReporter(logger, subject, 'opening tunnelled connections', interval);
  const accounting = new FailureReporter(logger, subject, 'end-of-stream accounting', interval);
  const reconnecting = new FailureReporter(logger, subject, 'bringing the control channel back', interval);
  const handlers: Record<string, Listener> =
    role === 'server'
      ? {
          client: ((client: string, routes: RouteAnswer[]) => safe('log', `client ${client} is up: ${describeRoutes(routes)}`)),
          refused: ((client: string, answer: RouteAnswer) => safe('warn', `client ${client}: route ${answer.name} refused (${answer.status})${answer.text ? `: ${answer.text}` : ''}`)),
          'client-gone': ((client: string, error: Error | undefined) =>
            error ? safe('warn', `client ${client} lost its control channel: ${message(error)}`) : safe('log', `client ${client} closed its control channel`)),
          duplicate: ((client: string) => safe('warn', `refused a second control channel for client ${client}: it already has one`)),
          'open-failed': ((event: { client: string; route: string; error: Error }) => opening.failure(event.error)),
          // A connection the client answered with FAIL (its target refused...) ends as a cut here: an opening failure too.
          connection: ((event: { result: { error?: unknown } }) => {
            if (event.result.error === undefined) opening.success();
            else if (isPeerFailure(event.result.error)) opening.failure(event.result.error);
          }),
          accounted: ((event: { client: string; route: string; complete: boolean; mine: { sent: number; received: number }; peer: { sent: number; received: number } }) => {
            if (event.complete) return accounting.success();
            accounting.failure(
              new Error(`a connection of client ${event.client} on route ${event.route} lost bytes: this end sent ${event.mine.sent} and received ${event.mine.received}, the client received ${event.peer.received} and sent ${event.peer.sent}`),
            );
          }),
          unaccounted: ((event: { client: string; route: string }) =>
            accounting.failure(new Error(`no END came from client ${event.client} for a connection on route ${event.route} (killed, or its control channel was lost): its bytes cannot be confirmed`))),
        }
      : {
          up: ((routes: RouteAnswer[]) => {
            reconnecting.success();
            safe('log', `control channel up: ${describeRoutes(routes)}`);
          }),
          refused: ((answer: RouteAnswer) => safe('warn', `route ${answer.name} refused by the server (${answer.status})${answer.text ? `: ${answer.text}` : ''}`)),
          // A server that announced its shutdown closed the channel on purpose: said at 'log', the client comes back when it does.
          down: ((error: Error | undefined) =>
            error === undefined
              ? safe('log', 'control channel closed')
              : error instanceof ControlRefusedError && error.reason === 'shutdown'
                ? safe('log', `control channel closed by the server: ${message(error)}`)
                : safe('warn', `control channel lost: ${message(error)}`)),
          'reconnect-failed': ((error: Error) => reconnecting.failure(error)),
          drain: (() => safe('log', 'the server is draining: no new connections')),
          'open-failed': ((event: { error: Error }) => opening.failure(event.error)),
          connection: ((event: { result: { error?: unknown } }) => {
            if (event.result.error === undefined) opening.success();
            else if (isPeerFailure(event.result.error)) opening.failure(event.result.error);
          }),
        };
  for (const [event, handler] of Object.entries(handlers)) tunnel.on(event, handler);
  return () => {
    for (const [event, handler] of Object.entries(handlers)) tunnel.off(event, handler);
    opening.close();
    accounting.close();
    reconnecting.close();
  };
}
