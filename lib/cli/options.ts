/**
 * The command line's flags and environment variables: read with
 * `util.parseArgs`, a flag winning over its variable, each value checked
 * here so that a bad one is reported as one line naming the flag (or the
 * variable it came from) and what is expected. No sockets here.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { InvalidOptionsError } from '../core/errors.js';
import { parseHostPort, ROUTE_NAME, type HostPort, type RouteOptions } from '../tunnel/routes.js';

export type Env = Record<string, string | undefined>;
export type CliTransport = 'tcp' | 'http2' | 'ws';
export type CliTls = '0' | '1' | '2';

/** One flag: its type, the variable that stands in for it, whether it repeats (the variable then holds a comma-separated list). */
interface FlagSpec {
  type: 'string' | 'boolean';
  env?: string;
  multiple?: boolean;
  help: string;
}

const COMMON: Record<string, FlagSpec> = {
  transport: { type: 'string', env: 'TUNNEL_TRANSPORT', help: 'tcp (default), http2 or ws; both ends must agree' },
  tls: { type: 'string', env: 'TUNNEL_TLS', help: '0 plain (default; not for http2), 1 encrypted, 2 encrypted and verified' },
  key: { type: 'string', env: 'TUNNEL_KEY', help: 'the shared key every pooled connection proves (make one: nestjs-tunnel-pool keygen)' },
  'key-file': { type: 'string', env: 'TUNNEL_KEY_FILE', help: 'a file holding the shared key' },
  insecure: { type: 'boolean', env: 'TUNNEL_INSECURE', help: 'run without a key (no authentication: the Go pools\' wire); both ends' },
  'max-cap': { type: 'string', env: 'TUNNEL_MAX_CAP', help: 'the most pooled connections (server default 64, client default 16)' },
  help: { type: 'boolean', help: 'print this help' },
};

export const SERVER_FLAGS: Record<string, FlagSpec> = {
  listen: { type: 'string', env: 'TUNNEL_LISTEN', help: 'where tunnel clients connect, host:port (default 0.0.0.0:10101; port 0 picks one)' },
  'public-host': { type: 'string', env: 'TUNNEL_PUBLIC_HOST', help: 'where public listeners of reverse routes bind (default: the --listen host)' },
  allow: { type: 'string', env: 'TUNNEL_ALLOW', multiple: true, help: 'route names the server opens, exact or with * (repeat; default *)' },
  ports: { type: 'string', env: 'TUNNEL_PORTS', multiple: true, help: 'public ports reverse routes may use: 8080 or 20000-20100 (repeat; default none)' },
  'allow-target': { type: 'string', env: 'TUNNEL_ALLOW_TARGETS', multiple: true, help: 'targets forward routes may reach: host:port, host:from-to, host:* (repeat; default none)' },
  'tls-cert': { type: 'string', env: 'TUNNEL_TLS_CERT', help: 'PEM certificate file (tls 2; tls 1 makes one at start-up when absent)' },
  'tls-key': { type: 'string', env: 'TUNNEL_TLS_KEY', help: 'PEM private key file of --tls-cert' },
  'early-data': { type: 'boolean', env: 'TUNNEL_EARLY_DATA', help: 'send a reverse connection\'s first bytes without waiting for the client\'s stream header, to clients with a key and no forward route: one round trip less per open (default on, never with --insecure; --no-early-data or TUNNEL_EARLY_DATA=0 waits for the header; see docs/TUNNEL.md)' },
  ...COMMON,
};

export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  connect: { type: 'string', env: 'TUNNEL_CONNECT', help: 'the tunnel server, host:port (required)' },
  route: { type: 'string', env: 'TUNNEL_ROUTES', multiple: true, help: 'a route to serve (repeat), see "Routes" below' },
  name: { type: 'string', env: 'TUNNEL_NAME', help: 'a label for the server\'s logs' },
  pin: { type: 'string', env: 'TUNNEL_PIN', help: 'tls 1: the server certificate\'s SHA-256 fingerprint (the server prints it)' },
  'tls-ca': { type: 'string', env: 'TUNNEL_TLS_CA', help: 'tls 2: PEM file of the CA that signed the server certificate (default: the system roots)' },
  hostname: { type: 'string', env: 'TUNNEL_HOSTNAME', help: 'tls 2: the name the server certificate must carry (default: the --connect host)' },
  'min-cap': { type: 'string', env: 'TUNNEL_MIN_CAP', help: 'pooled connections kept ready (default 4)' },
  ...COMMON,
};

/** Raw values after parsing: a flag's value, else its variable's; `from` names where it came from, for error lines. */
export class Values {
  constructor(
    private readonly specs: Record<string, FlagSpec>,
    private readonly flags: Record<string, string | boolean | (string | boolean)[] | undefined>,
    private readonly env: Env,
  ) {}

  /** `--flag`, or `TUNNEL_X` when the value came from the variable. */
  from(name: string): string {
    const spec = this.specs[name]!;
    return this.flags[name] === undefined && spec.env && this.env[spec.env] !== undefined ? spec.env : `--${name}`;
  }

  string(name: string): string | undefined {
    const given = this.flags[name];
    if (typeof given === 'string') return given;
    const spec = this.specs[name]!;
    const fromEnv = spec.env ? this.env[spec.env] : undefined;
    return fromEnv === '' ? undefined : fromEnv;
  }

  list(name: string): string[] {
    const given = this.flags[name];
    if (Array.isArray(given)) return given.map(String);
    const raw = this.string(name);
    return raw === undefined ? [] : raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
  }

  /** A flag (`--name`, or `--no-name` for false) wins over its variable; neither given, `fallback`. */
  bool(name: string, fallback = false): boolean {
    const flag = this.flags[name];
    if (typeof flag === 'boolean') return flag;
    const raw = this.specs[name]!.env ? this.env[this.specs[name]!.env!] : undefined;
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    throw new InvalidOptionsError(this.from(name), `got ${JSON.stringify(raw)}, expected 1 or 0`);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new InvalidOptionsError(this.from(name), `got ${JSON.stringify(raw)}, expected a whole number from ${min} to ${max}`);
    return Number(raw);
  }

  /** A file's contents; an unreadable one is named by the flag. */
  file(name: string): Buffer | undefined {
    const path = this.string(name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new InvalidOptionsError(this.from(name), `cannot read ${JSON.stringify(path)} (${(error as NodeJS.ErrnoException).code ?? 'error'}): give a readable file`);
    }
  }
}

/** Parses `args` against `specs`; an unknown flag or a missing value is one InvalidOptionsError naming it. */
export function parseFlags(specs: Record<string, FlagSpec>, args: string[], env: Env): Values {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}) };
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false, allowNegative: true });
    return new Values(specs, values as Record<string, string | boolean | (string | boolean)[] | undefined>, env);
  } catch (error) {
    const message = (error as Error).message;
    const flag = /'(-[^'\s,]*)/.exec(message)?.[1] ?? 'arguments';
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new InvalidOptionsError(flag, 'unknown flag; see --help for the flags of this command');
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new InvalidOptionsError(flag, 'unexpected argument; every value follows its flag (--flag value); see --help');
    throw new InvalidOptionsError(flag, `${message.replace(/\s+/g, ' ')}; see --help`);
  }
}

/** What both ends read alike: transport, TLS mode, the key. */
export interface CommonConfig {
  transport: CliTransport;
  tls: CliTls;
  /** undefined with --insecure. */
  key: string | undefined;
}

export function readCommon(values: Values): CommonConfig {
  const transport = values.string('transport') ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'http2' && transport !== 'ws') throw new InvalidOptionsError(values.from('transport'), `got ${JSON.stringify(transport)}, expected tcp, http2 or ws`);
  const tlsRaw = values.string('tls') ?? '0';
  const tls = ({ '0': '0', off: '0', '1': '1', '2': '2', verify: '2' } as Record<string, CliTls>)[tlsRaw];
  if (tls === undefined) throw new InvalidOptionsError(values.from('tls'), `got ${JSON.stringify(tlsRaw)}, expected 0 (plain), 1 (encrypted) or 2 (encrypted and verified)`);
  if (transport === 'http2' && tls === '0') throw new InvalidOptionsError(values.from('tls'), 'the http2 transport runs over TLS only: give --tls 1 or --tls 2 (on both ends)');
  const insecure = values.bool('insecure');
  const inline = values.string('key');
  const file = values.string('key-file');
  if (inline !== undefined && file !== undefined) throw new InvalidOptionsError(values.from('key-file'), `give the key once: ${values.from('key')} or ${values.from('key-file')}, not both`);
  let key: string | undefined;
  if (file !== undefined) {
    key = values.file('key-file')!.toString('utf8').trim();
    if (key.length === 0) throw new InvalidOptionsError(values.from('key-file'), `the file ${JSON.stringify(file)} is empty: put the shared key in it`);
  } else key = inline;
  if (key !== undefined && insecure) throw new InvalidOptionsError(values.from('insecure'), `${values.from(file !== undefined ? 'key-file' : 'key')} gives a key: drop ${values.from('insecure')}, or the key`);
  if (key === undefined && !insecure) {
    throw new InvalidOptionsError('--key', 'no shared key: give --key, --key-file or TUNNEL_KEY (make one with: nestjs-tunnel-pool keygen), or --insecure to run without authentication');
  }
  return { transport, tls, key };
}

export function readHostPort(values: Values, name: string, fallback?: string): HostPort & { portZero: boolean } {
  const raw = values.string(name) ?? fallback;
  if (raw === undefined) throw new InvalidOptionsError(values.from(name), 'required: host:port');
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  if (match && Number(match[3]) === 0) return { host: match[1] ?? match[2]!, port: 0, portZero: true };
  try {
    return { ...parseHostPort(raw, values.from(name)), portZero: false };
  } catch (error) {
    throw new InvalidOptionsError(values.from(name), `got ${JSON.stringify(raw)}, expected host:port (IPv6 as [::1]:port)`);
  }
}

const TARGET_AT_END = /^(.*?):?((?:\[[^\]]+\]|[^:[\]]+):\d{1,5})$/;

/**
 * One `--route`:
 *   NAME=reverse:PORT:HOST:PORT   the server listens on PORT (0: it picks) and the client connects to HOST:PORT
 *   NAME=forward:[HOST:]PORT:HOST:PORT   the client listens on [HOST:]PORT and the server connects to HOST:PORT
 * followed by any of `,proxy=v1|v2`, `,max=N` (concurrent connections).
 */
export function parseRoute(spec: string, flag: string): RouteOptions {
  const fail = (detail: string): never => {
    throw new InvalidOptionsError(flag, `bad route ${JSON.stringify(spec)}: ${detail}; expected NAME=reverse:PORT:HOST:PORT or NAME=forward:[HOST:]PORT:HOST:PORT`);
  };
  const [main = '', ...extras] = spec.split(',');
  const eq = main.indexOf('=');
  if (eq < 0) fail('no NAME=');
  const name = main.slice(0, eq);
  if (!ROUTE_NAME.test(name)) fail('a name is 1 to 64 characters of A-Z a-z 0-9 . _ -');
  const rest = main.slice(eq + 1);
  const colon = rest.indexOf(':');
  const direction = colon < 0 ? rest : rest.slice(0, colon);
  if (direction !== 'reverse' && direction !== 'forward') fail(`the direction is reverse or forward, not ${JSON.stringify(direction)}`);
  const match = TARGET_AT_END.exec(rest.slice(colon + 1));
  if (!match || match[1] === '') fail('a port (or listen address) and a target HOST:PORT are needed');
  const route: RouteOptions = { name, direction: direction as 'reverse' | 'forward', target: match![2]! };
  try {
    route.target = parseHostPort(match![2], 'target');
  } catch (error) {
    fail(`the target ${JSON.stringify(match![2])} is not HOST:PORT with a port from 1 to 65535`);
  }
  const local = match![1]!;
  if (direction === 'reverse') {
    if (!/^\d{1,5}$/.test(local) || Number(local) > 65_535) fail(`the server port ${JSON.stringify(local)} is not a port from 0 to 65535`);
    route.serverPort = Number(local);
  } else {
    try {
      // Port 0 (this side picks a free port and prints it) stays 0 here; the client command picks the port at each start (pickListenPorts in client.ts).
      const zero = /^(?:(.+):)?0$/.exec(local);
      const listen = zero ? { ...parseHostPort(`${zero[1] ?? '127.0.0.1'}:1`, 'listen'), port: 0 } : parseHostPort(local, 'listen', '127.0.0.1');
      route.listen = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
    } catch {
      fail(`the listen address ${JSON.stringify(local)} is not [HOST:]PORT (port 0: a free port, printed once the route is up)`);
    }
  }
  for (const extra of extras) {
    const [key, value] = extra.split('=');
    if (key === 'proxy' && (value === 'v1' || value === 'v2')) route.proxyProtocol = value;
    else if (key === 'max' && value !== undefined && /^\d{1,9}$/.test(value)) route.maxConnections = Number(value);
    else fail(`unknown setting ${JSON.stringify(extra)} (known: proxy=v1|v2, max=N)`);
  }
  return route;
}

/** A forward route's listen address when it asks for port 0 (this side picks a free port); undefined otherwise. */
export function portZeroListen(route: RouteOptions): HostPort | undefined {
  if (route.direction !== 'forward' || typeof route.listen !== 'string') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):0$/.exec(route.listen);
  return match ? { host: match[1] ?? match[2]!, port: 0 } : undefined;
}

/** `routes` with each port-0 listen address given the port `portOf` returns (the library's routes take ports from 1). */
export function withListenPorts(routes: readonly RouteOptions[], portOf: (route: RouteOptions, index: number) => number): RouteOptions[] {
  return routes.map((route, index) => {
    const zero = portZeroListen(route);
    if (!zero) return route;
    return { ...route, listen: `${zero.host.includes(':') ? `[${zero.host}]` : zero.host}:${portOf(route, index)}` };
  });
}

/** Checks the --name label: the control hello carries it in at most 255 bytes. */
export function readName(values: Values): string {
  const name = values.string('name') ?? '';
  if (Buffer.byteLength(name, 'utf8') > 255 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidOptionsError(values.from('name'), `got ${Buffer.byteLength(name, 'utf8')} bytes, expected a label of at most 255 bytes without control characters`);
  }
  return name;
}

/** A host to bind or to name: an IP address or a host name, no spaces. */
export function readHost(values: Values, name: string, fallback: string): string {
  const host = values.string(name) ?? fallback;
  if (net.isIP(host) === 0 && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(host)) {
    throw new InvalidOptionsError(values.from(name), `got ${JSON.stringify(host)}, expected an IP address or a host name`);
  }
  return host;
}

/** --allow patterns: route names (A-Z a-z 0-9 . _ -) with * as a wildcard. */
export function readAllow(values: Values): string[] {
  const allow = values.list('allow');
  const bad = allow.find((pattern) => !/^[A-Za-z0-9._*-]{1,64}$/.test(pattern));
  if (bad !== undefined) throw new InvalidOptionsError(values.from('allow'), `got ${JSON.stringify(bad)}, expected route names of A-Z a-z 0-9 . _ - (1 to 64), * matching any characters`);
  return allow;
}

/** The help text of a command, from its flag table. */
export function helpText(command: 'server' | 'client', specs: Record<string, FlagSpec>, intro: string, tail: string): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const flag = `  --${name}${spec.type === 'string' ? ' <value>' : ''}`;
    return `${flag.padEnd(28)}${spec.env ? `[${spec.env}] ` : ''}${spec.help}`;
  });
  return `Usage: nestjs-tunnel-pool ${command} [flags]\n\n${intro}\n\nFlags (a flag wins over its environment variable):\n${rows.join('\n')}\n${tail}`;
}
