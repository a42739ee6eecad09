import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Refusal } from '../../core/transport.js';
import { AUTH_REFUSAL } from '../../auth/header.js';

/** The pool's refusals of an upgrade, with the status and body the Go server writes. */
export const UPGRADE_REFUSALS: Record<Refusal, { readonly status: number; readonly body: string }> = {
  full: { status: 503, body: 'pool full\n' },
  busy: { status: 503, body: 'pool full\n' },
  'peer-busy': { status: 503, body: 'pool full\n' },
  'connection-busy': { status: 503, body: 'pool full\n' },
  closed: { status: 503, body: 'pool closed\n' },
  ip: { status: 403, body: 'unauthorized\n' },
};

export const NOT_FOUND = 'not found\n';

/** An HTTP refusal as the Go server writes it, then the connection closes. */
export function writeRefusal(socket: Duplex, status: number, body: string, extra: readonly string[] = []): void {
  socket.on('error', () => undefined);
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    ...extra,
    'Content-Type: text/plain; charset=utf-8',
    'X-Content-Type-Options: nosniff',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  socket.once('finish', () => socket.destroy());
}

/** A refused authentication proof (missing, malformed, stale, replayed, wrong key): 401 and the challenge, never why. */
export function writeAuthRefusal(socket: Duplex): void {
  writeRefusal(socket, AUTH_REFUSAL.status, AUTH_REFUSAL.body, [`WWW-Authenticate: ${AUTH_REFUSAL.headers['www-authenticate']}`]);
}

/** A plain HTTP request on the pool's own port: 426, naming what the port is for. */
export function writeUpgradeRequired(response: http.ServerResponse): void {
  const body = 'this port serves WebSocket upgrades of a tunnel pool only\n';
  response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Upgrade: 'websocket', Connection: 'close' });
  response.end(body);
}

/** A request Node's HTTP parser refused, answered as Node would (400, or 431 for oversized headers), if nothing was written yet. */
export function writeParserRefusal(socket: Duplex, tooLarge: boolean): void {
  if (!socket.writable || (socket as Duplex & { bytesWritten?: number }).bytesWritten !== 0) return;
  socket.write(tooLarge ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
}
