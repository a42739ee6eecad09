import { randomFillSync } from 'node:crypto';
import { InvalidIdError } from './errors.js';

/** The ID every HTTP/2 and WebSocket server pool (and a `raw4` tcp server) issues first. */
export const FIRST_ID = '00000000';

/** How an ID crosses the wire: 8 ASCII hex bytes (Go `pool` 1.0.x) or 4 raw bytes. */
export type IdWireForm = 'hex8' | 'raw4';

const ID_PATTERN = /^[0-9a-f]{8}$/;

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

export function assertValidId(id: unknown): asserts id is string {
  if (!isValidId(id)) {
    throw new InvalidIdError(`expected an ID of 8 lowercase hex characters, got ${JSON.stringify(id)}`);
  }
}

/**
 * IDs are cut from one block of CSPRNG output, refilled when used up: one
 * call into OpenSSL per 1024 IDs instead of one per ID (each call costs a
 * buffer, a lock round and a getpid(2) for OpenSSL's fork check). Every
 * byte is used once, so the IDs are exactly as random as before.
 */
const ID_BYTES = 4;
const RANDOM_BLOCK = Buffer.allocUnsafeSlow(4096);
let randomOffset = RANDOM_BLOCK.length;

/** 4 bytes from the CSPRNG as 8 lowercase hex characters. */
export function randomId(): string {
  if (randomOffset + ID_BYTES > RANDOM_BLOCK.length) {
    randomFillSync(RANDOM_BLOCK);
    randomOffset = 0;
  }
  const id = RANDOM_BLOCK.toString('hex', randomOffset, randomOffset + ID_BYTES);
  randomOffset += ID_BYTES;
  return id;
}

/** Number of bytes an ID takes on the wire in the given form. */
export function idWireLength(form: IdWireForm): number {
  return form === 'hex8' ? 8 : 4;
}

export function encodeId(id: string, form: IdWireForm): Buffer {
  return form === 'hex8' ? Buffer.from(id, 'latin1') : Buffer.from(id, 'hex');
}

/**
 * Decodes the ID bytes a server sent. `raw4` accepts any 4 bytes; `hex8`
 * accepts only 8 lowercase hex characters, as the Go pools write them.
 */
export function decodeId(bytes: Buffer, form: IdWireForm): string {
  const expected = idWireLength(form);
  if (bytes.length !== expected) {
    throw new InvalidIdError(`expected a ${expected}-byte ${form} ID, got ${bytes.length} bytes`);
  }
  if (form === 'raw4') return bytes.toString('hex');
  const id = bytes.toString('latin1');
  if (!ID_PATTERN.test(id)) {
    throw new InvalidIdError(`expected 8 lowercase hex characters as ID, got bytes ${bytes.toString('hex')}`);
  }
  return id;
}

/**
 * Draws IDs that are unique among those `inUse` reports. The first draw may
 * be pinned to `FIRST_ID` (HTTP/2, WebSocket and `raw4` tcp servers do that).
 */
export class IdAllocator {
  private firstPending: boolean;

  constructor(
    private readonly inUse: (id: string) => boolean,
    firstIsZero: boolean,
    private readonly draw: () => string = randomId,
  ) {
    this.firstPending = firstIsZero;
  }

  next(): string {
    if (this.firstPending) {
      this.firstPending = false;
      if (!this.inUse(FIRST_ID)) return FIRST_ID;
    }
    // 2^32 IDs against at most a few thousand held: a handful of draws at worst.
    for (let attempt = 0; attempt < 64; attempt++) {
      const id = this.draw();
      if (id !== FIRST_ID && !this.inUse(id)) return id;
    }
    throw new InvalidIdError('could not draw a free ID in 64 attempts (is the random source broken?)');
  }
}
