import type { Duplex } from 'node:stream';
import type { Pools, RawLink } from '../adapters.js';
import { type Control, finish, now, quiet } from '../util.js';

/** The 64 bytes of the round trip that completes a hand-off. */
const PAYLOAD = Buffer.alloc(64, 0x5a);
const GET_TIMEOUT = 10_000;

interface Pending {
  resolve(stream: Duplex): void;
  reject(error: unknown): void;
}

/**
 * One hand-off as a tunnel does it: one side produces a stream and names
 * it on the control connection, the other side gets that stream, and one
 * 64-byte round trip crosses it. `once()` returns the milliseconds from
 * the start (before the take) to the echo's arrival.
 */
export interface HandOffEngine {
  once(): Promise<number>;
}

/** Completes the client side: writes the payload, resolves once the echo is back. */
function roundTrip(stream: Duplex, pending: Pending): void {
  quiet(stream);
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received < PAYLOAD.length) return;
    stream.off('data', onData);
    pending.resolve(stream);
  };
  stream.on('data', onData);
  stream.write(PAYLOAD);
}

function echo(stream: Duplex): void {
  quiet(stream);
  stream.on('data', (chunk: Buffer) => {
    if (!stream.writableEnded) stream.write(chunk);
  });
  stream.once('end', () => finish(stream));
}

/**
 * The pool: the server side takes `[id, stream]` (`incomingGet`), sends
 * the ID as a line on the control connection; the client side reads the
 * line and calls `outgoingGet(id)`.
 */
export class PooledHandOff implements HandOffEngine {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly pools: Pools, private readonly control: Control) {
    control.onLine((id) => {
      const waiter = this.pending.get(id);
      if (!waiter) return;
      this.pools.client.outgoingGet(id, GET_TIMEOUT).then(
        (stream) => roundTrip(stream, waiter),
        (error: unknown) => waiter.reject(error),
      );
    });
  }

  async once(): Promise<number> {
    const start = now();
    const [id, server] = await this.pools.server.incomingGet(GET_TIMEOUT);
    echo(server);
    const done = new Promise<Duplex>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.control.send(id);
    try {
      const client = await done;
      const elapsed = now() - start;
      finish(client);
      finish(server);
      return elapsed;
    } finally {
      this.pending.delete(id);
    }
  }
}

/**
 * What a tunnel without a pool does: the server side names a token on the
 * control connection, the client side dials a fresh raw connection (or, for
 * http2, a fresh stream on its session) and the round trip crosses it.
 */
export class RawDialHandOff implements HandOffEngine {
  private readonly pending = new Map<string, Pending>();
  private sequence = 0;

  constructor(private readonly link: RawLink, private readonly control: Control) {
    link.onServer = echo;
    control.onLine((token) => {
      const waiter = this.pending.get(token);
      if (!waiter) return;
      this.link.dial().then(
        (stream) => roundTrip(stream, waiter),
        (error: unknown) => waiter.reject(error),
      );
    });
  }

  async once(): Promise<number> {
    const start = now();
    const token = `t${this.sequence++}`;
    const done = new Promise<Duplex>((resolve, reject) => this.pending.set(token, { resolve, reject }));
    this.control.send(token);
    try {
      const client = await done;
      const elapsed = now() - start;
      finish(client);
      return elapsed;
    } finally {
      this.pending.delete(token);
    }
  }
}
