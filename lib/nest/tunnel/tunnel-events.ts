import type { RouteAnswer, EndMessage } from '../../tunnel/control/messages.js';
import type { ForwardResult } from '../../tunnel/forward.js';
import type { RouteState } from '../../tunnel/tunnel-client.js';

/**
 * What a tunnel server end reports on `events$`, one plain object per
 * event, `type` first. `tunnel` is the registration's name, `client` the
 * client's label (`key:<id>`, `cert:<name>`, `anonymous`).
 */
export type TunnelServerEvent =
  /** A client's control channel is up; `routes`: the answer it got, route by route. */
  | { type: 'client-up'; tunnel: string; client: string; routes: RouteAnswer[] }
  /** A client's control channel is gone (`error` undefined: it closed cleanly). */
  | { type: 'client-down'; tunnel: string; client: string; error?: Error }
  /** A route the allowlist or a port conflict refused. */
  | { type: 'refused'; tunnel: string; client: string; answer: RouteAnswer }
  /** A second control channel for a client that has one was refused. */
  | { type: 'duplicate'; tunnel: string; client: string }
  /** A tunnelled connection is forwarding. */
  | { type: 'connection-opened'; tunnel: string; client: string; route: string; id: string }
  /** A tunnelled connection ended, with its figures (bytes each way, how each direction ended, the error if any). */
  | { type: 'connection-closed'; tunnel: string; client: string; route: string; id: string; result: ForwardResult }
  /** Both ENDs of a connection are in; `complete` false: a truncation the wire could not show. */
  | { type: 'accounted'; tunnel: string; client: string; route: string; id: string; mine: Omit<EndMessage, 'type'>; peer: EndMessage; complete: boolean }
  /** The client's END never came (it was killed, or its control channel was lost). */
  | { type: 'unaccounted'; tunnel: string; client: string; route: string; id: string; mine: Omit<EndMessage, 'type'> }
  /** A public connection (or a client's forward OPEN) could not be opened; the public side saw a reset. */
  | { type: 'open-failed'; tunnel: string; client: string; route: string; error: Error }
  /** The stream picked for a reverse connection was the client's forward one at the same moment: it went to that connection, and the reverse one picked another. */
  | { type: 'collision'; tunnel: string; client: string; route: string; id: string };

/** What a tunnel client end reports on `events$`. */
export type TunnelClientEvent =
  /** The control channel is up: the server's answer per route. */
  | { type: 'up'; tunnel: string; routes: RouteState[] }
  /** The control channel closed (`error` undefined: cleanly); a new one follows unless `reconnect` is false. */
  | { type: 'down'; tunnel: string; error?: Error }
  /** Bringing the control channel up (at start or after a loss) failed; the next try follows after the back-off. */
  | { type: 'connect-failed'; tunnel: string; error: Error }
  /** A route the server refused. */
  | { type: 'refused'; tunnel: string; answer: RouteAnswer }
  /** The server is draining: it opens no more connections. */
  | { type: 'drain'; tunnel: string }
  | { type: 'connection-opened'; tunnel: string; route: string; id: string }
  | { type: 'connection-closed'; tunnel: string; route: string; id: string; result: ForwardResult }
  /** An OPEN could not be served (the target refused, no stream, the route's limit): FAIL was sent. */
  | { type: 'open-failed'; tunnel: string; route: string; id: string; error: Error };
