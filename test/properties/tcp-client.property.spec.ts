import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type net from 'node:net';
import { createSelfSignedCertificate } from '../../lib/certs/index.js';
import { decodeId, type IdWireForm } from '../../lib/core/ids.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { chunk, runs } from './fc.js';
import { checkOneDial, sendScripted, settledDial, type Ending } from './peers.js';

const scope = useTestScope();

const HEX = '0123456789abcdef';
/** What a raw server sends where the ID belongs: noise, near-IDs, and real IDs followed by data. */
const idBytes = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF \r\n'), minLength: 0, maxLength: 14 }).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
  fc
    .tuple(fc.string({ unit: fc.constantFrom(...HEX), minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 8 }))
    .map(([id, rest]) => new Uint8Array(Buffer.concat([Buffer.from(id, 'latin1'), rest]))),
);

/** What a dial must end in, given what the server sent: the ID, or the set of acceptable failure codes. */
function expected(form: IdWireForm, payload: Uint8Array, ending: Ending): { id: string } | { codes: string[] } {
  const need = form === 'hex8' ? 8 : 4;
  if (payload.length >= need) {
    let id: string | undefined;
    try {
      id = decodeId(Buffer.from(payload.subarray(0, need)), form);
    } catch {
      // an invalid ID: refused below
    }
    if (id !== undefined && ending === 'hold') return { id };
    // An RST may overtake bytes already sent: the ID then never arrives whole.
    if (ending === 'reset') return { codes: id !== undefined ? ['created', 'POOL_ERR_HANDSHAKE'] : ['POOL_ERR_INVALID_ID', 'POOL_ERR_HANDSHAKE'] };
    return id !== undefined ? { codes: ['created'] } : { codes: ['POOL_ERR_INVALID_ID'] };
  }
  // Short: a close before any byte is the Go servers' bare-close refusal; anything else a failed handshake.
  if (payload.length === 0 && ending === 'end') return { codes: ['POOL_ERR_REFUSED'] };
  // An RST at once can beat the client's own 'connect': then it is a failed dial.
  if (payload.length === 0 && ending === 'reset') return { codes: ['POOL_ERR_HANDSHAKE', 'POOL_ERR_DIAL'] };
  return { codes: ['POOL_ERR_HANDSHAKE'] };
}

describe('tcp client ID read (property): a raw server sends arbitrary bytes, in arbitrary chunks', () => {
  it('the dial pools a stream under the ID the bytes spell, or fails typed, closes the socket and pools nothing', async () => {
    let script: (socket: net.Socket) => void = () => undefined;
    const raw = await listenRaw((socket) => script(socket));
    scope.defer(() => raw.close());
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<IdWireForm>('hex8', 'raw4'),
        idBytes,
        fc.array(fc.nat({ max: 32 }), { maxLength: 5 }),
        fc.constantFrom<Ending>('end', 'reset', 'hold'),
        async (form, payload, cuts, ending) => {
          const want = expected(form, payload, ending);
          const seen: net.Socket[] = [];
          script = (socket) => {
            seen.push(socket);
            void sendScripted(socket, chunk(payload, cuts), ending);
          };
          // Bytes after the ID are the stream's first bytes, none lost, none added.
          const rest = Buffer.from(payload.subarray(form === 'hex8' ? 8 : 4));
          await checkOneDial({ address: `127.0.0.1:${raw.port}`, idFormat: form, handshakeTimeout: 150 }, 'id' in want ? { id: want.id, rest } : want, scope.track);
          // Every connection of the run is closed on the server's side too.
          await eventually(() => seen.every((socket) => socket.destroyed), 2000, 'the raw server to see the socket closed');
        },
      ),
      runs(50, 10_000),
    );
  });

  it('in TLS mode, garbage instead of a ServerHello fails typed, and nothing is pooled', async () => {
    let script: (socket: net.Socket) => void = () => undefined;
    const raw = await listenRaw((socket) => script(socket));
    scope.defer(() => raw.close());
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.array(fc.nat({ max: 64 }), { maxLength: 4 }), fc.constantFrom<Ending>('end', 'reset', 'hold'), async (payload, cuts, ending) => {
        const seen: net.Socket[] = [];
        script = (socket) => {
          seen.push(socket);
          void sendScripted(socket, chunk(payload, cuts), ending);
        };
        const pool = createClientPool({ address: `127.0.0.1:${raw.port}`, tls: '1', minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, refill: 'rounds', handshakeTimeout: 150 });
        pool.start();
        try {
          const outcome = await settledDial(pool);
          expect('code' in outcome).toBe(true);
          const { code } = outcome as { code: string };
          // A hang-up (even after a few bytes) is read as the bare-close refusal; anything else fails the
          // handshake (or the dial, for an RST at once that beats the client's 'connect'); a first record
          // that OpenSSL rejects as not TLS is the TLS-mismatch handshake error.
          expect(['POOL_ERR_HANDSHAKE', 'POOL_ERR_TLS_MISMATCH', 'POOL_ERR_REFUSED', ...(payload.length === 0 && ending === 'reset' ? ['POOL_ERR_DIAL'] : [])]).toContain(code);
          if (payload.length === 0 && ending === 'end') expect(code).toBe('POOL_ERR_REFUSED');
          if (ending === 'hold') expect(['POOL_ERR_HANDSHAKE', 'POOL_ERR_TLS_MISMATCH']).toContain(code);
          expect(pool.active).toBe(0);
        } finally {
          await pool.close();
        }
        await eventually(() => seen.every((socket) => socket.destroyed), 2000, 'the raw server to see the socket closed');
      }),
      runs(30, 10_000),
    );
  });

  it('a real server keeps working with the same client options (sanity: the raw peer, not the client, is at fault)', async () => {
    const { key, cert } = createSelfSignedCertificate();
    const p = await scope.pair(startPair, { tls: { key, cert } }, { tls: '1', handshakeTimeout: 1000 });
    await p.client.waitForActive(1, 5000);
    const { id } = await scope.handOff(p);
    expect(id).toMatch(/^[0-9a-f]{8}$/);
  });
});
