import type { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Admission, ServerAcceptor } from '../../core/transport.js';
import { forwardedFor } from '../common/forwarded-for.js';
import { HALF_CLOSE_HEADER, HALF_CLOSE_VERSION } from './ws-duplex.js';
import { NOT_FOUND, UPGRADE_REFUSALS, writeAuthRefusal, writeRefusal } from './ws-refusal.js';
import { AUTH_HEADER, type HeaderServerAuth } from '../../auth/header.js';
import { channelBinding } from '../../auth/proof.js';

export interface UpgradeOptions {
  readonly acceptor: ServerAcceptor;
  readonly wss: WebSocketServer;
  /** '*' for any path; else the path the upgrade must ask for (its query ignored). */
  readonly path: string;
  readonly trustedProxies: number;
  /**
   * On a server of the user's own another 'upgrade' listener may own a path
   * that is not ours: true then leaves such an upgrade alone when it has one.
   */
  readonly shared: boolean;
  /** The server upgrades arrive on. */
  readonly server: EventEmitter;
  /** The connection reached its upgrade request: the front door's part (its deadline, its slot) is done. */
  arrived(socket: Duplex): void;
  /**
   * Shared-key authentication: the proof on the upgrade request is checked
   * before admission; `bind` folds the connection's TLS channel binding in.
   */
  readonly auth?: { readonly server: HeaderServerAuth; readonly bind: boolean };
  /** The WebSocket is open: send the ID and pool it (`keyId`: the key its proof verified with, under authentication). */
  accept(ws: WebSocket, socket: Duplex, admission: Admission, halfClose: boolean, keyId: string | undefined): void;
}

/** The server's proof for the 101 of an upgrade whose proof verified, until ws's 'headers' event writes it (see `addAuthProof`). */
const serverProofs = new WeakMap<http.IncomingMessage, string>();

/**
 * The upgrade handling, the same on the pool's own port and on a server it
 * is attached to: every check runs on the upgrade request before the
 * upgrade completes (path → 404, capacity → 503, peer address → 403,
 * behind a trusted proxy the one it names), so a refusal costs no
 * WebSocket; then ws completes the upgrade (or refuses a malformed one).
 */
export function upgradeHandler(options: UpgradeOptions): (request: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { acceptor, wss } = options;
  return (request, socket, head) => {
    if (!matchesPath(options.path, request.url)) {
      // Alone, answer so the socket does not hang.
      if (options.shared && options.server.listenerCount('upgrade') > 1) return;
      options.arrived(socket);
      acceptor.refused('path');
      writeRefusal(socket, 404, NOT_FOUND);
      return;
    }
    options.arrived(socket);
    // The proof first, before admission: a stranger takes no slot, no ID, and learns nothing of the pool's state.
    let keyId: string | undefined;
    if (options.auth) {
      const { server, bind } = options.auth;
      // One upgrade per connection: the binding (wss) is unique to it, so its proofs are numbered from 0.
      const check = server.connection(bind ? channelBinding(request.socket) : undefined).check(request.headers[AUTH_HEADER]);
      if (!check.ok) {
        acceptor.refused('auth');
        writeAuthRefusal(socket);
        return;
      }
      keyId = check.keyId;
      serverProofs.set(request, check.responseHeader);
    }
    const address = forwardedFor(request.socket.remoteAddress, request.headers, options.trustedProxies);
    const admission = acceptor.admit(address);
    if (typeof admission === 'string') {
      const { status, body } = UPGRADE_REFUSALS[admission];
      writeRefusal(socket, status, body);
      return;
    }
    let upgraded = false;
    wss.handleUpgrade(request, socket, head, (ws) => {
      upgraded = true;
      options.accept(ws, socket, admission, offersHalfClose(request), keyId);
    });
    // handleUpgrade completes (or refuses a malformed request with 400) synchronously.
    if (!upgraded) admission.fail('bad-upgrade');
  };
}

function matchesPath(path: string, url: string | undefined): boolean {
  if (path === '*') return true;
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return (query === -1 ? raw : raw.slice(0, query)) === path;
}

/** The client offered the half-close extension (a Go npws client never does). */
export function offersHalfClose(request: http.IncomingMessage): boolean {
  return request.headers[HALF_CLOSE_HEADER.toLowerCase()] === HALF_CLOSE_VERSION;
}

/** ws's 'headers' event, just before it writes the 101: accept the offer by echoing it. */
export function acceptHalfClose(headers: string[], request: http.IncomingMessage): void {
  if (offersHalfClose(request)) headers.push(`${HALF_CLOSE_HEADER}: ${HALF_CLOSE_VERSION}`);
}

/** ws's 'headers' event, just before it writes the 101: the server's proof, when the upgrade's proof verified. */
export function addAuthProof(headers: string[], request: http.IncomingMessage): void {
  const proof = serverProofs.get(request);
  if (proof !== undefined) headers.push(`${AUTH_HEADER}: ${proof}`);
}
