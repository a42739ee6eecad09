import net from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamCutError } from '../../core/errors.js';
import { wasHandedOut } from '../../core/taken-streams.js';
import { canReset, closeWithReset, rereadAtEnd } from '../common/tcp-handle.js';

const kRaw = Symbol('rawSocket');
const kProbing = Symbol('probing');
const kPeerEnded = Symbol('peerEnded');
const EMPTY = Buffer.alloc(0);
const noop = (): void => undefined;

interface CutAware extends Duplex {
  [kRaw]: net.Socket;
  [kProbing]?: true;
  /** The peer's FIN was taken as the end of the stream. */
  [kPeerEnded]?: true;
}

/**
 * Makes a cut of a pooled tcp/TLS stream reach the reader as an error, on
 * both ends.
 *
 * Sending: `destroy()` before this side finished writing with `end()`
 * closes with an RST (which the peer reads as `ECONNRESET`) instead of a
 * FIN, which the peer could not tell from a stream that ended after its
 * last byte. A stream whose writable side finished keeps Node's close (FIN,
 * and the kernel's RST if the peer sends more).
 *
 * Receiving: libuv reports an RST that arrives behind unread bytes as an
 * end of stream (after a short read it takes the socket's hang-up for EOF
 * without reading the error). Before the stream ends, `probe` asks the
 * kernel again; a reset errors the stream (`ECONNRESET`) instead of ending it.
 *
 * `raw` is the TCP socket under `stream` (the same object for plain tcp).
 * Shared functions, `this` being the stream: nothing is allocated per
 * stream but three properties.
 */
export function resetOnCut(stream: Duplex, raw: Duplex): void {
  if (!(raw instanceof net.Socket)) return; // a custom dialer's Duplex: no TCP handle to reset or probe
  const aware = stream as CutAware;
  aware[kRaw] = raw;
  aware.destroy = destroyCutting;
  aware.push = pushUnlessReset;
}

function destroyCutting(this: CutAware, error?: Error): CutAware {
  if (!this.destroyed && !this.writableFinished && (wasHandedOut(this) || !this[kPeerEnded])) {
    const raw = this[kRaw];
    // The flag resetAndDestroy() sets: the socket's own close then resets.
    // Not resetAndDestroy() itself: it takes no error argument, and under a
    // TLSSocket closing the TCP handle first crashes Node 20 (SIGSEGV) when
    // TLS still has work queued; the TLSSocket's destroy closes it in order.
    if (canReset(raw)) closeWithReset(raw);
  }
  return (Object.getPrototypeOf(this) as Duplex).destroy.call(this, error) as CutAware;
}

function pushUnlessReset(this: CutAware, chunk: unknown, encoding?: BufferEncoding): boolean {
  const push = (Object.getPrototypeOf(this) as Duplex).push;
  if (chunk !== null) return push.call(this, chunk, encoding);
  if (this[kProbing] || this.destroyed || !probe(this, push)) {
    this[kPeerEnded] = true;
    return push.call(this, null);
  }
  this[kProbing] = true;
  return false;
}

/**
 * Asks whether the end the stream is about to report is a reset libuv took
 * for one; false when it cannot ask. Plain tcp: the TCP handle reads once
 * more; a reset answers ECONNRESET (Node destroys the stream with it), a
 * real FIN the end again, which then goes through. TLS (whose layer ignores
 * reads after an end): an empty write on the TCP socket, which fails on a
 * reset connection and succeeds after a FIN; not possible once this side
 * ended its own writing. Nothing goes on the wire either way.
 */
function probe(stream: CutAware, push: Duplex['push']): boolean {
  const raw = stream[kRaw];
  if (raw === (stream as Duplex)) return rereadAtEnd(raw);
  if (stream.writableEnded || raw.destroyed || raw.writableEnded || !raw.writable) return false;
  raw.on('error', noop); // the TLS stream reports it
  raw.write(EMPTY, (error) => {
    if (stream.destroyed) return;
    if (!error) {
      stream[kPeerEnded] = true;
      push.call(stream, null);
      stream.read(0); // as Node does after an end: a paused stream with nothing buffered emits 'end'
      return;
    }
    stream.destroy(new StreamCutError('reset', `the peer reset the connection (the reset arrived behind unread bytes): ${error.message}`, { cause: error }));
  });
  return true;
}
