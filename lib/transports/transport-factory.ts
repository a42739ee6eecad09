import type { ClientTransport, ServerTransport } from '../core/transport.js';
import type { OptionReader } from '../core/validate.js';

/**
 * What a transport folder exports: how to build its client and server side
 * from the user's options. Each reads its own keys from `read`; keys nobody
 * reads are rejected as unknown.
 */
export interface TransportFactory {
  readonly name: string;
  /**
   * The option keys each side reads. When given, unknown keys are rejected
   * before the transport validates anything, so a typo ("adress") is
   * reported as such rather than as the missing option it hides.
   */
  readonly clientOptionKeys?: readonly string[];
  readonly serverOptionKeys?: readonly string[];
  createClient(read: OptionReader): ClientTransport;
  createServer(read: OptionReader): ServerTransport;
}
