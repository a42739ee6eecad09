import type { Server } from 'node:net';
import { ListenError } from '../../core/errors.js';
import { listen as on } from '../../core/listeners.js';
import type { AcceptFailure } from '../../core/transport.js';

/**
 * Listens `server` on `host:port`, turning a failure (port taken, address
 * unavailable, no permission) into a `ListenError` that names the option.
 *
 * Once listening, `server` keeps an 'error' listener for as long as it is
 * open: Node reports a failed accept as an 'error' on the server, which
 * would be uncaught and end the process. Such an error is passed to
 * `onAcceptError` with a reason to count ('accept-emfile', 'accept-enfile',
 * 'accept-error'), and the server goes on accepting. Out of descriptors,
 * libuv does not even report that much as a rule: it keeps one descriptor
 * in reserve, frees it to accept each pending connection and close it at
 * once, and reports nothing; Node emits the error only when that reserve is
 * gone too. See FdBudget (lib/core/fd-budget.ts) for what the pools do
 * before it comes to that.
 */
export function listen(
  server: Server,
  port: number,
  host: string,
  portOption: string,
  onAcceptError: (reason: AcceptFailure, error: Error) => void = () => undefined,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error & { code?: string }): void => {
      stop();
      const hint = error.code === 'EADDRINUSE' ? '; the port is taken: choose another or stop what uses it' : '';
      reject(new ListenError(portOption, `cannot listen on ${host}:${port} (${portOption}): ${error.message}${hint}`, { cause: error }));
    };
    const stop = on(server, { error: onError });
    server.listen(port, host, () => {
      stop();
      watchAcceptErrors(server, onAcceptError);
      resolve();
    });
  });
}

/** The reason a failed accept is counted under. */
export function acceptErrorReason(error: Error & { code?: string }): AcceptFailure {
  return error.code === 'EMFILE' ? 'accept-emfile' : error.code === 'ENFILE' ? 'accept-enfile' : 'accept-error';
}

/** Keeps failed accepts of a listening `server` from ending the process, until it closes. */
export function watchAcceptErrors(server: Server, onAcceptError: (reason: AcceptFailure, error: Error) => void): void {
  server.once('close', on(server, { error: (error: Error) => onAcceptError(acceptErrorReason(error), error) }));
}
