/**
 * The server front door (lib/transports/common/front-door.ts): the
 * connection-level admission every server transport shares, its typed
 * refusal reasons, and the authentication seam.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { ServerPool } from '../../lib/core/server-pool.js';
import { REFUSAL_REASONS, type RefusalReason, type ServerAcceptor, type ServerTransport } from '../../lib/core/transport.js';
import { createServerPool } from '../../lib/pool-factory.js';
import { FrontDoor, type Authenticate } from '../../lib/transports/common/front-door.js';
import { setStreamIdentity, streamIdentity } from '../../lib/core/stream-identity.js';
import { kinds, serverConfig } from '../support/kinds.js';
import { eventually, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

describe('refusal reasons', () => {
  it('every reason a server counts is in the docs table of docs/SECURITY.md', () => {
    const doc = readFileSync(new URL('../../docs/SECURITY.md', import.meta.url), 'utf8');
    const missing = Object.keys(REFUSAL_REASONS).filter((reason) => !doc.includes(`\`${reason}\``));
    expect(missing).toEqual([]);
  });

  it('is a closed union: a misspelt reason does not type-check, a prefixed third-party one does', () => {
    // @ts-expect-error 'handshake-timout' is no reason
    const misspelt: RefusalReason = 'handshake-timout';
    const thirdParty: RefusalReason = 'unix:bad-hello';
    expect([misspelt, thirdParty]).toHaveLength(2);
  });
});

describe.each(kinds('tls', 'http2', 'wss'))('$name server: a connection still in the front door when the pool closes', (kind) => {
  it("is closed and counted once, as 'closed', and frees its handshake slot", async () => {
    const server = createServerPool(serverConfig(kind.name, { handshakeTimeout: 60_000 }));
    await server.start();
    let closed = false;
    scope.defer(() => (closed ? undefined : server.close()));
    // Silent: TLS waits for a ClientHello that never comes.
    const socket = scope.track(net.connect(server.address()!.port, '127.0.0.1'));
    socket.on('error', () => undefined);
    await eventually(() => server.stats.handshaking === 1, 5000, 'the connection to take its handshake slot');
    const ended = new Promise((resolve) => socket.once('close', resolve));
    await server.close();
    closed = true;
    await ended;
    expect({ refusals: server.stats.refusals, handshaking: server.stats.handshaking }).toEqual({ refusals: { closed: 1 }, handshaking: 0 });
  });
});

/**
 * A minimal server transport on the front door, as a transport outside the
 * built-in ones would write it: plain TCP, the hex8 ID after the door.
 */
class DoorTransport implements ServerTransport {
  readonly kind = 'door';
  readonly firstIdZero = false;
  private readonly server = net.createServer({ allowHalfOpen: true });
  private door?: FrontDoor;

  constructor(private readonly authenticate: Authenticate, private readonly handshakeTimeout = 10_000) {}

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const door = new FrontDoor(acceptor, { admit: 'stream', keepAlive: 30_000, noDelay: true, halfOpen: true, handshakeTimeout: this.handshakeTimeout, errorAfterSecure: 'socket-error', authenticate: this.authenticate });
    this.door = door;
    this.server.on('connection', (socket) =>
      door.enter(socket, (visit) => {
        const admission = visit.admission!;
        // What an authentication step proved goes out before the ID, in the same write.
        visit.stream.write(Buffer.concat([visit.authenticated?.reply ?? Buffer.alloc(0), Buffer.from(admission.id)]), () => {
          if (!visit.open) return;
          visit.done();
          if (visit.authenticated?.identity) setStreamIdentity(visit.stream, visit.authenticated.identity);
          admission.accept(visit.stream);
        });
      }),
    );
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  address(): { address: string; port: number; family: string } | null {
    const address = this.server.address();
    return address && typeof address === 'object' ? address : null;
  }

  async close(): Promise<void> {
    this.door?.close();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function startDoor(authenticate: Authenticate, handshakeTimeout?: number): Promise<ServerPool> {
  const pool = new ServerPool(new DoorTransport(authenticate, handshakeTimeout), { closeTimeout: 500 });
  await pool.start();
  scope.defer(() => pool.close());
  return pool;
}

function dial(pool: ServerPool): net.Socket {
  const socket = scope.track(net.connect(pool.address()!.port, '127.0.0.1'));
  socket.on('error', () => undefined);
  return socket;
}

describe('front door: the authentication step', () => {
  it('runs after the handshake and before the ID: a peer it lets in (asynchronously) gets its ID and is pooled', async () => {
    const seen: Array<string | undefined> = [];
    const pool = await startDoor(async (peer) => {
      seen.push(peer.remoteAddress);
      await new Promise((resolve) => setImmediate(resolve));
    });
    const socket = dial(pool);
    const id = (await readBytes(socket, 8)).toString('latin1');
    const [taken, stream] = await pool.incomingGet(5000);
    scope.track(stream);
    expect({ id, seen }).toEqual({ id: taken, seen: ['127.0.0.1'] });
    expect(pool.stats.refusals).toEqual({});
  });

  it("refuses a peer it rejects: closed bare, no ID, counted 'auth', nothing pooled", async () => {
    const pool = await startDoor(() => {
      throw new Error('no credentials');
    });
    const socket = dial(pool);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once('close', resolve));
    expect({ received: Buffer.concat(received).length, refusals: pool.stats.refusals, active: pool.active, handshaking: pool.stats.handshaking }).toEqual({
      received: 0,
      refusals: { auth: 1 },
      active: 0,
      handshaking: 0,
    });
  });

  it("is bounded by the handshake deadline: a step that never ends is counted 'handshake-timeout'", async () => {
    const pool = await startDoor(() => new Promise<void>(() => undefined), 200);
    const socket = dial(pool);
    await new Promise((resolve) => socket.once('close', resolve));
    await eventually(() => pool.stats.handshaking === 0, 2000, 'the slot to be freed');
    expect(pool.stats.refusals).toEqual({ 'handshake-timeout': 1 });
  });

  it('may talk to the peer: what it reads stays its own, its reply goes out with the ID, its identity reaches the pooled stream', async () => {
    const pool = await startDoor(async ({ stream }) => {
      stream.write('who?');
      const answer = await readBytes(stream, 3);
      return { reply: Buffer.from(`ok ${answer.toString()}|`), identity: { kind: 'key', id: answer.toString() } };
    });
    const socket = dial(pool);
    socket.write('bob');
    const answer = (await readBytes(socket, 4 + 7 + 8)).toString('latin1');
    const [taken, stream] = await pool.incomingGet(5000);
    scope.track(stream);
    expect({ answer, identity: streamIdentity(stream), refusals: pool.stats.refusals }).toEqual({
      answer: `who?ok bob|${taken}`,
      identity: { kind: 'key', id: 'bob' },
      refusals: {},
    });
  });

  it("a peer that hangs up while the step waits on it is counted 'auth', and the step's signal aborts", async () => {
    let aborted: Promise<void> | undefined;
    const pool = await startDoor(({ signal }) => {
      aborted = new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      return new Promise<void>(() => undefined);
    });
    const socket = dial(pool);
    await eventually(() => aborted !== undefined, 5000, 'the step to run');
    socket.end();
    await aborted;
    await eventually(() => pool.stats.handshaking === 0, 5000, 'the slot to be freed');
    expect(pool.stats.refusals).toEqual({ auth: 1 });
  });
});
