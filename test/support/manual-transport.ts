import { PassThrough, type Duplex } from 'node:stream';
import type { Admission, ClientTransport, DialContext, DialResult, Refusal, ServerAcceptor, ServerTransport } from '../../lib/core/transport.js';
import { poolClosed, whenClosed } from '../../lib/transports/common/pool-signal.js';

/**
 * A client transport for core unit specs: every dial waits until the test
 * settles it, so the order of events is the test's to choose. End-to-end
 * specs use the real transports instead.
 */
export class ManualTransport implements ClientTransport {
  readonly kind = 'manual';
  readonly pending: Array<{ resolve: (result: DialResult) => void; reject: (error: unknown) => void; context: DialContext }> = [];
  dials = 0;
  closed = false;

  dial(context: DialContext): Promise<DialResult> {
    this.dials++;
    return new Promise((resolve, reject) => {
      // As a real transport does: the pool's signal is shared by every dial, so a dial registers
      // in its one shared listener and forgets it when settled (an 'abort' listener per dial, never
      // removed, was the suite's "49 abort listeners added to [AbortSignal]" warning).
      const forget = whenClosed(context.signal, () => reject(poolClosed()));
      const settle = <T>(fn: (value: T) => void) => (value: T): void => {
        forget();
        fn(value);
      };
      this.pending.push({ resolve: settle(resolve), reject: settle(reject), context });
    });
  }

  /** Completes the oldest pending dial with a fresh stream under `id`. */
  complete(id: string | null, stream: Duplex = new PassThrough()): Duplex {
    const entry = this.pending.shift();
    if (!entry) throw new Error('no dial is pending');
    entry.resolve({ id, stream });
    return stream;
  }

  fail(error: unknown): void {
    const entry = this.pending.shift();
    if (!entry) throw new Error('no dial is pending');
    entry.reject(error);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface ManualServerOptions {
  /** Issue 00000000 first, as http2, ws and tcp raw4 do. */
  firstIdZero?: boolean;
  /** Peers send nothing on an idle stream (as tcp). */
  quietIdle?: boolean;
  /** Recognise bytes starting with 0x16 as 'tls-on-plain' (and record every refused batch). */
  recognise?: boolean;
}

/**
 * A server transport for core unit specs: the test plays the network. A
 * peer "connects" by asking the pool's acceptor for an admission and
 * completing it with a PassThrough (or the stream the test gives).
 * `holdListen()` makes the next listen() wait until the test releases it.
 */
export class ManualServer implements ServerTransport {
  readonly kind = 'manual';
  readonly firstIdZero: boolean;
  readonly quietIdle: boolean;
  acceptor?: ServerAcceptor;
  closed = false;
  /** Bytes handed to refuseIdleData, with `recognise`. */
  readonly recognised: Buffer[] = [];
  refuseIdleData?: (stream: Duplex, bytes: Buffer) => 'tls-on-plain' | undefined;
  private held?: Promise<void>;

  constructor(options: ManualServerOptions = {}) {
    this.firstIdZero = options.firstIdZero ?? false;
    this.quietIdle = options.quietIdle ?? false;
    if (options.recognise) {
      this.refuseIdleData = (stream, bytes) => {
        this.recognised.push(bytes);
        stream.destroy();
        return bytes[0] === 0x16 ? 'tls-on-plain' : undefined;
      };
    }
  }

  /** The next listen() resolves (or rejects) only when the returned functions say so. */
  holdListen(): { bound(): void; failed(error: Error): void } {
    let bound!: () => void;
    let failed!: (error: Error) => void;
    this.held = new Promise<void>((resolve, reject) => {
      bound = resolve;
      failed = reject;
    });
    return { bound, failed };
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    this.acceptor = acceptor;
    await this.held;
  }

  address() {
    return { address: '127.0.0.1', port: 1, family: 'IPv4' };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** A peer connects and completes its handshake; a string is the pool's refusal. */
  connect(address = '127.0.0.1', stream: Duplex = new PassThrough()): { id: string; stream: Duplex } | Refusal {
    const admission = this.begin(address);
    if (typeof admission === 'string') return admission;
    admission.accept(stream);
    return { id: admission.id, stream };
  }

  /** As connect(), throwing on a refusal. */
  arrive(stream: Duplex = new PassThrough()): { id: string; stream: Duplex } {
    const result = this.connect('127.0.0.1', stream);
    if (typeof result === 'string') throw new Error(`refused: ${result}`);
    return result;
  }

  /** A peer is admitted and is still in its handshake. */
  begin(address = '127.0.0.1'): Admission | Refusal {
    if (!this.acceptor) throw new Error('the pool has not called listen()');
    return this.acceptor.admit(address);
  }
}
