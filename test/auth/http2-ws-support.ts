/** What the http2 and ws auth specs share: a log that records every line, the key check, and the flood. */
import { expect } from '@jest/globals';
import type { Duplex } from 'node:stream';
import type { PoolLogger } from '../../lib/core/logger.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import { readBytes } from '../support/net.js';

/** A pool logger that keeps every line, at every level. */
export function recordingLogger(): { logger: PoolLogger; lines: string[] } {
  const lines: string[] = [];
  const keep = (line: string): void => void lines.push(line);
  return { logger: { log: keep, warn: keep, error: keep, debug: keep }, lines };
}

/** None of `keys`, as text, base64 or hex, appears anywhere in `texts`. */
export function expectNoKey(texts: readonly string[], keys: readonly string[]): void {
  const everything = texts.join('\n');
  for (const key of keys) {
    for (const form of [key, Buffer.from(key).toString('base64'), Buffer.from(key).toString('hex')]) expect(everything).not.toContain(form);
  }
}

/**
 * Six attackers, each making at most 40 wrong-key attempts (`attempt`),
 * while the honest side takes 10 streams one after the other and carries a
 * byte on each; the attackers stop when the honest side is done. Resolves
 * with the number of attempts made.
 */
export async function honestDuringFlood(
  attempt: () => Promise<void>,
  handOff: () => Promise<{ server: Duplex; client: Duplex }>,
  keyId: string,
): Promise<number> {
  let stop = false;
  let attempts = 0;
  const attacker = async (): Promise<void> => {
    for (let i = 0; i < 40 && !stop; i++) {
      await attempt();
      attempts++;
    }
  };
  const flood = Promise.all(Array.from({ length: 6 }, attacker));
  try {
    for (let i = 0; i < 10; i++) {
      const { server, client } = await handOff();
      expect(streamIdentity(server)).toEqual({ kind: 'key', id: keyId });
      client.write('x');
      expect((await readBytes(server, 1)).toString()).toBe('x');
      server.destroy();
      client.destroy();
    }
  } finally {
    stop = true;
    await flood;
  }
  expect(attempts).toBeGreaterThan(0);
  return attempts;
}

/** A pair of pooled streams carries bytes both ways, and the server's names the key `keyId`. */
export async function expectKeyedEcho({ server, client }: { server: Duplex; client: Duplex }, keyId: string): Promise<void> {
  expect(streamIdentity(server)).toEqual({ kind: 'key', id: keyId });
  client.write('ping');
  expect((await readBytes(server, 4)).toString()).toBe('ping');
  server.write('pong');
  expect((await readBytes(client, 4)).toString()).toBe('pong');
}
