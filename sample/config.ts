// The sample's configuration: environment variables with defaults, checked
// once at start-up. Every problem is reported at once, each line naming the
// variable, the value and what was expected.
import { isIP } from 'node:net';
import { generateAuthKey } from '../lib/index.js';

export type TunnelRole = 'both' | 'server' | 'client';
export type TunnelTls = '0' | '1' | '2';

export interface SamplePorts {
  /**
   * Public entry of the tunnel's reverse route: the server side listens on it
   * once the client side has announced the route (the client side asks for
   * it, the server side's allowlist permits it). 0: any free port.
   */
  public: number;
  /** The server pool listener the client pool dials; the tunnel's control channel rides on one of its streams. */
  pool: number;
  /** The embedded HTTP target the route forwards to (client side). */
  target: number;
  /** Nest HTTP server with GET /health. */
  health: number;
}

export interface SampleConfig {
  role: TunnelRole;
  /** Passed through as the pools' `transport`; the library validates it. */
  transport: string;
  tls: TunnelTls;
  /** Interface this process listens on. */
  host: string;
  /** Where the client side finds the server side (its pool port). */
  server: string;
  ports: SamplePorts;
  pool: { minCap: number; maxCap: number; minIvl: number; maxIvl: number; serverMaxCap: number };
  /** How long a public connection waits for a pooled stream, and the client side for the stream an OPEN names (ms). */
  handoffTimeout: number;
  /** First delay before the client side brings a lost control channel back (ms; it doubles on each failed try, up to 10 s). */
  reconnectDelay: number;
  /** Optional PEM files; without them the server side makes a certificate at start-up. */
  tlsFiles: { cert?: string; key?: string; ca?: string };
  /** Name checked in TLS mode "2" (and sent as SNI). */
  tlsHostname: string;
  /**
   * The shared key every pooled connection proves (the pools' `auth`), or
   * undefined with `TUNNEL_AUTH=off` (e.g. against a Go peer). `generated`:
   * made at start-up because none was given (server side and `both`).
   */
  auth?: SampleAuth;
}

export interface SampleAuth {
  /** The key itself, or where the library reads it from. */
  key: string | { file: string };
  source: 'TUNNEL_KEY' | 'TUNNEL_KEY_FILE' | 'generated';
}

export const hasServerSide = (role: TunnelRole): boolean => role !== 'client';
export const hasClientSide = (role: TunnelRole): boolean => role !== 'server';

/** Thrown by `loadConfig` with one line per invalid variable. */
export class SampleConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid sample configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'SampleConfigError';
  }
}

const TLS_ALIASES: Record<string, TunnelTls> = {
  '0': '0', none: '0', off: '0',
  '1': '1', insecure: '1',
  '2': '2', verify: '2',
};

type Env = Record<string, string | undefined>;

class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private value(name: string): string | undefined {
    const raw = this.env[name];
    if (raw === undefined) return undefined;
    const trimmed = raw.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  given(name: string): boolean {
    return this.value(name) !== undefined;
  }

  private bad(name: string, raw: string, expected: string): void {
    this.problems.push(`${name}: got ${JSON.stringify(raw)}, expected ${expected}`);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.value(name);
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      this.bad(name, raw, `an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, 0, 65535);
  }

  oneOf<T extends string>(name: string, aliases: Record<string, T>, fallback: T): T {
    const raw = this.value(name);
    if (raw === undefined) return fallback;
    const value = aliases[raw.toLowerCase()];
    if (value === undefined) {
      this.bad(name, raw, `one of ${Object.keys(aliases).map((key) => JSON.stringify(key)).join(', ')}`);
      return fallback;
    }
    return value;
  }

  host(name: string, fallback: string): string {
    const raw = this.value(name);
    if (raw === undefined) return fallback;
    // An IP literal or a DNS name; no port, no brackets, no spaces.
    if (isIP(raw) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(raw)) {
      this.bad(name, raw, 'an IP address or a host name, without a port');
      return fallback;
    }
    return raw;
  }

  token(name: string, fallback: string): string {
    const raw = this.value(name);
    if (raw === undefined) return fallback;
    if (!/^[a-z0-9][a-z0-9-]*$/i.test(raw)) {
      this.bad(name, raw, 'a transport name such as "tcp"');
      return fallback;
    }
    return raw.toLowerCase();
  }

  path(name: string): string | undefined {
    return this.value(name);
  }

  problem(message: string): void {
    this.problems.push(message);
  }
}

/** The variables `loadConfig` reads, with their defaults (see sample/README.md). */
export const DEFAULT_PORTS: Readonly<SamplePorts> = Object.freeze({
  public: 18080,
  pool: 18081,
  target: 18083,
  health: 18090,
});

/** The client role's health port when HEALTH_PORT is unset, so both roles run side by side. */
export const DEFAULT_CLIENT_HEALTH_PORT = 18091;

/** A host to dial that reaches a listener bound to `host` (a wildcard means loopback). */
export function dialableHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/** Reads and checks the sample's environment variables; throws `SampleConfigError` listing every problem. */
export function loadConfig(env: Env = process.env): SampleConfig {
  const read = new EnvReader(env);
  const role = read.oneOf<TunnelRole>('TUNNEL_ROLE', { both: 'both', server: 'server', client: 'client' }, 'both');
  const host = read.host('TUNNEL_HOST', '127.0.0.1');
  const ports: SamplePorts = {
    public: read.port('PUBLIC_PORT', DEFAULT_PORTS.public),
    pool: read.port('POOL_PORT', DEFAULT_PORTS.pool),
    target: read.port('TARGET_PORT', DEFAULT_PORTS.target),
    health: read.port('HEALTH_PORT', role === 'client' ? DEFAULT_CLIENT_HEALTH_PORT : DEFAULT_PORTS.health),
  };
  const minCap = read.int('POOL_MIN_CAP', 4, 1, 4096);
  const maxCap = read.int('POOL_MAX_CAP', Math.max(16, minCap), 1, 4096);
  const minIvl = read.int('POOL_MIN_IVL', 100, 1, 3_600_000);
  const maxIvl = read.int('POOL_MAX_IVL', Math.max(1000, minIvl), 1, 3_600_000);
  const config: SampleConfig = {
    role,
    transport: read.token('TUNNEL_TRANSPORT', 'tcp'),
    tls: read.oneOf<TunnelTls>('TUNNEL_TLS', TLS_ALIASES, '1'),
    host,
    server: read.host('TUNNEL_SERVER', dialableHost(host)),
    ports,
    pool: {
      minCap,
      maxCap,
      minIvl,
      maxIvl,
      serverMaxCap: read.int('POOL_SERVER_MAX_CAP', 1024, 1, 1_000_000),
    },
    handoffTimeout: read.int('HANDOFF_TIMEOUT', 5000, 1, 600_000),
    reconnectDelay: read.int('CONTROL_RETRY', 1000, 1, 600_000),
    tlsFiles: { cert: read.path('TLS_CERT_FILE'), key: read.path('TLS_KEY_FILE'), ca: read.path('TLS_CA_FILE') },
    tlsHostname: read.host('TLS_HOSTNAME', 'localhost'),
    auth: readAuth(read, role),
  };

  if (config.transport === 'http2' && config.tls === '0') {
    read.problem('TUNNEL_TLS=0 with TUNNEL_TRANSPORT=http2: HTTP/2 pools run over TLS only; set TUNNEL_TLS=1 (or 2 with certificate files)');
  }
  if (minCap > maxCap) read.problem(`POOL_MIN_CAP (${minCap}) must not exceed POOL_MAX_CAP (${maxCap})`);
  if (minIvl > maxIvl) read.problem(`POOL_MIN_IVL (${minIvl}) must not exceed POOL_MAX_IVL (${maxIvl})`);
  if (Boolean(config.tlsFiles.cert) !== Boolean(config.tlsFiles.key)) {
    read.problem('TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither');
  }
  if (role === 'client') {
    if (ports.pool === 0) read.problem('POOL_PORT: the client side dials the server side\'s port; 0 (ephemeral) is only valid with TUNNEL_ROLE=server or both');
    if (config.tls === '2' && !config.tlsFiles.ca) {
      read.problem('TUNNEL_TLS=2 with TUNNEL_ROLE=client verifies the server certificate: set TLS_CA_FILE to the server\'s certificate (PEM)');
    }
  }
  if (role === 'server' && config.tls === '2' && !config.tlsFiles.cert) {
    // The client process must trust the certificate, so it has to exist outside this process.
    read.problem('TUNNEL_TLS=2 with TUNNEL_ROLE=server needs TLS_CERT_FILE and TLS_KEY_FILE (the client side verifies the certificate with TLS_CA_FILE)');
  }
  const listened = listenedPorts(config);
  const seen = new Map<number, string>();
  for (const [name, port] of listened) {
    if (port !== 0 && seen.has(port)) read.problem(`${name} and ${seen.get(port)} are both ${port}: each listener needs its own port`);
    seen.set(port, name);
  }

  if (read.problems.length > 0) throw new SampleConfigError(read.problems);
  return config;
}

/** TUNNEL_AUTH, TUNNEL_KEY, TUNNEL_KEY_FILE: authenticated by default, a key made at start-up unless the client side needs the server's. */
function readAuth(read: EnvReader, role: TunnelRole): SampleAuth | undefined {
  const enabled = read.oneOf('TUNNEL_AUTH', { on: 'on', off: 'off', '1': 'on', '0': 'off', true: 'on', false: 'off' }, 'on') === 'on';
  const key = read.path('TUNNEL_KEY');
  const file = read.path('TUNNEL_KEY_FILE');
  if (!enabled) {
    if (key !== undefined || file !== undefined) read.problem('TUNNEL_AUTH=off with TUNNEL_KEY or TUNNEL_KEY_FILE set: remove the key, or turn TUNNEL_AUTH back on');
    return undefined;
  }
  if (key !== undefined && file !== undefined) read.problem('TUNNEL_KEY and TUNNEL_KEY_FILE: set one of them, not both');
  if (key !== undefined) return { key, source: 'TUNNEL_KEY' };
  if (file !== undefined) return { key: { file }, source: 'TUNNEL_KEY_FILE' };
  if (role === 'client') {
    read.problem('TUNNEL_KEY: the client side must prove the key of the server side; set TUNNEL_KEY to the key the server side printed at start (or TUNNEL_KEY_FILE), or TUNNEL_AUTH=off on both sides');
    return undefined;
  }
  return { key: generateAuthKey(), source: 'generated' };
}

/** The ports this process listens on for its role, by variable name. */
export function listenedPorts(config: SampleConfig): Array<[string, number]> {
  const ports: Array<[string, number]> = [['HEALTH_PORT', config.ports.health]];
  if (hasServerSide(config.role)) {
    ports.push(['PUBLIC_PORT', config.ports.public], ['POOL_PORT', config.ports.pool]);
  }
  if (hasClientSide(config.role)) ports.push(['TARGET_PORT', config.ports.target]);
  return ports;
}
