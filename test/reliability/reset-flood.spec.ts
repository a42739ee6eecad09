/**
 * Issue 10, item 1: peers that connect and reset (RST) at every point of
 * the handshake, while the application waits in `incomingGet()`. Before the
 * fix a plain-tcp server (hex8 and raw4) died with an uncaught ECONNRESET:
 * the ID write failed, the error was emitted on the next tick, and the
 * stream had already been handed to the waiter before it could listen.
 *
 * - nothing is uncaught, on any transport;
 * - no stream the application receives is already dead when it gets it,
 *   and one that dies between the hand-out and the application's first
 *   listener is destroyed with its error (`stream.errored`), never silently;
 * - every flood connection is accounted for (refused, dropped, or handed
 *   out and then failed), and a real client is served afterwards.
 */
import { describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig } from '../../lib/pool-factory.js';
import { eventually, readBytes, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { clientConfig, realProcess, serverConfig, type Kind } from './support.js';

const scope = useTestScope();

const FLOOD = 300;
const BATCH = 30;

type Case = { name: string; kind: Kind; server: Record<string, unknown>; client: Record<string, unknown> };

const CASES: Case[] = [
  { name: 'tcp (hex8)', kind: 'tcp', server: {}, client: {} },
  { name: 'tcp (raw4)', kind: 'tcp', server: { idFormat: 'raw4' }, client: { idFormat: 'raw4' } },
  { name: 'tls', kind: 'tls', server: {}, client: {} },
  { name: 'http2', kind: 'http2', server: {}, client: {} },
  { name: 'ws', kind: 'ws', server: {}, client: {} },
  { name: 'wss', kind: 'wss', server: {}, client: {} },
];

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** Resets a connection at once (RST, not FIN). */
function reset(socket: net.Socket): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}

/**
 * One hostile peer: connects, goes as far into the handshake as `phase`
 * says, then resets. Resolves once its socket closed (bounded).
 */
function hostilePeer(kind: Kind, port: number, phase: number): Promise<void> {
  return new Promise((resolve) => {
    const raw = net.connect({ port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    const timer = setTimeout(() => reset(raw), 3000);
    raw.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    const secure = kind === 'tls' || kind === 'http2' || kind === 'wss';
    raw.once('connect', () => {
      // Phase 0: reset before anything (before TLS; on plain tcp before the ID write).
      if (phase === 0) return reset(raw);
      // Phase 1: after a turn of the loop.
      if (phase === 1) return void setImmediate(() => reset(raw));
      let carrier: Duplex = raw;
      if (secure) {
        const secured = tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: kind === 'http2' ? ['h2'] : ['http/1.1'] });
        secured.on('error', () => undefined);
        carrier = secured;
        secured.once('secureConnect', () => afterTls(secured));
      } else {
        afterTls(raw);
      }
      function afterTls(stream: Duplex): void {
        if (kind === 'tcp' || kind === 'tls') return reset(raw);
        if (kind === 'http2') {
          const session = http2.connect('https://localhost', { createConnection: () => stream as tls.TLSSocket });
          session.on('error', () => undefined);
          const request = session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: false });
          request.on('error', () => undefined);
          request.write(Buffer.from([0]));
          // Sometimes at once, sometimes once the server answered.
          if (phase % 2 === 0) setImmediate(() => reset(raw));
          else request.once('response', () => reset(raw));
          return;
        }
        // ws / wss: an upgrade request, reset as the 101 arrives.
        carrier.write(
          'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
        if (phase % 2 === 0) setImmediate(() => reset(raw));
        else carrier.once('data', () => reset(raw));
      }
    });
  });
}

interface AppView {
  handed: number;
  /** Already destroyed when the application's code first ran with it. */
  deadOnArrival: number;
  /** Of those, destroyed without an error the application could see. */
  silentlyDead: number;
  errorsSeen: number;
}

/** An application with `waiters` calls in incomingGet, attaching its 'error' listener right after the await. */
function application(server: ServerPool, waiters: number, running: () => boolean): { view: AppView; done: Promise<void> } {
  const view: AppView = { handed: 0, deadOnArrival: 0, silentlyDead: 0, errorsSeen: 0 };
  const loop = async (): Promise<void> => {
    while (running()) {
      let stream: Duplex;
      try {
        [, stream] = await server.incomingGet(300);
      } catch {
        continue;
      }
      view.handed++;
      if (stream.destroyed) {
        view.deadOnArrival++;
        if (stream.errored == null) view.silentlyDead++;
      }
      stream.on('error', () => view.errorsSeen++);
      scope.track(stream);
      // The application reads (which also sees a reset that comes later).
      stream.resume();
    }
  };
  return { view, done: Promise.all(Array.from({ length: waiters }, loop)).then(() => undefined) };
}

describe.each(CASES)('$name: connect + reset flood against a waiting incomingGet', ({ kind, server: serverExtra, client: clientExtra }) => {
  it('nothing is uncaught, nothing dead is handed out, and a real client is served afterwards', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    realProcess.on('uncaughtException', onUncaught);
    scope.defer(() => void realProcess.off('uncaughtException', onUncaught));

    const server = createServerPool(serverConfig(kind, { ...serverExtra, maxHandshakes: 1024, handshakeTimeout: 3000 }));
    await server.start();
    scope.defer(() => server.close(1000));
    const port = server.address()!.port;

    let running = true;
    const app = application(server, 20, () => running);
    for (let start = 0; start < FLOOD; start += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, FLOOD - start) }, (_, i) => hostilePeer(kind, port, (start + i) % 4)));
    }
    // Let the last errors surface, then stop the application.
    await sleep(200);
    await eventually(() => server.stats.handshaking === 0, 10_000, 'no handshake left');
    running = false;
    await app.done;

    // A real client still gets a stream that carries bytes.
    const client = createClientPool({ ...clientConfig(kind, { ...clientExtra, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 }), address: `127.0.0.1:${port}` } as ClientPoolConfig);
    scope.defer(() => client.close(1000));
    client.start();
    const [id, serverSide] = await server.incomingGet(10_000);
    scope.track(serverSide);
    const clientSide = scope.track(await client.outgoingGet(id, 10_000));
    clientSide.write('alive');
    expect((await readBytes(serverSide, 5, 10_000)).toString()).toBe('alive');

    // On tcp/TLS a stream joins the pool only once its ID write completed, so
    // none can be dead when the application's code first runs with it. On
    // the others an error in that instant is allowed, but never a silent one.
    // On tcp/TLS every flood connection is also accounted for (ws does not
    // count a peer that resets in the middle of its upgrade request).
    const strict = kind === 'tcp' || kind === 'tls';
    const accounted = app.view.handed + sum(server.stats.refusals) + sum(server.stats.drops);
    expect({
      uncaught: uncaught.map(String),
      deadOnArrival: strict ? app.view.deadOnArrival : 0,
      silentlyDead: app.view.silentlyDead,
      everyConnectionAccounted: strict ? accounted >= FLOOD : true,
    }).toEqual({
      uncaught: [],
      deadOnArrival: 0,
      silentlyDead: 0,
      everyConnectionAccounted: true,
    });
  }, 60_000);
});

/**
 * The application gets its stream and does something else (tells the
 * other side the ID, awaits a lookup) before it listens for errors; the
 * peer resets in between. Before the guard, that reset was an uncaught
 * ECONNRESET; now the stream is found destroyed with it.
 */
describe('an application that listens late', () => {
  it.each<Kind>(['tcp', 'tls'])('%s server: the peer resets after reading its ID, before the application listens', async (kind) => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    realProcess.on('uncaughtException', onUncaught);
    scope.defer(() => void realProcess.off('uncaughtException', onUncaught));
    const server = createServerPool(serverConfig(kind));
    await server.start();
    scope.defer(() => server.close(1000));
    const raw = net.connect({ port: server.address()!.port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    scope.defer(() => void raw.destroy());
    const carrier: Duplex = kind === 'tls' ? tls.connect({ socket: raw, rejectUnauthorized: false }) : raw;
    carrier.on('error', () => undefined);
    // The peer resets as soon as its ID is in.
    carrier.once('data', () => reset(raw));
    const [, stream] = await server.incomingGet(10_000);
    scope.track(stream);
    await new Promise((resolve) => raw.once('close', resolve));
    await sleep(100);
    expect({ uncaught: uncaught.map(String), destroyed: stream.destroyed, errored: (stream.errored as NodeJS.ErrnoException | null)?.code }).toEqual({
      uncaught: [],
      destroyed: true,
      errored: 'ECONNRESET',
    });
  });

  it('tcp client: the server resets right after the ID, while the application waits in outgoingGet and listens late', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    realProcess.on('uncaughtException', onUncaught);
    scope.defer(() => void realProcess.off('uncaughtException', onUncaught));
    const ID = '0000abcd';
    const sockets: net.Socket[] = [];
    const rawServer = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.write(ID, () => setTimeout(() => reset(socket), 20));
    });
    await new Promise<void>((resolve) => rawServer.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => {
      sockets.forEach((socket) => socket.destroy());
      rawServer.close(() => resolve());
    }));
    const client = createClientPool({ transport: 'tcp', address: `127.0.0.1:${(rawServer.address() as net.AddressInfo).port}`, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => client.close(1000));
    client.start();
    // Called before the dial can complete: the stream goes to this waiter.
    const waiting = client.outgoingGet(ID, 10_000);
    const stream = scope.track(await waiting);
    await new Promise((resolve) => stream.once('close', resolve));
    await sleep(50);
    expect({ uncaught: uncaught.map(String), errored: (stream.errored as NodeJS.ErrnoException | null)?.code }).toEqual({ uncaught: [], errored: 'ECONNRESET' });
  });
});
