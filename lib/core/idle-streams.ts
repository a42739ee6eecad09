import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { isDead } from './hand-off.js';

/** Why an idle pooled stream left the pool without being taken. */
export type DropReason =
  | 'error'
  | 'end'
  | 'close'
  | 'stale'
  | 'expired'
  | 'duplicate'
  | 'flush'
  | 'shutdown'
  | 'late'
  /** Bytes arrived on an idle stream of a transport whose peers send nothing before the hand-out. */
  | 'unexpected-data'
  /** Those bytes were a TLS record: a TLS client dialed a plain server. */
  | 'tls-on-plain';

/**
 * What a pool does with an idle stream on which bytes arrived although its
 * peers send nothing before the hand-out (see `IdleStreams`): closes it and
 * says why. `bytes` are what was buffered (already read out of the stream).
 */
export type UnexpectedData = (stream: Duplex, bytes: Buffer) => DropReason;

/** What a pool's early-bytes hook says about the first bytes of an idle stream (see `IdleStreams.early`). */
export type EarlyVerdict =
  /** The stream is the hook's: it leaves the idle pool, its bytes still unread. */
  | 'claim'
  /** Too few bytes to tell: asked again when more arrive. */
  | 'wait'
  /**
   * Not the hook's, but bytes its taker expects (a tunnel client's stream
   * header, written before the server takes the stream): they wait for the
   * taker, as a stream whose peer proved its identity may, never junk.
   */
  | 'keep'
  /** Not the hook's: today's behaviour (the bytes wait for the taker, or are junk). */
  | 'pass';

/**
 * Sees the first bytes of idle streams before anyone takes them. `decide`
 * gets a copy of the bytes buffered so far (they stay in the stream);
 * `claimed` gets the stream once `decide` said 'claim', already out of the
 * idle pool.
 */
export interface EarlyHook {
  decide(id: string, stream: Duplex, label: string | undefined, bytes: Buffer): EarlyVerdict;
  claimed(id: string, stream: Duplex): void;
}

interface Entry {
  readonly stream: Duplex;
  /** When it joined, on the monotonic clock (`performance.now()`): a wall-clock step never makes a stream look younger. */
  readonly since: number;
  /** Who is at the other end (the identity label), when the transport proved it. */
  readonly label?: string;
}

/**
 * Idle pooled streams by ID, in arrival order. While a stream is idle the
 * pool owns its `error`, `end` and `close` events: a stream that dies leaves
 * at once and its error never reaches the process. Bytes that arrive stay in
 * the stream's own buffer (it is never switched to flowing mode), so the
 * application reads them first when it takes the stream.
 *
 * The listeners are shared by every stream of the pool (Node calls them with
 * `this` set to the stream), so an idle stream costs its two map entries and
 * nothing per listener.
 *
 * With a `maxAge`, a stream idle for longer is never taken: `take` closes it
 * instead (reason 'expired'), and `expire()` closes all such streams.
 *
 * With `unexpectedData` (a server whose peers send nothing before the
 * hand-out), a stream on which bytes arrive while idle leaves at once: its
 * bytes are read out, `unexpectedData` closes it and names the reason.
 * Otherwise the bytes wait for the taker, as above.
 *
 * A stream added with a label (its client's identity, see
 * stream-identity.ts) is also indexed by it, in arrival order, so the
 * oldest stream of one client is found without walking the others'. Its
 * peer proved who it is, so bytes it sends while idle are no stranger's:
 * they wait for the taker even with `unexpectedData` (the forward tunnel:
 * a client writes on a stream as soon as it has named it to the server).
 */
export class IdleStreams {
  private readonly entries = new Map<string, Entry>();
  private readonly idOf = new Map<Duplex, string>();
  /** IDs of the labelled streams, per label, in arrival order; a label leaves with its last stream. */
  private readonly byLabel = new Map<string, Set<string>>();
  private readonly onError: (this: Duplex, error: unknown) => void;
  private readonly onEnd: (this: Duplex) => void;
  private readonly onClose: (this: Duplex) => void;
  private readonly onReadable: (this: Duplex) => void;
  /** Streams whose bytes `early` said are their taker's ('keep'). */
  private readonly kept = new WeakSet<Duplex>();
  /** How many buffered bytes `early` already judged, per stream; Infinity once it passed. */
  private readonly judged = new WeakMap<Duplex, number>();
  /** Set by the pool: sees bytes on idle streams first (the tunnel's control stream claim). */
  early?: EarlyHook;

  constructor(
    private readonly onDrop: (id: string, reason: DropReason, error?: unknown) => void,
    /** The transport's own check at take time (a session known dead, a socket not open). */
    private readonly isUsable: (stream: Duplex) => boolean = () => true,
    /** Milliseconds a stream may wait before it is too old to hand out; 0 never expires. */
    private readonly maxAge = 0,
    /** Set: the peers send nothing while a stream is idle, and bytes that come anyway drop it. */
    private readonly unexpectedData?: UnexpectedData,
  ) {
    const idle = this;
    this.onError = function (error) {
      idle.died(this, 'error', error);
    };
    this.onEnd = function () {
      idle.died(this, 'end');
    };
    this.onClose = function () {
      idle.died(this, 'close');
    };
    // A paused stream emits 'end' only once something reads. Node's sockets
    // and streams usually read(0) on EOF themselves; this read(0) on an empty
    // buffer is a defensive nudge for a Duplex that does not. With bytes
    // buffered nothing is read: they and the EOF wait for the taker.
    this.onReadable = function () {
      if (this.readableLength === 0) this.read(0);
      else if (idle.offerEarly(this)) return;
      else if (idle.unexpectedData && !idle.vouched(this)) idle.junk(this);
    };
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  ids(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** How many idle streams carry this label. */
  countOf(label: string): number {
    return this.byLabel.get(label)?.size ?? 0;
  }

  /** The label `add` was given for this ID, if any. */
  labelOf(id: string): string | undefined {
    return this.entries.get(id)?.label;
  }

  /** Milliseconds the oldest idle stream has waited. */
  oldestAge(now = performance.now()): number {
    const first = this.entries.values().next();
    return first.done ? 0 : now - first.value.since;
  }

  /** Holds `stream` under `id`; with a `label`, also in that label's index. */
  add(id: string, stream: Duplex, label?: string): void {
    stream.on('error', this.onError);
    stream.on('end', this.onEnd);
    stream.on('close', this.onClose);
    stream.on('readable', this.onReadable);
    this.entries.set(id, { stream, since: performance.now(), label });
    this.idOf.set(stream, id);
    if (label !== undefined) {
      const ids = this.byLabel.get(label);
      if (ids) ids.add(id);
      else this.byLabel.set(label, new Set([id]));
    }
    if (isDead(stream)) this.died(stream, 'stale');
    else if (stream.readableLength > 0 && this.offerEarly(stream)) return;
    else if (this.unexpectedData && !this.vouched(stream) && stream.readableLength > 0) this.junk(stream);
  }

  /** Takes the stream with this ID, if it is here, still alive and not older than `maxAge`. */
  take(id: string): Duplex | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    // Bytes whose 'readable' has not been emitted yet: the early hook sees them first.
    if (entry.stream.readableLength > 0 && this.offerEarly(entry.stream)) return undefined;
    if (this.unexpectedData && !this.vouched(entry.stream) && entry.stream.readableLength > 0) {
      this.junk(entry.stream);
      return undefined;
    }
    this.remove(id);
    const reason = isDead(entry.stream) || !this.isUsable(entry.stream) ? 'stale' : this.tooOld(entry) ? 'expired' : undefined;
    if (reason) {
      entry.stream.destroy();
      this.onDrop(id, reason);
      return undefined;
    }
    return entry.stream;
  }

  /**
   * Takes the oldest live stream (of those labelled `label`, when given),
   * dropping dead and expired ones on the way.
   */
  takeOldest(label?: string): [string, Duplex] | undefined {
    const ids = label === undefined ? this.entries.keys() : this.byLabel.get(label)?.values();
    if (!ids) return undefined;
    // take() deletes the current entry of the Map or Set being iterated, which both allow.
    for (const id of ids) {
      const stream = this.take(id);
      if (stream) return [id, stream];
    }
    return undefined;
  }

  /** Takes the youngest live stream, dropping dead and expired ones on the way (the far end from `takeOldest`). */
  takeNewest(): [string, Duplex] | undefined {
    for (const id of [...this.entries.keys()].reverse()) {
      const stream = this.take(id);
      if (stream) return [id, stream];
    }
    return undefined;
  }

  /**
   * Closes the streams idle for longer than `maxAge`, oldest first; returns
   * how many (none without a `maxAge`). Entries are in arrival order, so
   * this stops at the first younger one.
   */
  expire(now = performance.now()): number {
    if (this.maxAge <= 0) return 0;
    let expired = 0;
    for (const [id, entry] of this.entries) {
      if (!this.tooOld(entry, now)) break;
      this.remove(id);
      entry.stream.destroy();
      this.onDrop(id, 'expired');
      expired++;
    }
    return expired;
  }

  /** Destroys every idle stream; returns how many there were. */
  destroyAll(reason: DropReason): number {
    const ids = [...this.entries.keys()];
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (!entry) continue; // an onDrop handler already took it out
      this.remove(id);
      entry.stream.destroy();
      this.onDrop(id, reason);
    }
    return ids.length;
  }

  private tooOld(entry: Entry, now?: number): boolean {
    return this.maxAge > 0 && (now ?? performance.now()) - entry.since > this.maxAge;
  }

  /** Offers every idle stream with bytes buffered to `early` (just set). */
  recheckEarly(): void {
    for (const { stream } of [...this.entries.values()]) if (stream.readableLength > 0) this.offerEarly(stream);
  }

  /**
   * Shows the bytes buffered on an idle stream to `early`, once per new
   * bytes (read out and put back, so the reader still gets them). True
   * while `early` claimed or waits for more (no junk check then).
   */
  private offerEarly(stream: Duplex): boolean {
    const early = this.early;
    const id = this.idOf.get(stream);
    if (!early || id === undefined) return false;
    const judged = this.judged.get(stream) ?? 0;
    if (judged === Infinity || this.kept.has(stream)) return false;
    if (stream.readableLength <= judged) return true;
    const bytes = readAll(stream);
    if (bytes.length === 0) return false;
    stream.unshift(bytes);
    const verdict = early.decide(id, stream, this.entries.get(id)?.label, Buffer.from(bytes));
    if (verdict === 'claim') {
      this.judged.delete(stream);
      this.remove(id);
      early.claimed(id, stream);
      return true;
    }
    if (verdict === 'keep') {
      this.judged.delete(stream);
      this.kept.add(stream);
      return false;
    }
    this.judged.set(stream, verdict === 'wait' ? stream.readableLength : Infinity);
    return verdict === 'wait';
  }

  /**
   * The stream's peer proved who it is (it was added with a label), or the
   * early hook said its bytes are its taker's ('keep'): bytes it sends while
   * idle wait for the taker.
   */
  private vouched(stream: Duplex): boolean {
    if (this.kept.has(stream)) return true;
    const id = this.idOf.get(stream);
    return id !== undefined && this.entries.get(id)?.label !== undefined;
  }

  /** An idle stream died: it leaves, is destroyed, and is reported. */
  private died(stream: Duplex, reason: DropReason, error?: unknown): void {
    const id = this.idOf.get(stream);
    if (id === undefined) return;
    this.remove(id);
    stream.destroy();
    this.onDrop(id, reason, error);
  }

  /** Bytes arrived on an idle stream whose peer should have sent none. */
  private junk(stream: Duplex): void {
    const id = this.idOf.get(stream);
    if (id === undefined || !this.unexpectedData) return;
    this.remove(id);
    const bytes = readAll(stream);
    // The stream is the pool's until it is closed: nothing it emits now may reach the process.
    stream.on('error', noop);
    this.onDrop(id, this.unexpectedData(stream, bytes));
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.idOf.delete(entry.stream);
    if (entry.label !== undefined) {
      const ids = this.byLabel.get(entry.label);
      ids?.delete(id);
      if (ids?.size === 0) this.byLabel.delete(entry.label);
    }
    const { stream } = entry;
    stream.off('error', this.onError);
    stream.off('end', this.onEnd);
    stream.off('close', this.onClose);
    stream.off('readable', this.onReadable);
  }
}

const noop = (): void => undefined;

/**
 * Every byte buffered in a paused stream, as one Buffer. `read()` with no
 * size is not that: on Node 26 it returns only the first buffered chunk
 * (an unshifted prefix stayed apart from the bytes after it, and the claim
 * saw the same prefix forever). `read(n)` with n = readableLength joins them.
 */
function readAll(stream: Duplex): Buffer {
  if (stream.readableLength === 0) return Buffer.alloc(0);
  const read = stream.read(stream.readableLength) as Buffer | string | null;
  return read === null ? Buffer.alloc(0) : Buffer.isBuffer(read) ? read : Buffer.from(read);
}
