import { isIP } from 'node:net';
import tls from 'node:tls';
import { createSelfSignedCertificate } from '../../certs/index.js';
import { InvalidOptionsError } from '../../core/errors.js';
import { show } from '../../core/validate.js';

/**
 * Client TLS modes of the Go pools: "0" plain, "1" TLS 1.3 without
 * verification (open to a man in the middle), "2" TLS 1.3 verified against
 * `hostname` (SNI + certificate check).
 */
export type TlsMode = '0' | '1' | '2';

/** What users may write for a mode: the Go codes, numbers, or readable names. */
export type TlsModeInput = TlsMode | 0 | 1 | 2 | 'none' | 'off' | 'insecure' | 'self-signed' | 'verify' | 'verified' | false;

const MODE_ALIASES: Record<string, TlsMode> = {
  '0': '0', none: '0', off: '0', false: '0',
  '1': '1', insecure: '1', 'self-signed': '1', unverified: '1',
  '2': '2', verify: '2', verified: '2', strict: '2',
};

export function parseTlsMode(value: unknown, option = 'tls'): TlsMode {
  if (value === undefined) return '0';
  const mode = MODE_ALIASES[String(value)];
  if (mode === undefined || (typeof value !== 'string' && typeof value !== 'number' && value !== false)) {
    throw new InvalidOptionsError(option, `got ${show(value)}, expected "0" (none), "1" (insecure: TLS without verification) or "2" (verify: TLS verified against hostname)`);
  }
  return mode;
}

export type CaInput = string | Buffer | Array<string | Buffer>;

export interface ClientTlsConfig {
  mode: TlsMode;
  /** The name used for SNI and certificate verification. */
  hostname?: string;
  /** One secure context per pool, reused by every connection. */
  secureContext?: tls.SecureContext;
}

export function createClientTls(mode: TlsMode, hostname: string | undefined, ca: CaInput | undefined): ClientTlsConfig {
  if (mode === '0') return { mode };
  if (mode === '2' && !hostname) {
    throw new InvalidOptionsError('hostname', 'TLS mode "2" verifies the server certificate against hostname: set hostname (for example "localhost")');
  }
  const contextOptions: tls.SecureContextOptions = { minVersion: 'TLSv1.3' };
  if (ca !== undefined) contextOptions.ca = ca;
  const secureContext = tls.createSecureContext(contextOptions);
  return hostname ? { mode, hostname, secureContext } : { mode, secureContext };
}

/**
 * Options for `tls.connect` with no key whose value is `undefined` (on Node
 * 20 `checkServerIdentity: undefined` throws an internal assertion).
 */
export function clientTlsOptions(config: ClientTlsConfig, extra: tls.ConnectionOptions = {}): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = {
    ...extra,
    secureContext: config.secureContext!,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: config.mode === '2',
  };
  const hostname = config.hostname;
  if (hostname && isIP(hostname) === 0) options.servername = hostname;
  if (config.mode === '2' && hostname) {
    options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(hostname, cert);
  }
  return options;
}

/** Server TLS: a key and certificate, a ready secure context, or a certificate made at start-up. */
export type ServerTlsInput =
  | { key: string | Buffer; cert: string | Buffer; ca?: CaInput }
  | { secureContext: tls.SecureContext }
  | 'self-signed';

export function createServerSecureContext(input: ServerTlsInput, option = 'tls'): tls.SecureContext {
  if (input === 'self-signed') {
    const { key, cert } = createSelfSignedCertificate();
    return tls.createSecureContext({ key, cert, minVersion: 'TLSv1.3' });
  }
  if (input && typeof input === 'object') {
    if ('secureContext' in input && input.secureContext) return input.secureContext;
    if ('key' in input && 'cert' in input && input.key && input.cert) {
      const options: tls.SecureContextOptions = { key: input.key, cert: input.cert, minVersion: 'TLSv1.3' };
      if (input.ca !== undefined) options.ca = input.ca;
      try {
        return tls.createSecureContext(options);
      } catch (error) {
        throw new InvalidOptionsError(option, `the key and certificate were not accepted: ${(error as Error).message}`);
      }
    }
  }
  throw new InvalidOptionsError(option, `got ${show(input)}, expected { key, cert }, { secureContext } or "self-signed"`);
}
