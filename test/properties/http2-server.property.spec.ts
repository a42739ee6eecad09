import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { readBytes, sleep } from '../support/net.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { useTestScope } from '../support/scope.js';
import { testCertificate } from '../http2/h2-support.js';
import { chunk, runs } from './fc.js';
import { eventually } from '../support/net.js';

const scope = useTestScope();

interface Request {
  method: string;
  path: string;
  body: Uint8Array;
  cuts: number[];
  ending: 'end' | 'rst' | 'hold';
}

const request: fc.Arbitrary<Request> = fc.record({
  method: fc.oneof({ weight: 4, arbitrary: fc.constant('POST') }, fc.constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS', 'PATCH')),
  path: fc.oneof(
    { weight: 4, arbitrary: fc.constant('/stream') },
    fc.constantFrom('/', '/stream/', '/stream?x=1', '/STREAM', '//stream', '/stream#'),
    fc.string({ unit: fc.constantFrom(...'abcdefstrm/%.?=&-_'), maxLength: 12 }).map((s) => `/${s}`),
  ),
  // Empty bodies often: the first-byte read is the part under test.
  body: fc.oneof(fc.constant(new Uint8Array(0)), { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 10 }) }),
  cuts: fc.array(fc.nat({ max: 12 }), { maxLength: 3 }),
  ending: fc.constantFrom('end' as const, 'rst' as const, 'hold' as const),
});

/**
 * What the server must make of a request: a pooled stream (ID in the 200's
 * body); a stream dropped once pooled because its client sent more than its
 * first byte before the hand-out (issue 10: a client sends nothing more until
 * then); or a refusal by reason.
 */
function expected(r: Request): { pooled: true } | { junk: true } | { status?: number; reason: string } {
  if (r.method !== 'POST' || r.path !== '/stream') return { status: 404, reason: 'not-found' };
  if (r.body.length > 1) return { junk: true };
  if (r.body.length > 0) return { pooled: true };
  return { reason: r.ending === 'hold' ? 'handshake-timeout' : 'closed-in-handshake' };
}

/** Sends the request; resolves with the status (if any), the body bytes so far, and whether the stream closed. */
async function send(session: ClientHttp2Session, r: Request): Promise<{ stream: ClientHttp2Stream; status: Promise<number | undefined> }> {
  const stream = session.request({ ':method': r.method, ':path': r.path }, { endStream: false });
  stream.on('error', () => undefined);
  const status = new Promise<number | undefined>((resolve) => {
    stream.once('response', (headers) => resolve(Number(headers[':status'])));
    stream.once('close', () => resolve(undefined));
  });
  const pieces = chunk(r.body, r.cuts);
  const pooled = expected(r);
  for (const piece of pieces) {
    if (stream.destroyed) break;
    stream.write(piece);
    await sleep(1);
  }
  // A stream that is to be pooled (or dropped as junk) stays open; the others end as the script says.
  if (!('pooled' in pooled) && !('junk' in pooled) && !stream.destroyed) {
    if (r.ending === 'end') stream.end();
    else if (r.ending === 'rst') stream.close(http2.constants.NGHTTP2_CANCEL);
  }
  return { stream, status };
}

describe('http2 server request checks and first-byte read (property): a raw HTTP/2 client asks anything', () => {
  it('pools exactly the POST /stream that sent a byte, under a valid ID; refuses everything else once, by reason', async () => {
    const { key, cert } = testCertificate();
    // The server alone during the runs, so that every count is the raw client's.
    const server = createServerPool({ transport: 'http2', tls: { key, cert }, port: 0, handshakeTimeout: 150 });
    await server.start();
    scope.defer(() => server.close());
    const p = { server, port: server.address()!.port };
    let session: ClientHttp2Session | undefined;
    const connect = (): ClientHttp2Session => {
      if (session && !session.destroyed && !session.closed) return session;
      session = http2.connect(`https://127.0.0.1:${p.port}`, { rejectUnauthorized: false });
      session.on('error', () => undefined);
      const opened = session;
      scope.defer(() => void opened.destroy());
      return session;
    };
    const seenIds = new Set<string>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const want = expected(r);
        const before = { ...p.server.stats.refusals };
        const accepted = p.server.stats.totals.accepted;
        const dropped = p.server.stats.drops['unexpected-data'] ?? 0;
        const { stream, status } = await send(connect(), r);
        try {
          if ('pooled' in want) {
            expect(await status).toBe(200);
            const id = (await readBytes(stream, 4, 2000)).toString('hex');
            expect(id).toMatch(/^[0-9a-f]{8}$/);
            expect(seenIds.has(id)).toBe(false);
            seenIds.add(id);
            await eventually(() => p.server.stats.totals.accepted === accepted + 1, 2000, 'the stream to join the pool');
            const [taken, pooledStream] = await p.server.incomingGet(2000);
            expect(taken).toBe(id);
            const server = scope.track(pooledStream);
            // Ours now, as the application's: the client's reset below reaches it as an error.
            server.on('error', () => undefined);
            // The first byte was the handshake's (any value is taken); the rest is application data.
            const rest = Buffer.from(r.body.subarray(1));
            if (rest.length > 0) expect((await readBytes(server, rest.length, 2000)).equals(rest)).toBe(true);
            expect(p.server.stats.refusals).toEqual(before);
          } else if ('junk' in want) {
            // Accepted (200 and its ID, unless the drop's reset overtook them), then dropped, never handed out.
            expect([200, undefined]).toContain(await status);
            await eventually(() => (p.server.stats.drops['unexpected-data'] ?? 0) === dropped + 1, 2000, "an 'unexpected-data' drop");
            expect(p.server.active).toBe(0);
            expect(p.server.stats.refusals).toEqual(before);
          } else {
            const got = await status;
            // Never a 200 nor an ID; the 404 unless the client reset its stream before it came.
            if (want.status !== undefined && r.ending !== 'rst') expect(got).toBe(want.status);
            else expect([want.status, undefined]).toContain(got);
            await eventually(() => (p.server.stats.refusals[want.reason] ?? 0) > (before[want.reason] ?? 0), 2000, `a '${want.reason}' refusal`);
            expect(p.server.stats.refusals).toEqual({ ...before, [want.reason]: (before[want.reason] ?? 0) + 1 });
            expect(p.server.stats.totals.accepted).toBe(accepted);
            await eventually(() => stream.closed || stream.destroyed, 2000, 'the stream to close');
          }
        } finally {
          if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      }),
      runs(40, 10_000),
    );
    // Nothing is left handshaking, and a real client is served.
    expect(p.server.stats.handshaking).toBe(0);
    expect(p.server.active).toBe(0);
    const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${p.port}`, tls: '1', minCap: 1, maxCap: 1 });
    scope.defer(() => client.close());
    client.start();
    const [id, stream] = await p.server.incomingGet(5000);
    scope.track(stream);
    scope.track(await client.outgoingGet(id, 5000));
  });
});
