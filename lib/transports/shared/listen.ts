import type { Server } from 'node:net';
import { ListenError } from '../../core/errors.js';

/**
 * Listens `server` on `host:port`, turning a failure (port taken, address
 * unavailable, no permission) into a `ListenError` that names the option.
 */
export function listen(server: Server, port: number, host: string, portOption: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error & { code?: string }): void => {
      const hint = error.code === 'EADDRINUSE' ? '; the port is taken: choose another or stop what uses it' : '';
      reject(new ListenError(portOption, `cannot listen on ${host}:${port} (${portOption}): ${error.message}${hint}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
