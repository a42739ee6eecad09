import type { Duplex } from 'node:stream';
import { AuthRefusedError, HandshakeError, PoolRefusedError } from '../../core/errors.js';
import { Disposers, listen } from '../../core/listeners.js';
import { keyIdentity } from '../../auth/identity.js';
import type { ClientAuth, ServerAuth } from '../../auth/keys.js';
import { channelBinding } from '../../auth/proof.js';
import { TCP_MESSAGE_BYTES, TcpAuthType, TcpClientAuth, TcpServerAuth, type TcpIdFormat } from '../../auth/tcp-wire.js';
import type { Authenticate, Authenticated } from '../common/front-door.js';
import { poolClosed, whenClosed } from '../common/pool-signal.js';

const PROOF_SIZE = TCP_MESSAGE_BYTES[TcpAuthType.PROOF];
const CHALLENGE_SIZE = TCP_MESSAGE_BYTES[TcpAuthType.CHALLENGE];
const ACCEPT_SIZE = TCP_MESSAGE_BYTES[TcpAuthType.ACCEPT];

/**
 * Feeds `take` what `stream` has, never more than `want()` bytes at a time:
 * what the exchange does not ask for stays unread in the stream (the ID on
 * the client, a client's stray bytes on the server), so neither side ever
 * holds more than one message. Registers its listener with `undo`, then
 * reads what is already buffered.
 */
function feed(undo: Disposers, stream: Duplex, want: () => number, take: (chunk: Buffer) => void): void {
  const onReadable = (): void => {
    for (;;) {
      const count = Math.min(want(), stream.readableLength);
      if (count <= 0) return;
      const chunk = stream.read(count) as Buffer | null;
      if (chunk === null) return;
      take(chunk);
    }
  };
  undo.add(listen(stream, { readable: onReadable }));
  onReadable();
}

/**
 * The server's step of the tcp/TLS exchange, for the front door: writes the
 * challenge, reads at most the 70 bytes of a proof, and lets the connection
 * in with the key's identity and the ACCEPT to write before the ID; any
 * other answer refuses it (a bare close, counted 'auth'). The peer leaving
 * and the deadline are the front door's to count.
 */
export function tcpServerAuthentication(auth: ServerAuth, idFormat: TcpIdFormat): Authenticate {
  return ({ stream, signal }) =>
    new Promise<Authenticated>((resolve, reject) => {
      const exchange = new TcpServerAuth(auth, idFormat, auth.channelBinding ? channelBinding(stream) : undefined);
      if (signal.aborted) return reject(poolClosed('the handshake'));
      let missing = PROOF_SIZE;
      const undo = new Disposers();
      undo.add(whenClosed(signal, () => undo.dispose()));
      stream.write(exchange.challenge);
      feed(
        undo,
        stream,
        () => missing,
        (chunk) => {
          missing -= chunk.length;
          const step = exchange.push(chunk);
          if (step.kind === 'need') return;
          undo.dispose();
          missing = 0;
          // The reason is the server's own (never on the wire).
          if (step.kind === 'refused') reject(new AuthRefusedError(`the client's authentication proof was refused (${step.reason})`));
          else resolve({ identity: keyIdentity(step.keyId), reply: step.reply });
        },
      );
    });
}

/**
 * The client's side on a connected (and secured) stream, before the ID:
 * waits for the whole challenge (failing at the first byte that is not one),
 * answers with the proof, then checks the server's proof in ACCEPT. The ID
 * that follows stays unread in the stream. Bounded by `timeout` and the
 * pool's `signal`.
 */
export function tcpClientAuthentication(stream: Duplex, auth: ClientAuth, idFormat: TcpIdFormat, timeout: number, signal: AbortSignal, refusal: string): Promise<void> {
  if (signal.aborted) return Promise.reject(poolClosed('the handshake'));
  const exchange = new TcpClientAuth(auth, idFormat, auth.channelBinding ? channelBinding(stream) : undefined);
  let missing = CHALLENGE_SIZE;
  let sent = false;
  return new Promise<void>((resolve, reject) => {
    const undo = new Disposers();
    const finish = (error?: Error): void => {
      undo.dispose();
      missing = 0;
      if (error) reject(error);
      else resolve();
    };
    /** The connection ended or failed before the exchange was done. */
    const ended = (cause?: Error): void => {
      const error = exchange.ended();
      if (error) return finish(error);
      // Not a byte before it: the server's ordinary bare refusal (full, address not allowed).
      if (!sent) return finish(cause ? new HandshakeError(`the connection failed before the authentication challenge: ${cause.message}`, { cause }) : new PoolRefusedError(refusal));
      finish(new HandshakeError('the connection ended during the authentication exchange', cause ? { cause } : undefined));
    };
    // Already over: no event would come.
    if (stream.destroyed || stream.readableEnded) return ended();
    undo.add(
      listen(stream, {
        end: () => ended(),
        close: () => ended(),
        error: (error: Error) => ended(error),
      }),
    );
    const timer = setTimeout(
      () => finish(new HandshakeError(`the authentication exchange did not finish within ${timeout} ms (${sent ? 'no answer to the proof' : 'no complete challenge'})`)),
      timeout,
    );
    undo.add(() => clearTimeout(timer));
    undo.add(whenClosed(signal, () => finish(poolClosed('the handshake'))));
    feed(
      undo,
      stream,
      () => missing,
      (chunk) => {
        missing -= chunk.length;
        let step;
        try {
          step = exchange.push(chunk);
        } catch (error) {
          return finish(error as Error);
        }
        if (step.kind === 'send') {
          sent = true;
          missing = ACCEPT_SIZE;
          stream.write(step.bytes);
        } else if (step.kind === 'done') {
          finish();
        }
      },
    );
  });
}
