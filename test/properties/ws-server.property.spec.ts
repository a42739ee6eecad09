import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { Collector, parseFrames } from '../ws/ws-support.js';
import { chunk, runs } from './fc.js';

const scope = useTestScope();

interface Request {
  method: string;
  path: string;
  host: boolean;
  connection?: string;
  upgrade?: string;
  version?: string;
  key?: string;
  padding: number;
}

type Script = { kind: 'http'; request: Request; cuts: number[]; ending: 'end' | 'hold' } | { kind: 'noise'; bytes: Uint8Array; ending: 'end' | 'hold' };

const VALID_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const request: fc.Arbitrary<Request> = fc.record(
  {
    method: fc.oneof({ weight: 4, arbitrary: fc.constant('GET') }, fc.constantFrom('POST', 'PUT', 'OPTIONS')),
    path: fc.oneof({ weight: 4, arbitrary: fc.constant('/') }, fc.constantFrom('/?q=1', '/x', '//', '/%2F', '*')),
    host: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
    connection: fc.oneof({ weight: 4, arbitrary: fc.constant('Upgrade') }, fc.constantFrom('keep-alive, Upgrade', 'upgrade', 'close', 'keep-alive')),
    upgrade: fc.oneof({ weight: 4, arbitrary: fc.constant('websocket') }, fc.constantFrom('WebSocket', 'h2c', 'websocket2')),
    version: fc.oneof({ weight: 4, arbitrary: fc.constant('13') }, fc.constantFrom('8', '99', 'x', '')),
    key: fc.oneof({ weight: 4, arbitrary: fc.constant(VALID_KEY) }, fc.constantFrom('short', '', 'dGhlIHNhbXBsZSBub25jZQ', '!!!!!!!!!!!!!!!!!!!!!!==')),
    padding: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.constantFrom(200, 20 * 1024)),
  },
  { requiredKeys: ['method', 'path', 'host', 'padding'] },
);

const script: fc.Arbitrary<Script> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('http' as const), request, cuts: fc.array(fc.nat({ max: 300 }), { maxLength: 4 }), ending: fc.constantFrom('end' as const, 'hold' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('noise' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }), ending: fc.constantFrom('end' as const, 'hold' as const) }) },
);

function render(r: Request, port: number): string {
  const lines = [`${r.method} ${r.path} HTTP/1.1`];
  if (r.host) lines.push(`Host: 127.0.0.1:${port}`);
  if (r.connection !== undefined) lines.push(`Connection: ${r.connection}`);
  if (r.upgrade !== undefined) lines.push(`Upgrade: ${r.upgrade}`);
  if (r.version !== undefined) lines.push(`Sec-WebSocket-Version: ${r.version}`);
  if (r.key !== undefined) lines.push(`Sec-WebSocket-Key: ${r.key}`);
  if (r.padding > 0) lines.push(`X-Padding: ${'p'.repeat(r.padding)}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** What the server must answer (HTTP status) and count, from Node's HTTP parser, the path check and ws's upgrade checks. */
function expected(r: Request): { status: number; reason?: string } {
  if (r.padding > 16 * 1024) return { status: 431, reason: 'headers-too-large' };
  const isUpgrade = r.connection !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test(r.connection) && r.upgrade !== undefined;
  if (!isUpgrade) return { status: 426, reason: 'not-upgrade' };
  const path = r.path.split('?')[0];
  if (path !== '/') return { status: 404, reason: 'path' };
  if (r.method !== 'GET') return { status: 405, reason: 'bad-upgrade' };
  if (r.upgrade!.toLowerCase() !== 'websocket') return { status: 400, reason: 'bad-upgrade' };
  if (r.key !== VALID_KEY) return { status: 400, reason: 'bad-upgrade' };
  if (r.version !== '13' && r.version !== '8') return { status: 400, reason: 'bad-upgrade' };
  return { status: 101 };
}

async function send(socket: net.Socket, pieces: readonly Buffer[], ending: 'end' | 'hold'): Promise<void> {
  for (const piece of pieces) {
    if (socket.destroyed) return;
    socket.write(piece);
    await sleep(1);
  }
  if (ending === 'end' && !socket.destroyed) socket.end();
}

describe('ws server upgrade checks (property): a raw client sends any HTTP, or none', () => {
  it('upgrades exactly the valid request, with an ID frame and one pooled stream; answers and counts everything else once', async () => {
    const server = createServerPool({ transport: 'ws', port: 0, handshakeTimeout: 150 });
    await server.start();
    scope.defer(() => server.close());
    const port = server.address()!.port;
    const seenIds = new Set<string>();

    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        const before = { ...server.stats.refusals };
        const accepted = server.stats.totals.accepted;
        const socket = scope.track(net.connect(port, '127.0.0.1'));
        const received = new Collector(socket);
        await new Promise((resolve) => socket.once('connect', resolve));
        if (s.kind === 'noise') {
          await send(socket, [Buffer.from(s.bytes)], s.ending);
          // Not HTTP: Node's parser refuses it at once (400); while it could still be the start of a
          // request, the handshake deadline cuts it, or the peer's close ends it.
          await eventually(() => received.ended, 3000, 'the server to close the connection');
          await eventually(() => Object.keys(server.stats.refusals).some((reason) => server.stats.refusals[reason] !== before[reason]), 1000, 'the connection to be counted');
          await sleep(20);
          const counted = Object.keys(server.stats.refusals).filter((reason) => server.stats.refusals[reason] !== before[reason]);
          expect(counted.length).toBe(1);
          expect(s.ending === 'hold' ? ['bad-request', 'handshake-timeout'] : ['bad-request', 'closed-in-handshake']).toContain(counted[0]);
          expect(server.stats.refusals[counted[0]!]).toBe((before[counted[0]!] ?? 0) + 1);
          if (received.data.length > 0) expect(received.data.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
          expect(server.stats.totals.accepted).toBe(accepted);
          return;
        }
        const want = expected(s.request);
        const text = render(s.request, port);
        await send(socket, chunk(Buffer.from(text, 'latin1'), s.cuts), want.status === 101 ? 'hold' : s.ending);
        const { head } = await received.head(3000);
        expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${want.status} `));
        if (want.status === 101) {
          const afterHead = (data: Buffer): Buffer => data.subarray(data.indexOf('\r\n\r\n') + 4);
          await received.wait((data) => parseFrames(afterHead(data)).frames.length > 0, 2000, 'the ID frame');
          const [idFrame] = parseFrames(afterHead(received.data)).frames;
          expect(idFrame).toMatchObject({ fin: true, opcode: 2, masked: false });
          expect(idFrame!.payload.length).toBe(4);
          const id = idFrame!.payload.toString('hex');
          expect(seenIds.has(id)).toBe(false);
          seenIds.add(id);
          await eventually(() => server.stats.totals.accepted === accepted + 1, 2000, 'the stream to join the pool');
          expect(server.stats.refusals).toEqual(before);
          const [taken, stream] = await server.incomingGet(2000);
          expect(taken).toBe(id);
          stream.on('error', () => undefined);
          stream.destroy();
        } else {
          await eventually(() => received.ended, 3000, 'the server to close the connection');
          expect(server.stats.refusals).toEqual({ ...before, [want.reason!]: (before[want.reason!] ?? 0) + 1 });
          expect(server.stats.totals.accepted).toBe(accepted);
        }
        socket.destroy();
      }),
      runs(50, 10_000),
    );
    expect(server.stats.handshaking).toBe(0);
    expect(server.active).toBe(0);
    // A real client is served after all that.
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, minCap: 1, maxCap: 1 });
    scope.defer(() => client.close());
    client.start();
    const [id, stream] = await server.incomingGet(5000);
    scope.track(stream);
    scope.track(await client.outgoingGet(id, 5000));
  });
});
