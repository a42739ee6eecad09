import type { ClientTransport, ServerTransport } from '../core/transport.js';
import type { OptionReader } from '../core/validate.js';

/**
 * What a transport folder exports: how to build its client and server side
 * from the user's options. Each reads its own keys from `read`; keys nobody
 * reads are rejected as unknown.
 */
export interface TransportFactory {
  readonly name: string;
  createClient(read: OptionReader): ClientTransport;
  createServer(read: OptionReader): ServerTransport;
}
