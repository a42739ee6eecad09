import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import {
  ControlProtocolError,
  ControlRefusedError,
  ControlTimeoutError,
  ControlVersionError,
  PoolClosedError,
  PoolError,
  StreamCutError,
  type ControlVersionRange,
} from '../../core/errors.js';
import { Disposers, listen } from '../../core/listeners.js';
import { OptionReader, orderedPair } from '../../core/validate.js';
import { ControlDecoder, type Decoded } from './decoder.js';
import {
  encodeMessage,
  type AnnouncedRoute,
  type ControlMessage,
  type DrainMessage,
  type EndMessage,
  type ShutMessage,
  type ErrorMessage,
  type FailMessage,
  type HelloAckMessage,
  type HelloMessage,
  type OpenMessage,
  type RouteAnswer,
  type ServerLimits,
} from './messages.js';
import { CONTROL_PREAMBLE, CONTROL_VERSION, type ControlErrorCode } from './wire.js';

export interface ControlChannelOptions {
  /** 'client' dials and says hello; 'server' answers it. */
  role: 'client' | 'server';
  /** The protocol versions this end speaks (default: this build's, 1..1). Narrow it only to test or to pin. */
  versions?: ControlVersionRange;
  /** The hello exchange must finish within this (ms, default 10000). */
  helloTimeout?: number;
  /** This end pings every so often once the hello is done (ms, default 15000; 0: never). */
  pingInterval?: number;
  /** Nothing at all from the peer for this long, not even a pong, and the channel is dead (ms, default 45000; 0: never). */
  livenessTimeout?: number;
  /** How long `close()` waits for the peer to end its side before cutting the stream (ms, default 5000). */
  closeTimeout?: number;
}

interface ResolvedOptions {
  role: 'client' | 'server';
  versions: ControlVersionRange;
  helloTimeout: number;
  pingInterval: number;
  livenessTimeout: number;
  closeTimeout: number;
}

const OPTION_KEYS = ['role', 'versions', 'helloTimeout', 'pingInterval', 'livenessTimeout', 'closeTimeout'] as const;

function resolveOptions(options: ControlChannelOptions): ResolvedOptions {
  const read = new OptionReader(options as unknown as Record<string, unknown>, 'control');
  const role = read.oneOf('role', ['client', 'server'] as const, 'client');
  if (options.role === undefined) read.fail('role', '"client" or "server"');
  let versions: ControlVersionRange = CONTROL_VERSION;
  if (read.raw('versions') !== undefined) {
    const range = new OptionReader(options.versions as unknown as Record<string, unknown>, 'control.versions');
    const min = range.int('min', CONTROL_VERSION.min, 1, 255);
    const max = range.int('max', CONTROL_VERSION.max, 1, 255);
    range.rejectUnknown();
    orderedPair(range, 'min', 'max', min, max);
    versions = { min, max };
  }
  const resolved: ResolvedOptions = {
    role,
    versions,
    helloTimeout: read.ms('helloTimeout', 10_000),
    pingInterval: read.int('pingInterval', 15_000, 0, 2_147_483_647),
    livenessTimeout: read.int('livenessTimeout', 45_000, 0, 2_147_483_647),
    closeTimeout: read.ms('closeTimeout', 5_000),
  };
  read.accept(...OPTION_KEYS);
  read.rejectUnknown();
  return resolved;
}

/** The client's side of the hello. */
export interface ClientHello {
  /** A label for the server's logs (default empty); the client's identity comes from the pooled stream's authentication. */
  name?: string;
  routes: readonly AnnouncedRoute[];
}

/** The server's answer to a hello, from its `decide` callback. */
export interface ServerAnswer {
  routes: RouteAnswer[];
  limits: ServerLimits;
}

/** How the hello ended on this end. */
export interface HelloResult {
  version: number;
  hello: HelloMessage;
  ack: HelloAckMessage;
}

/** What a control channel tells its owner. No 'error' event: a failure closes the channel, and 'close' carries it. */
export interface ControlChannelEvents {
  /** The peer opened a tunnelled connection on one of its streams. */
  open: [message: OpenMessage];
  /** The peer could not open (or take) a connection. */
  fail: [message: FailMessage];
  /** The peer's accounting for a tunnelled connection that ended. */
  accounting: [message: EndMessage];
  /** The peer ended its writing side of a tunnelled connection's stream after `sent` bytes. */
  shut: [message: ShutMessage];
  /** The peer asks this end to drop its idle pooled streams and build fresh ones. */
  flush: [];
  /** The server's hint: `count` more pooled streams would be taken now. */
  want: [count: number];
  /** The peer is going away: it opens no more, and accepts no more opens. */
  drain: [message: DrainMessage];
  /** A ping of this end was answered: the round trip in ms. */
  rtt: [ms: number];
  /** A frame of a skippable type this end does not know was read past. */
  skipped: [type: number];
  /** The channel is closed: `error` says why, undefined for a clean close by either end. Emitted once. */
  close: [error: Error | undefined];
}

type State = 'hello' | 'open' | 'closing' | 'closed';

interface PendingPing {
  readonly sentAt: number;
  resolve(ms: number): void;
  reject(error: Error): void;
}

/**
 * One tunnel control channel over any Duplex (in a tunnel, a pooled
 * stream): preamble, hello with version negotiation under a deadline, then
 * framed messages both ways, pings with RTT and a liveness timeout, drain,
 * and a close that releases every timer and listener.
 *
 *     const channel = new ControlChannel(stream, { role: 'client' });
 *     channel.on('open', (open) => ...).on('close', (error) => ...);
 *     const { ack } = await channel.hello({ routes });
 *
 * The channel owns the stream from its construction: it reads it, writes
 * it, and destroys it when the channel ends.
 */
export class ControlChannel extends EventEmitter<ControlChannelEvents> {
  private readonly options: ResolvedOptions;
  private readonly decoder = new ControlDecoder();
  private readonly disposers = new Disposers();
  private state: State = 'hello';
  private preambleSent = false;
  /** While the stream is full: the one wait for its drain that every message written meanwhile shares. */
  private drained?: Promise<void>;
  private helloStarted = false;
  private helloWaiter: { resolve(message: ControlMessage): void; reject(error: Error): void } | undefined;
  private readonly pings = new Map<number, PendingPing>();
  private nextNonce = 1;
  private liveness: NodeJS.Timeout | undefined;
  private closeError: Error | undefined;
  private localDrain = false;
  private peerDrain = false;
  private lastRtt: number | undefined;
  private negotiated: number | undefined;

  constructor(
    private readonly stream: Duplex,
    options: ControlChannelOptions,
  ) {
    super();
    this.options = resolveOptions(options);
    // Whatever happens after the channel lets go of the stream, its errors must not crash the process.
    stream.on('error', () => undefined);
    this.disposers.add(
      listen(stream, {
        data: (chunk: Buffer) => this.received(this.decoder.push(chunk)),
        end: () => this.peerEnded(),
        close: () => this.finish(this.closeError ?? (this.state === 'closing' ? undefined : this.lostError())),
        error: (error: Error) => this.finish(cut(error)),
      }),
    );
  }

  /** The negotiated version, once the hello is done. */
  get version(): number | undefined {
    return this.negotiated;
  }

  /** The last round trip measured by a ping, in ms. */
  get rtt(): number | undefined {
    return this.lastRtt;
  }

  /** Whether this end or the peer announced a drain: no new opens either way. */
  get draining(): boolean {
    return this.localDrain || this.peerDrain;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /**
   * Client: sends the hello and waits for the server's answer. Resolves
   * with the negotiated version and the per-route answers; rejects (and
   * closes the channel) with `ControlVersionError`, `ControlRefusedError`,
   * `ControlTimeoutError` ('hello') or `ControlProtocolError`.
   */
  async hello(hello: ClientHello): Promise<HelloResult> {
    this.startHello('client');
    const message: HelloMessage = { type: 'hello', minVersion: this.options.versions.min, maxVersion: this.options.versions.max, name: hello.name ?? '', routes: [...hello.routes] };
    const frame = encodeMessage(message); // invalid fields throw here, before anything is sent
    const answer = this.waitHello();
    void this.send(frame).catch(() => undefined); // a failed write closes the channel, which rejects the answer
    const reply = await answer;
    if (reply.type !== 'hello-ack') throw this.unexpected(reply);
    const { min, max } = this.options.versions;
    if (reply.version < min || reply.version > max) {
      throw this.abort(new ControlProtocolError('malformed', `the server chose control protocol version ${reply.version}, outside the ${min}..${max} this client offered`), 'protocol');
    }
    this.established(reply.version);
    return { version: reply.version, hello: message, ack: reply };
  }

  /**
   * Server: waits for the client's hello, negotiates the version, asks
   * `decide` for the answer to each route, and sends it. A client with no
   * version in common gets an ERROR ('version') and this rejects with
   * `ControlVersionError`; so does a `decide` that throws (ERROR 'other').
   */
  async accept(decide: (hello: HelloMessage, version: number) => ServerAnswer | Promise<ServerAnswer>): Promise<HelloResult> {
    this.startHello('server');
    const hello = await this.waitHello();
    if (hello.type !== 'hello') throw this.unexpected(hello);
    const local = this.options.versions;
    const version = Math.min(local.max, hello.maxVersion);
    if (version < Math.max(local.min, hello.minVersion)) {
      const error = new ControlVersionError(local, { min: hello.minVersion, max: hello.maxVersion });
      throw this.abort(error, 'version', `this server speaks control protocol versions ${local.min}..${local.max}; the client offered ${hello.minVersion}..${hello.maxVersion}`);
    }
    let answer: ServerAnswer;
    try {
      answer = await decide(hello, version);
    } catch (error) {
      throw this.abort(error instanceof Error ? error : new Error(String(error)), 'other', 'the server could not answer the hello');
    }
    if (this.state !== 'hello') throw this.closeError ?? new PoolClosedError('the control channel closed during the hello');
    const ack: HelloAckMessage = { type: 'hello-ack', version, limits: answer.limits, routes: answer.routes };
    await this.send(encodeMessage(ack));
    this.established(version);
    return { version, hello, ack };
  }

  /** Tells the peer to open a tunnelled connection on stream `id` (reverse: a server stream; forward: a client stream). */
  open(message: Omit<OpenMessage, 'type'>): Promise<void> {
    if (this.draining) {
      return Promise.reject(new PoolClosedError(`the control channel is draining (${this.localDrain ? 'this end' : 'the peer'} announced it): no new tunnelled connections`));
    }
    return this.message({ type: 'open', ...message });
  }

  /** Tells the peer a connection it opened (or that this end tried to open) failed. */
  fail(message: Omit<FailMessage, 'type'>): Promise<void> {
    return this.message({ type: 'fail', ...message });
  }

  /** Sends this end's accounting for a tunnelled connection that ended. */
  accounting(message: Omit<EndMessage, 'type'>): Promise<void> {
    return this.message({ type: 'end', ...message });
  }

  /** Tells the peer this end ended its writing side of a tunnelled connection's stream after `sent` bytes. */
  shut(message: Omit<ShutMessage, 'type'>): Promise<void> {
    return this.message({ type: 'shut', ...message });
  }

  /** Server: hints the client that `count` more streams would be taken now (1..65535; a peer that does not know WANT skips it). */
  want(count: number): Promise<void> {
    return this.message({ type: 'want', count: Math.max(1, Math.min(65_535, Math.floor(count))) });
  }

  /** Asks the peer to drop its idle pooled streams and build fresh ones. */
  flush(): Promise<void> {
    return this.message({ type: 'flush' });
  }

  /** Announces that this end is going away: it opens no more and accepts no more opens; open ones get `timeout` ms. */
  drain(timeout: number, text = ''): Promise<void> {
    this.localDrain = true;
    return this.message({ type: 'drain', timeout, text });
  }

  /** Measures one round trip. Rejects if the channel closes first. */
  ping(): Promise<number> {
    if (this.state !== 'open') return Promise.reject(this.notOpen());
    const nonce = this.nextNonce;
    this.nextNonce = this.nextNonce >= 0xffff_ffff ? 1 : this.nextNonce + 1;
    const sentAt = performance.now();
    return new Promise<number>((resolve, reject) => {
      this.pings.set(nonce, { sentAt, resolve, reject });
      this.send(encodeMessage({ type: 'ping', nonce, time: Math.round(sentAt * 1000) })).catch((error: Error) => {
        this.pings.delete(nonce);
        reject(error);
      });
    });
  }

  /**
   * Closes cleanly: ends this side (after what is queued), waits up to
   * `closeTimeout` for the peer to end its own, then cuts the stream. With
   * `error`, first tells the peer why (an ERROR message). Idempotent.
   */
  close(error?: { code: ControlErrorCode; text: string }): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (this.state !== 'closing') {
      this.state = 'closing';
      this.stopTimers();
      const tail = error ? this.frameWithPreamble(this.errorMessage(error.code, error.text)) : undefined;
      if (tail) this.stream.end(tail);
      else this.stream.end();
      const timer = setTimeout(() => this.stream.destroy(), this.options.closeTimeout);
      this.disposers.add(() => clearTimeout(timer));
    }
    return closed;
  }

  /** Cuts the channel now; `error` is what 'close' reports. Idempotent. */
  destroy(error?: Error): void {
    if (this.state === 'closed') return;
    this.closeError ??= error;
    this.state = 'closing';
    this.stream.destroy();
    // A stream already destroyed emits no second 'close': finish here too (finish is idempotent).
    this.finish(this.closeError);
  }

  // ---- internals ----

  private startHello(role: 'client' | 'server'): void {
    if (this.options.role !== role) throw new PoolClosedError(`hello() is the client's and accept() the server's: this channel has role "${this.options.role}"`);
    if (this.helloStarted) throw new ControlProtocolError('unexpected', 'the hello of this control channel was already started');
    if (this.state !== 'hello') throw this.notOpen();
    this.helloStarted = true;
  }

  private waitHello(): Promise<ControlMessage> {
    return new Promise<ControlMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        const side = this.options.role === 'client' ? 'the server did not answer the control hello' : 'the client sent no control hello';
        this.abort(
          new ControlTimeoutError(
            'hello',
            `${side} within ${this.options.helloTimeout} ms (helloTimeout): ${this.options.role === 'client' ? 'is a tunnel server, of a compatible version, at the other end of the pool?' : 'is a tunnel client at the other end?'}`,
          ),
          'timeout',
        );
      }, this.options.helloTimeout);
      this.helloWaiter = {
        resolve: (message) => {
          clearTimeout(timer);
          this.helloWaiter = undefined;
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
          this.helloWaiter = undefined;
          reject(error);
        },
      };
    });
  }

  private established(version: number): void {
    this.negotiated = version;
    this.state = 'open';
    const { pingInterval, livenessTimeout } = this.options;
    if (livenessTimeout > 0) {
      this.liveness = setTimeout(() => {
        this.abort(
          new ControlTimeoutError('liveness', `nothing from the peer of the control channel for ${livenessTimeout} ms (livenessTimeout), not even a pong: it or the path to it is gone`),
          'timeout',
        );
      }, livenessTimeout);
    }
    if (pingInterval > 0) {
      const pinger = setInterval(() => this.ping().catch(() => undefined), pingInterval);
      this.disposers.add(() => clearInterval(pinger));
    }
  }

  private received(entries: Decoded[]): void {
    for (const entry of entries) {
      if (this.state === 'closed') return;
      if (entry.kind === 'error') {
        this.abort(entry.error, 'protocol');
        return;
      }
      this.liveness?.refresh();
      if (entry.kind === 'skipped') {
        this.emit('skipped', entry.type);
        continue;
      }
      this.dispatch(entry.message);
    }
  }

  private dispatch(message: ControlMessage): void {
    if (message.type === 'error') {
      this.finish(this.peerError(message));
      this.stream.destroy();
      return;
    }
    if (this.state === 'hello') {
      const expected = this.options.role === 'client' ? 'hello-ack' : 'hello';
      if (message.type === expected && this.helloWaiter) this.helloWaiter.resolve(message);
      else this.abort(this.unexpected(message), 'protocol');
      return;
    }
    if (this.state !== 'open') return; // closing: what is still in flight is dropped
    switch (message.type) {
      case 'hello':
      case 'hello-ack':
        this.abort(this.unexpected(message), 'protocol');
        return;
      case 'ping':
        void this.send(encodeMessage({ type: 'pong', nonce: message.nonce, time: message.time })).catch(() => undefined);
        return;
      case 'pong': {
        const pending = this.pings.get(message.nonce);
        if (!pending) return; // a pong for a ping already given up on
        this.pings.delete(message.nonce);
        const ms = performance.now() - pending.sentAt;
        this.lastRtt = ms;
        pending.resolve(ms);
        this.emit('rtt', ms);
        return;
      }
      case 'open':
        this.emit('open', message);
        return;
      case 'fail':
        this.emit('fail', message);
        return;
      case 'end':
        this.emit('accounting', message);
        return;
      case 'shut':
        this.emit('shut', message);
        return;
      case 'flush':
        this.emit('flush');
        return;
      case 'want':
        this.emit('want', message.count);
        return;
      case 'drain':
        this.peerDrain = true;
        this.emit('drain', message);
        return;
    }
  }

  private peerEnded(): void {
    const truncated = this.decoder.end().find((entry) => entry.kind === 'error');
    if (truncated?.kind === 'error') return void this.abort(truncated.error, 'protocol');
    if (this.state === 'hello') {
      return void this.abort(new ControlProtocolError('truncated', 'the peer ended the control stream before the hello was done'), 'protocol');
    }
    // A clean end from the peer: end this side too; 'close' follows.
    if (this.state === 'open') this.close().catch(() => undefined);
  }

  /** Sends a message while the channel is open. */
  private message(message: ControlMessage): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.notOpen());
    let frame: Buffer;
    try {
      frame = encodeMessage(message);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.send(frame);
  }

  /** Writes a frame (the preamble before the first); resolves once the stream takes more (back-pressure). */
  private send(frame: Buffer): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed' || this.stream.writableEnded || this.stream.destroyed) return Promise.reject(this.notOpen());
    const ok = this.stream.write(this.frameWithPreamble(frame));
    if (ok) return Promise.resolve();
    // Every message written while the stream is full waits for the same 'drain' (one pair of listeners, however many).
    this.drained ??= new Promise<void>((resolve, reject) => {
      const stop = listen(this.stream, {
        drain: () => {
          stop();
          this.drained = undefined;
          resolve();
        },
        close: () => {
          stop();
          this.drained = undefined;
          reject(this.closeError ?? this.notOpen());
        },
      });
    });
    return this.drained;
  }

  private frameWithPreamble(frame: Buffer): Buffer {
    if (this.preambleSent) return frame;
    this.preambleSent = true;
    return Buffer.concat([CONTROL_PREAMBLE, frame]);
  }

  private errorMessage(code: ControlErrorCode, text: string): Buffer {
    const message: ErrorMessage = { type: 'error', code, minVersion: this.options.versions.min, maxVersion: this.options.versions.max, text };
    return encodeMessage(message);
  }

  /**
   * Fails the channel: tells the peer why with an ERROR (best effort: the
   * stream is ended with it, and cut after `closeTimeout` at the latest; at
   * once after a timeout, the peer being presumed gone), and closes with
   * `error` at once. Returns `error` for `throw`.
   */
  private abort<E extends Error>(error: E, code: ControlErrorCode, text = error.message): E {
    if (this.state === 'closed' || this.state === 'closing') return error;
    this.closeError = error;
    this.state = 'closing';
    const stream = this.stream;
    if (error instanceof ControlTimeoutError) {
      // The peer is presumed gone: the ERROR goes out if the socket takes it at once, and the stream is cut now.
      if (!stream.destroyed && !stream.writableEnded) stream.end(this.frameWithPreamble(this.errorMessage(code, text)));
      stream.destroy();
    } else if (!stream.destroyed && !stream.writableEnded) {
      stream.end(this.frameWithPreamble(this.errorMessage(code, text)));
      const timer = setTimeout(() => stream.destroy(), this.options.closeTimeout);
      // The timer outlives the channel's own bookkeeping; the stream's close clears it.
      stream.once('close', () => clearTimeout(timer));
    } else {
      stream.destroy();
    }
    this.finish(error);
    return error;
  }

  /** Releases everything once and emits 'close'. */
  private finish(error: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeError ??= error;
    const reason = this.closeError;
    this.stopTimers();
    this.disposers.dispose();
    const failure = reason ?? this.notOpen();
    this.helloWaiter?.reject(failure);
    for (const ping of this.pings.values()) ping.reject(failure);
    this.pings.clear();
    this.emit('close', reason);
  }

  private stopTimers(): void {
    if (this.liveness) clearTimeout(this.liveness);
    this.liveness = undefined;
  }

  private peerError(message: ErrorMessage): Error {
    if (message.code === 'version') return new ControlVersionError(this.options.versions, { min: message.minVersion, max: message.maxVersion });
    return new ControlRefusedError(message.code, message.text);
  }

  private unexpected(message: ControlMessage): ControlProtocolError {
    const when = this.state === 'hello' ? 'during the hello' : 'after the hello';
    return new ControlProtocolError('unexpected', `a ${message.type.toUpperCase()} message ${when} is not allowed on the ${this.options.role === 'client' ? 'client' : 'server'} end of a control channel`);
  }

  private lostError(): Error {
    return new StreamCutError('connection-lost', 'the control channel\'s stream closed without a clean end');
  }

  private notOpen(): PoolClosedError {
    return new PoolClosedError(this.state === 'hello' ? 'the control channel has not finished its hello' : 'the control channel is closed');
  }
}

/** A stream's own error as the channel reports it: a library error as is, a socket's error as the cut it is. */
function cut(error: Error): Error {
  if (error instanceof PoolError) return error;
  const reset = (error as { code?: unknown }).code === 'ECONNRESET';
  return new StreamCutError(reset ? 'reset' : 'connection-lost', `the control channel's stream ${reset ? 'was reset by the peer' : 'failed'}: ${error.message}`, { cause: error });
}
