/**
 * Hostile peers on loopback (issue 10), as small building blocks: the soak
 * run (`npm run soak -- --attacks ...`) and the reliability specs use the
 * same ones. Each opens raw connections from `localAddress` (another
 * loopback address, 127.0.0.2 by default, so a pool can tell the attacker
 * from its real client at 127.0.0.1), is bounded in count, and gives back a
 * handle that destroys everything it opened.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';

export const ATTACKER_ADDRESS = '127.0.0.2';

export interface AttackTarget {
  port: number;
  host?: string;
  /** The attacker's source address (default 127.0.0.2). */
  localAddress?: string;
}

/** Connections an attack holds open. */
export interface HeldConnections {
  /** Opened so far. */
  readonly opened: number;
  /** Still open. */
  readonly open: number;
  /** Bytes the server sent on any of them. */
  readonly bytesReceived: number;
  /** Destroys every connection. */
  destroy(): void;
}

function connectFrom(target: AttackTarget): net.Socket {
  return net.connect({ port: target.port, host: target.host ?? '127.0.0.1', localAddress: target.localAddress ?? ATTACKER_ADDRESS });
}

/** TLS with ALPN h2 from the attacker's address (tls.connect takes no localAddress: it wraps a socket of ours). */
function tlsFrom(target: AttackTarget): tls.TLSSocket {
  const raw = connectFrom(target);
  raw.on('error', () => undefined);
  return tls.connect({ socket: raw, servername: 'localhost', ALPNProtocols: ['h2'], rejectUnauthorized: false });
}

/**
 * Slowloris: `count` connections (at most `batch` connecting at once) that
 * send `prefix` (or nothing: they stall in TLS, or before an HTTP request)
 * and then nothing more, until the server closes them or `destroy()`.
 */
export async function slowloris(target: AttackTarget & { count: number; batch?: number; prefix?: string | Buffer }): Promise<HeldConnections> {
  const sockets = new Set<net.Socket>();
  let opened = 0;
  let bytesReceived = 0;
  let destroyed = false;
  const batch = target.batch ?? 200;
  for (let start = 0; start < target.count && !destroyed; start += batch) {
    const size = Math.min(batch, target.count - start);
    await Promise.all(
      Array.from({ length: size }, () =>
        new Promise<void>((resolve) => {
          const socket = connectFrom(target);
          sockets.add(socket);
          socket.on('data', (chunk: Buffer) => (bytesReceived += chunk.length));
          socket.on('error', () => undefined);
          socket.once('close', () => {
            sockets.delete(socket);
            resolve();
          });
          socket.once('connect', () => {
            opened++;
            if (target.prefix !== undefined) socket.write(target.prefix);
            resolve();
          });
        }),
      ),
    );
  }
  return {
    get opened() {
      return opened;
    },
    get open() {
      return sockets.size;
    },
    get bytesReceived() {
      return bytesReceived;
    },
    destroy() {
      destroyed = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
  };
}

/** `count` connections that connect and reset at once (RST), `batch` at a time. Resolves when all are gone. */
export async function connectResetFlood(target: AttackTarget & { count: number; batch?: number }): Promise<number> {
  return flood(target, (socket, done) => {
    socket.once('connect', () => {
      socket.resetAndDestroy();
      done(true);
    });
  });
}

/** `count` connections that send `bytes` of junk and a FIN, then wait for the server to close them (at most `linger` ms). */
export async function junkFinFlood(target: AttackTarget & { count: number; batch?: number; bytes?: number; linger?: number }): Promise<number> {
  const junk = Buffer.alloc(target.bytes ?? 10, 0x41);
  return flood(target, (socket, done) => {
    socket.once('connect', () => {
      socket.end(junk);
      const timer = setTimeout(() => {
        socket.destroy();
        done(true);
      }, target.linger ?? 2000);
      socket.once('close', () => {
        clearTimeout(timer);
        done(true);
      });
    });
  });
}

async function flood(target: AttackTarget & { count: number; batch?: number }, run: (socket: net.Socket, done: (ok: boolean) => void) => void): Promise<number> {
  let ok = 0;
  const batch = target.batch ?? 100;
  for (let start = 0; start < target.count; start += batch) {
    const size = Math.min(batch, target.count - start);
    await Promise.all(
      Array.from({ length: size }, () =>
        new Promise<void>((resolve) => {
          const socket = connectFrom(target);
          let finished = false;
          const done = (success: boolean): void => {
            if (finished) return;
            finished = true;
            if (success) ok++;
            resolve();
          };
          socket.on('error', () => undefined);
          socket.once('close', () => {
            socket.destroy();
            done(false);
          });
          run(socket, done);
        }),
      ),
    );
  }
  return ok;
}

/**
 * A ws client that passes the upgrade, reads the ID, then announces one
 * binary message of `announce` bytes (1 GiB by default) and sends only its
 * first `send` bytes. Resolves with the close code the server answers
 * with (1009: too big), or 0 if it did not close within `timeout`.
 */
export function wsOversized(target: AttackTarget & { tls?: boolean; announce?: number; send?: number; timeout?: number }): Promise<number> {
  return new Promise((resolve) => {
    const url = `${target.tls ? 'wss' : 'ws'}://${target.host ?? '127.0.0.1'}:${target.port}/`;
    const ws = new WebSocket(url, { perMessageDeflate: false, rejectUnauthorized: false, localAddress: target.localAddress ?? ATTACKER_ADDRESS });
    const timer = setTimeout(() => finish(0), target.timeout ?? 5000);
    const finish = (code: number): void => {
      clearTimeout(timer);
      ws.removeAllListeners('close');
      ws.on('error', () => undefined);
      ws.terminate();
      resolve(code);
    };
    ws.on('error', () => undefined);
    ws.once('close', (code: number) => finish(code));
    ws.once('message', () => {
      const socket = (ws as unknown as { _socket: net.Socket })._socket;
      socket.write(oversizedFrameHeader(target.announce ?? 1 << 30, true));
      socket.write(Buffer.alloc(target.send ?? 1024));
    });
  });
}

/** The header of one binary frame announcing `length` payload bytes (masked as a client's must be). */
export function oversizedFrameHeader(length: number, masked: boolean): Buffer {
  const header = Buffer.alloc(masked ? 14 : 10);
  header[0] = 0x82; // FIN, binary
  header[1] = (masked ? 0x80 : 0) | 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  if (masked) header.writeUInt32BE(0x11223344, 10);
  return header;
}

export interface StreamFlood {
  /** Status of each answered request (404: refused), 0 while unanswered. */
  readonly statuses: number[];
  /** Requests reset by the server before any answer. */
  readonly resets: number;
  /** Closes the session and everything on it. */
  destroy(): void;
}

/**
 * One HTTP/2 connection that opens `streams` `POST /stream` requests and
 * never sends their first byte. Resolves once every request was sent.
 */
export async function h2StreamFlood(target: AttackTarget & { streams: number }): Promise<StreamFlood> {
  const host = target.host ?? '127.0.0.1';
  const session = http2.connect(`https://${host}:${target.port}`, {
    createConnection: () => tlsFrom(target),
  });
  session.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('close', () => reject(new Error('the HTTP/2 session closed before it was up')));
  });
  const statuses: number[] = [];
  let resets = 0;
  for (let i = 0; i < target.streams; i++) {
    const index = statuses.push(0) - 1;
    const request = session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: false });
    request.on('error', () => undefined);
    request.once('response', (headers) => (statuses[index] = Number(headers[':status'])));
    request.once('close', () => {
      if (statuses[index] === 0) resets++;
    });
  }
  return {
    statuses,
    get resets() {
      return resets;
    },
    destroy() {
      session.destroy();
    },
  };
}

/**
 * `count` HTTP/2-over-TLS connections that finish TLS, send the connection
 * preface and half a frame header, and hang up (FIN), `batch` at a time.
 * Resolves once all have hung up; `destroy()` drops what the server has not
 * closed yet.
 */
export async function h2HalfFrameFlood(target: AttackTarget & { count: number; batch?: number }): Promise<HeldConnections> {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const sockets = new Set<tls.TLSSocket>();
  let opened = 0;
  const batch = target.batch ?? 50;
  for (let start = 0; start < target.count; start += batch) {
    const size = Math.min(batch, target.count - start);
    await Promise.all(
      Array.from({ length: size }, () =>
        new Promise<void>((resolve) => {
          const socket = tlsFrom(target);
          sockets.add(socket);
          socket.on('error', () => undefined);
          socket.once('secureConnect', () => {
            opened++;
            // The preface, then 5 of a SETTINGS frame's 9 header bytes, then FIN.
            socket.end(Buffer.concat([preface, Buffer.from([0, 0, 0, 4, 0])]));
            resolve();
          });
          socket.once('close', () => {
            sockets.delete(socket);
            resolve();
          });
        }),
      ),
    );
  }
  return {
    get opened() {
      return opened;
    },
    get open() {
      return sockets.size;
    },
    bytesReceived: 0,
    destroy() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
  };
}
