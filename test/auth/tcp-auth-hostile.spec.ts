/**
 * Shared-key authentication on tcp/TLS against hostile peers: a relaying man
 * in the middle in TLS mode "1", a flood of wrong keys from another address
 * while an honest client is served, arbitrary bytes where the proof goes,
 * and the keys themselves never showing in stats, options, errors or logs.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { ATTACKER_ADDRESS } from '../../bench/attacks.js';
import { createSelfSignedCertificate } from '../../lib/certs/index.js';
import { AuthRefusedError, InvalidOptionsError } from '../../lib/core/errors.js';
import type { PoolLogger } from '../../lib/core/logger.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { runs } from '../properties/fc.js';
import { KEY_A, KEY_B, thrown } from './auth-support.js';
import { CHALLENGE_BYTES, CHALLENGE_HEAD, PROOF_BYTES, clientOf, dialOnce, idleClient, proofFor, serverOf, startServer, stranger } from './tcp-auth-support.js';

const scope = useTestScope();

/**
 * A man in the middle for TLS mode "1": it terminates the client's TLS with
 * a certificate of its own and opens its own TLS connection to the server,
 * relaying the bytes both ways unchanged.
 */
async function tlsRelay(targetPort: number): Promise<number> {
  const { key, cert } = createSelfSignedCertificate({ commonName: 'mallory' });
  const legs: net.Socket[] = [];
  const relay = tls.createServer({ key, cert, minVersion: 'TLSv1.3', allowHalfOpen: true }, (front) => {
    const back = tls.connect({ host: '127.0.0.1', port: targetPort, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    legs.push(front, back);
    for (const leg of [front, back]) leg.on('error', () => undefined);
    front.pipe(back).pipe(front);
    front.on('close', () => back.destroy());
    back.on('close', () => front.destroy());
  });
  relay.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  scope.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const leg of legs) leg.destroy();
        relay.close(() => resolve());
      }),
  );
  return (relay.address() as net.AddressInfo).port;
}

describe('tcp auth over TLS mode "1": a relaying man in the middle', () => {
  it('is refused with the channel binding (the default): the proof is bound to the client\'s TLS connection, not the relay\'s', async () => {
    const server = await startServer(scope, serverOf(true, 'hex8', { auth: { key: KEY_A } }));
    const relayPort = await tlsRelay(server.address()!.port);
    const client = idleClient(scope, relayPort, clientOf(true, 'hex8', { auth: { key: KEY_A } }));
    const error = await dialOnce(client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthRefusedError);
    await eventually(() => server.stats.refusals['auth'] === 1, 5000, "the server to count 'auth'");
    expect(server.active).toBe(0);
  }, 30_000);

  it('gets through the same relay when both ends turn the binding off (what the binding is for)', async () => {
    const server = await startServer(scope, serverOf(true, 'hex8', { auth: { key: KEY_A, channelBinding: false } }));
    const relayPort = await tlsRelay(server.address()!.port);
    const client = idleClient(scope, relayPort, clientOf(true, 'hex8', { auth: { key: KEY_A, channelBinding: false } }));
    const { id, stream } = await dialOnce(client);
    scope.track(stream);
    const [taken, serverStream] = await server.incomingGet(5000);
    scope.track(serverStream);
    expect(taken).toBe(id);
  }, 30_000);
});

describe.each([false, true])('tcp auth (tls: %s): a flood of wrong keys from another address', (secure) => {
  it('is bounded by the handshake slots; the honest client keeps getting streams during it', async () => {
    const p = await scope.pair(
      startPair,
      serverOf(secure, 'hex8', { auth: { key: KEY_A }, maxHandshakes: 16, maxHandshakesPerPeer: 8, handshakeTimeout: 20_000 }),
      clientOf(secure, 'hex8', { auth: { key: KEY_A }, minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20, maxBackoff: 200 }),
    );
    await p.client.waitForActive(2, 10_000);
    let stop = false;
    const heard: number[] = [];
    const strangerOnce = async (): Promise<void> => {
      let peer;
      try {
        peer = await stranger(scope, p.port, secure, ATTACKER_ADDRESS);
        const challenge = await peer.bytes(CHALLENGE_BYTES);
        peer.socket.write(proofFor(KEY_B, 'hex8', peer.socket, challenge).proof);
        await peer.closed;
      } catch {
        // Refused bare at accept (its address is out of handshake slots): nothing was sent to it.
      }
      const got = peer?.received() ?? Buffer.alloc(0);
      heard.push(got.length);
      if (got.length > 0) expect(got.subarray(0, 6)).toEqual(CHALLENGE_HEAD);
      peer?.socket.destroy();
    };
    // Bounded in count: at most 100 rounds of 16 at once.
    const flood = (async () => {
      for (let round = 0; round < 100 && !stop; round++) await Promise.all(Array.from({ length: 16 }, strangerOnce));
    })();
    await eventually(() => (p.server.stats.refusals['auth'] ?? 0) >= 8, 20_000, 'the flood to be under way');
    let handOffs = 0;
    for (let i = 0; i < 5; i++) {
      const { server, client } = await scope.handOff(p);
      client.write('x');
      expect((await readBytes(server, 1, 10_000)).toString()).toBe('x');
      handOffs++;
    }
    const strangersWhileServed = heard.length;
    stop = true;
    await flood;
    const refusals = p.server.stats.refusals;
    expect({
      handOffs,
      // Never more than the challenge went to a stranger.
      overheard: heard.filter((bytes) => bytes > CHALLENGE_BYTES),
      strangersRefused: (refusals['auth'] ?? 0) + (refusals['peer-busy'] ?? 0) + (refusals['busy'] ?? 0),
      otherRefusals: Object.keys(refusals).filter((reason) => !['auth', 'peer-busy', 'busy'].includes(reason)),
    }).toEqual({ handOffs: 5, overheard: [], strangersRefused: heard.length, otherRefusals: [] });
    expect(strangersWhileServed).toBeGreaterThanOrEqual(8);
  }, 90_000);
});

describe('tcp auth: arbitrary bytes where the proof goes (live sockets)', () => {
  it('never crash the server and never authenticate: every stranger is closed with only the challenge heard', async () => {
    const server = await startServer(scope, serverOf(false, 'raw4', { auth: { key: KEY_A }, handshakeTimeout: 20_000 }));
    const port = server.address()!.port;
    const proofHead = Buffer.from([0x4e, 0x54, 0x50, 0x41, 1, 2]);
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 140 }),
      fc.tuple(fc.nat({ max: proofHead.length }), fc.uint8Array({ maxLength: 100 })).map(([keep, tail]) => Buffer.concat([proofHead.subarray(0, keep), tail])),
    );
    let runsDone = 0;
    await fc.assert(
      fc.asyncProperty(bytes, async (payload) => {
        const peer = await stranger(scope, port, false);
        await peer.bytes(CHALLENGE_BYTES);
        peer.socket.end(Buffer.from(payload));
        await peer.closed;
        runsDone++;
        return peer.received().length === CHALLENGE_BYTES;
      }),
      runs(40, 20_000),
    );
    await eventually(() => server.stats.handshaking === 0, 5000, 'the handshakes to be over');
    expect({ runsDone, refusals: server.stats.refusals, active: server.active }).toEqual({ runsDone: 40, refusals: { auth: 40 }, active: 0 });
  }, 90_000);
});

describe('tcp auth: the key never shows', () => {
  it('not in stats, options, the transports (JSON or inspect), errors or log lines', async () => {
    const lines: string[] = [];
    const logger: PoolLogger = { log: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), debug: (m) => lines.push(m) };
    const p = await scope.pair(
      startPair,
      serverOf(true, 'hex8', { auth: { key: [{ id: 'a', key: KEY_A }, { id: 'b', key: Buffer.from(KEY_B) }] }, logger, logInterval: 50 }),
      clientOf(true, 'hex8', { auth: { key: KEY_A }, logger, logInterval: 50, minCap: 1, maxCap: 1 }),
    );
    await p.client.waitForActive(1, 10_000);
    const wrong = idleClient(scope, p.port, clientOf(true, 'hex8', { auth: { key: 'x'.repeat(4) + KEY_B.slice(4) }, logger }));
    const refused = (await dialOnce(wrong).then(() => new Error('dialed'), (e: unknown) => e)) as Error;
    await eventually(() => p.server.stats.refusals['auth'] === 1, 5000, 'the refusal to be counted');
    await eventually(() => lines.length > 0, 5000, 'a log line');
    const seen = [
      JSON.stringify(p.server.stats),
      JSON.stringify(p.client.stats),
      JSON.stringify(p.server.options),
      JSON.stringify(p.client.options),
      JSON.stringify(p.client.transport),
      JSON.stringify(wrong.transport),
      inspect(p.client.transport, { depth: 10 }),
      inspect(p.server, { depth: 6 }),
      String(refused.message),
      inspect(refused, { depth: 6 }),
      ...lines,
    ].join('\n');
    for (const secret of [KEY_A, KEY_B, KEY_B.slice(4), Buffer.from(KEY_A).toString('hex'), Buffer.from(KEY_A).toString('base64')]) expect(seen).not.toContain(secret);
    expect(inspect(p.client.transport, { depth: 10 })).toContain('[redacted]');
  }, 30_000);

  it('bad keys are refused at start-up naming the option, the env var or the file, never the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcp-auth-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'key');
    writeFileSync(file, 'file-secret-7\n');
    process.env['TCP_AUTH_SPEC_KEY'] = 'env-secret-42';
    scope.defer(() => {
      delete process.env['TCP_AUTH_SPEC_KEY'];
    });
    const server = (auth: unknown) => () => createServerPool({ ...serverOf(false, 'hex8'), auth } as ServerPoolConfig, 'server');
    const client = (auth: unknown) => () => createClientPool({ transport: 'tcp', address: '127.0.0.1:1', auth } as ClientPoolConfig);
    const cases: Array<[() => unknown, string, string]> = [
      [server({ key: 'short-secret' }), 'server.auth.key', 'short-secret'],
      [server({ key: 'abababababababababababababababab' }), 'server.auth.key', 'abababab'],
      [server({ key: [KEY_A, { env: 'TCP_AUTH_SPEC_KEY' }] }), 'server.auth.key[1].env', 'env-secret-42'],
      [server({ key: { file } }), 'server.auth.key.file', 'file-secret-7'],
      [server({ key: [KEY_A, KEY_A] }), 'server.auth.key[1]', KEY_A],
      [client({ key: 'short-secret' }), 'auth.key', 'short-secret'],
      [client({ key: [KEY_A, KEY_B] }), 'auth.key', KEY_A],
      [client({ key: KEY_A, channelBinding: 'yes' }), 'auth.channelBinding', KEY_A],
      [client({ key: KEY_A, keys: KEY_B }), 'auth.keys', KEY_B],
    ];
    for (const [make, option, secret] of cases) {
      const error = thrown(make) as InvalidOptionsError;
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect({ option: error.option, leaks: error.message.includes(secret) || inspect(error).includes(secret) }).toEqual({ option, leaks: false });
    }
  });
});

describe('tcp auth: a client pool whose key the server refuses', () => {
  it('counts POOL_ERR_AUTH_REFUSED and backs off as after any refusal', async () => {
    const p = await scope.pair(
      startPair,
      serverOf(false, 'hex8', { auth: { key: KEY_A } }),
      clientOf(false, 'hex8', { auth: { key: KEY_B }, minCap: 2, maxCap: 4, minIvl: 50, maxIvl: 50, maxBackoff: 10_000 }),
    );
    await eventually(() => p.client.stats.failedRounds >= 2, 20_000, 'two failed rounds');
    const stats = p.client.stats;
    expect({ failures: Object.keys(stats.failures), backedOff: stats.nextRoundInMs >= 2 * stats.interval, active: p.client.active }).toEqual({
      failures: ['POOL_ERR_AUTH_REFUSED'],
      backedOff: true,
      active: 0,
    });
    expect(p.server.stats.refusals['auth']).toBeGreaterThanOrEqual(2);
  }, 30_000);
});

describe('tcp auth: the server reads no more than a proof', () => {
  it('closes a stranger at its first byte that cannot start a PROOF, without waiting for the rest (handshakeTimeout 60 s)', async () => {
    const server = await startServer(scope, serverOf(false, 'hex8', { auth: { key: KEY_A }, handshakeTimeout: 60_000 }));
    const peer = await stranger(scope, server.address()!.port, false);
    await peer.bytes(CHALLENGE_BYTES);
    peer.socket.write('N'); // a possible first byte: the server waits for more
    peer.socket.write('X'); // no PROOF goes on like this
    await peer.closed;
    expect({ heard: peer.received().length, refusals: server.stats.refusals }).toEqual({ heard: CHALLENGE_BYTES, refusals: { auth: 1 } });
  }, 30_000);

  it('a wrong-key PROOF followed by 1 MiB in the same write is refused at the PROOF; the stranger hears only the challenge', async () => {
    const server = await startServer(scope, serverOf(false, 'hex8', { auth: { key: KEY_A }, handshakeTimeout: 60_000 }));
    const peer = await stranger(scope, server.address()!.port, false);
    const { proof } = proofFor(KEY_B, 'hex8', peer.socket, await peer.bytes(CHALLENGE_BYTES));
    peer.socket.write(Buffer.concat([proof, Buffer.alloc(1 << 20, 0x5a)]));
    await peer.closed;
    expect({ heard: peer.received().length, refusals: server.stats.refusals, proofBytes: proof.length }).toEqual({ heard: CHALLENGE_BYTES, refusals: { auth: 1 }, proofBytes: PROOF_BYTES });
  }, 30_000);
});
