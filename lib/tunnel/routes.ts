/**
 * Routes: what a tunnel client serves (its options, validated), what it
 * announces in the control hello, and the server's allowlist that decides,
 * route by route, what it opens, with an explicit reason for each refusal.
 * No sockets here: the tunnel server and client (lib/tunnel) act on the
 * answers.
 */
import net from 'node:net';
import { InvalidOptionsError } from '../core/errors.js';
import type { ClientIdentity } from '../core/stream-identity.js';
import { OptionReader, show } from '../core/validate.js';
import type { AnnouncedRoute, RouteAnswer } from './control/messages.js';
import type { Direction, RouteRefusal } from './control/wire.js';

export type { Direction, RouteRefusal } from './control/wire.js';

/** A host and a port. */
export interface HostPort {
  host: string;
  port: number;
}

/** A route as the application writes it. */
export interface RouteOptions {
  /** 1 to 64 characters of `A-Z a-z 0-9 . _ -`, unique among the client's routes. */
  name: string;
  /**
   * 'reverse' (default): the server listens on `serverPort` and forwards to
   * `target`, reached from the client (expose a service behind NAT).
   * 'forward': the client listens on `listen` and forwards to `target`,
   * reached from the server.
   */
  direction?: Direction;
  /** reverse: the port wanted on the server (0 or absent: the server picks). Not for forward. */
  serverPort?: number;
  /** forward: where the client listens, `"host:port"`, `"port"` or a port number (host 127.0.0.1). Not for reverse. */
  listen?: string | number;
  /** Where connections go: `"host:port"` (IPv6 as `[::1]:80`) or `{ host, port }`. */
  target: string | HostPort;
  /** A PROXY protocol header towards the target, so it sees the public peer's address (default: none). */
  proxyProtocol?: 'v1' | 'v2' | false;
  /** Tunnelled connections open at once on this route (default 0: no limit). */
  maxConnections?: number;
  /** How long connecting to the target may take (ms, default 10000). */
  connectTimeout?: number;
}

/** A validated route. */
export interface Route {
  name: string;
  direction: Direction;
  /** reverse: the port wanted on the server (0: the server picks); forward: 0. */
  serverPort: number;
  /** forward: where the client listens; reverse: undefined. */
  listen: HostPort | undefined;
  target: HostPort;
  proxyProtocol: 'none' | 'v1' | 'v2';
  /** 0: no limit. */
  maxConnections: number;
  connectTimeout: number;
}

export const ROUTE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ROUTE_KEYS = ['name', 'direction', 'serverPort', 'listen', 'target', 'proxyProtocol', 'maxConnections', 'connectTimeout'] as const;

/** At most this many routes per client (the hello carries them all in one frame). */
export const MAX_ROUTES = 256;

/**
 * Parses `"host:port"` (`"[v6]:port"` for IPv6), `"port"` or a port number
 * (host `defaultHost`), or `{ host, port }`. Throws `InvalidOptionsError`
 * naming `option`.
 */
export function parseHostPort(value: unknown, option: string, defaultHost?: string): HostPort {
  const bad = (detail: string): never => {
    throw new InvalidOptionsError(option, `got ${show(value)}, expected ${detail}`);
  };
  let host: string | undefined;
  let port: unknown;
  if (typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))) {
    if (defaultHost === undefined) bad('"host:port" or { host, port }');
    host = defaultHost;
    port = Number(value);
  } else if (typeof value === 'string') {
    const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
    if (!match) bad('"host:port" (IPv6 as "[::1]:port")');
    host = match![1] ?? match![2];
    port = Number(match![3]);
    if (match![1] !== undefined && !net.isIPv6(match![1])) bad('an IPv6 address between [ and ]');
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const read = new OptionReader(value as Record<string, unknown>, option);
    host = read.string('host');
    port = read.raw('port');
    read.rejectUnknown();
    if (host === undefined) bad('{ host, port } with a host');
  } else {
    bad('"host:port" or { host, port }');
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) bad('a port from 1 to 65535');
  if (Buffer.byteLength(host!, 'utf8') > 255 || /\s/.test(host!)) bad('a host name of at most 255 bytes, without spaces');
  return { host: host!, port: port as number };
}

/** Validates one route; `option` names it in errors (`routes[2]`). */
export function validateRoute(value: unknown, option = 'route'): Route {
  const read = new OptionReader(value as Record<string, unknown>, option);
  const name = read.string('name');
  if (name === undefined || !ROUTE_NAME.test(name)) read.fail('name', '1 to 64 characters of A-Z a-z 0-9 . _ -');
  const direction = read.oneOf('direction', ['reverse', 'forward'] as const, 'reverse');
  if (read.raw('target') === undefined) read.fail('target', '"host:port" or { host, port }: where the connections go');
  const target = parseHostPort(read.raw('target'), read.name('target'));
  let serverPort = 0;
  let listen: HostPort | undefined;
  if (direction === 'reverse') {
    if (read.raw('listen') !== undefined) read.fail('listen', 'nothing on a reverse route (the server listens: set serverPort), or direction: "forward"');
    serverPort = read.int('serverPort', 0, 0, 65_535);
  } else {
    if (read.raw('serverPort') !== undefined) read.fail('serverPort', 'nothing on a forward route (the client listens: set listen), or direction: "reverse"');
    if (read.raw('listen') === undefined) read.fail('listen', 'where the client listens on a forward route: "host:port", "port" or a port number');
    listen = parseHostPort(read.raw('listen'), read.name('listen'), '127.0.0.1');
  }
  const proxy = read.raw('proxyProtocol');
  if (proxy !== undefined && proxy !== false && proxy !== 'v1' && proxy !== 'v2') read.fail('proxyProtocol', '"v1", "v2" or false');
  const route: Route = {
    name: name!,
    direction,
    serverPort,
    listen,
    target,
    proxyProtocol: proxy === 'v1' || proxy === 'v2' ? proxy : 'none',
    maxConnections: read.int('maxConnections', 0, 0, 0xffff_ffff),
    connectTimeout: read.int('connectTimeout', 10_000, 1, 0xffff_ffff),
  };
  read.accept(...ROUTE_KEYS);
  read.rejectUnknown();
  return route;
}

/** Validates a client's routes: each one, unique names, no server port asked twice, no listen address used twice. */
export function validateRoutes(value: unknown, option = 'routes'): Route[] {
  if (!Array.isArray(value)) throw new InvalidOptionsError(option, `got ${show(value)}, expected an array of routes`);
  if (value.length > MAX_ROUTES) throw new InvalidOptionsError(option, `got ${value.length} routes, at most ${MAX_ROUTES} are allowed`);
  const routes = value.map((entry, i) => validateRoute(entry, `${option}[${i}]`));
  const seen = new Map<string, number>();
  routes.forEach((route, i) => {
    const keys = [`name ${route.name}`];
    if (route.serverPort !== 0) keys.push(`serverPort ${route.serverPort}`);
    if (route.listen) keys.push(`listen ${route.listen.host}:${route.listen.port}`);
    for (const key of keys) {
      const first = seen.get(key);
      if (first !== undefined) {
        const field = key.split(' ')[0]!;
        throw new InvalidOptionsError(`${option}[${i}].${field}`, `${key.slice(field.length + 1)} is already used by ${option}[${first}]; each route needs its own`);
      }
      seen.set(key, i);
    }
  });
  return routes;
}

/** What the client tells the server about a route. A reverse route's target stays private to the client. */
export function announceRoute(route: Route): AnnouncedRoute {
  const reverse = route.direction === 'reverse';
  return {
    name: route.name,
    direction: route.direction,
    serverPort: route.serverPort,
    targetHost: reverse ? '' : route.target.host,
    targetPort: reverse ? 0 : route.target.port,
    proxyProtocol: route.proxyProtocol,
    maxConnections: route.maxConnections,
    connectTimeout: route.connectTimeout,
  };
}

// ---- the server's allowlist ----

/** A range of ports, both ends included. */
export interface PortRange {
  from: number;
  to: number;
}

/** One rule of the server's allowlist, as the application writes it. */
export interface AllowRuleOptions {
  /**
   * Who the rule is for: `'*'` (anyone, authenticated or not), `'anonymous'`
   * (a stream without authentication), `'key:<key id>'`, `'cert:<common
   * name>'`, `'sha256:<certificate fingerprint AB:CD:…>'`. Default `'*'`.
   */
  clients?: '*' | string | readonly string[];
  /** Route names, exact or with `*` wildcards (`'web-*'`). Default `'*'`. */
  names?: '*' | string | readonly string[];
  /** Directions this rule allows (default both). */
  directions?: readonly Direction[];
  /**
   * reverse: ports the server may listen on for these routes: numbers,
   * `'from-to'` strings or `{ from, to }`. Default: none (a reverse route
   * needs a rule with ports). A route asking for port 0 gets one picked in
   * these ranges.
   */
  ports?: readonly (number | string | PortRange)[];
  /**
   * forward: targets the server may connect to for these routes:
   * `'host:port'`, `'host:from-to'`, `'host:*'`, `'*:port'`. Default: none
   * (forward routes make the server dial; nothing is allowed unless named).
   */
  targets?: readonly string[];
}

interface AllowRule {
  clients: readonly string[] | '*';
  names: readonly RegExp[];
  directions: ReadonlySet<Direction>;
  ports: readonly PortRange[];
  targets: readonly { host: string | '*'; ports: PortRange | '*' }[];
}

/** The allowlist's verdict on one route. */
export type RouteVerdict =
  | { allowed: true; rule: number; /** reverse: the ranges a port may be picked in when the route asks for 0. */ ports: readonly PortRange[] }
  | { allowed: false; status: RouteRefusal; reason: string };

export interface AllowlistOptions {
  rules: readonly AllowRuleOptions[];
  /** Routes one client may announce (default 64). */
  maxRoutes?: number;
}

/** The label stats, logs and allowlist rules use for a client identity. */
export function clientLabel(identity: ClientIdentity | undefined): string {
  if (identity === undefined) return 'anonymous';
  if (identity.kind === 'key') return `key:${identity.id}`;
  return identity.commonName !== undefined ? `cert:${identity.commonName}` : `sha256:${identity.fingerprint}`;
}

/** Every label an identity answers to in a rule's `clients`. */
function labelsOf(identity: ClientIdentity | undefined): string[] {
  if (identity === undefined) return ['anonymous'];
  if (identity.kind === 'key') return [`key:${identity.id}`];
  const labels = [`sha256:${identity.fingerprint.toUpperCase()}`];
  if (identity.commonName !== undefined) labels.push(`cert:${identity.commonName}`);
  return labels;
}

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function portRange(value: unknown, option: string): PortRange {
  const fail = (): never => {
    throw new InvalidOptionsError(option, `got ${show(value)}, expected a port (1-65535), "from-to" or { from, to }`);
  };
  let from: number;
  let to: number;
  if (typeof value === 'number') [from, to] = [value, value];
  else if (typeof value === 'string' && /^\d{1,5}(-\d{1,5})?$/.test(value)) {
    const [a, b] = value.split('-');
    [from, to] = [Number(a), Number(b ?? a)];
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const read = new OptionReader(value as Record<string, unknown>, option);
    from = read.int('from', 0, 1, 65_535);
    to = read.int('to', 0, 1, 65_535);
    read.rejectUnknown();
  } else return fail();
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to > 65_535 || from > to) fail();
  return { from, to };
}

function list(value: unknown, option: string): readonly string[] | '*' {
  if (value === undefined || value === '*') return '*';
  const items = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(items) || items.length === 0 || !items.every((item) => typeof item === 'string' && item.length > 0)) {
    throw new InvalidOptionsError(option, `got ${show(value)}, expected '*', a string or a non-empty array of strings`);
  }
  return items.includes('*') ? '*' : items;
}

function validateRule(value: unknown, option: string): AllowRule {
  const read = new OptionReader(value as Record<string, unknown>, option);
  const clients = list(read.raw('clients'), read.name('clients'));
  if (clients !== '*') {
    clients.forEach((client, i) => {
      if (client !== 'anonymous' && !/^(key|cert|sha256):./.test(client)) {
        throw new InvalidOptionsError(`${read.name('clients')}[${i}]`, `got ${show(client)}, expected '*', 'anonymous', 'key:<id>', 'cert:<common name>' or 'sha256:<fingerprint>'`);
      }
    });
  }
  // Fingerprints compare in upper case, as Node prints them.
  const normalized = clients === '*' ? clients : clients.map((client) => (client.startsWith('sha256:') ? `sha256:${client.slice(7).toUpperCase()}` : client));
  const names = list(read.raw('names'), read.name('names'));
  const directionsRaw = read.raw('directions');
  let directions: Direction[] = ['reverse', 'forward'];
  if (directionsRaw !== undefined) {
    if (!Array.isArray(directionsRaw) || directionsRaw.length === 0 || !directionsRaw.every((d) => d === 'reverse' || d === 'forward')) read.fail('directions', 'a non-empty array of "reverse" and "forward"');
    directions = directionsRaw as Direction[];
  }
  const portsRaw = read.raw('ports');
  if (portsRaw !== undefined && !Array.isArray(portsRaw)) read.fail('ports', 'an array of ports, "from-to" strings or { from, to }');
  const ports = ((portsRaw ?? []) as unknown[]).map((entry, i) => portRange(entry, `${read.name('ports')}[${i}]`));
  const targetsRaw = read.raw('targets');
  if (targetsRaw !== undefined && !Array.isArray(targetsRaw)) read.fail('targets', "an array of 'host:port', 'host:from-to', 'host:*' or '*:port'");
  const targets = ((targetsRaw ?? []) as unknown[]).map((entry, i) => {
    const at = `${read.name('targets')}[${i}]`;
    const match = typeof entry === 'string' ? /^(?:\[([^\]]+)\]|([^:[\]]+)):(\*|\d{1,5}(?:-\d{1,5})?)$/.exec(entry) : null;
    if (!match) throw new InvalidOptionsError(at, `got ${show(entry)}, expected 'host:port', 'host:from-to', 'host:*' or '*:port'`);
    return { host: (match[1] ?? match[2]!).toLowerCase(), ports: match[3] === '*' ? ('*' as const) : portRange(match[3], at) };
  });
  read.rejectUnknown();
  return { clients: normalized, names: names === '*' ? [/^/] : names.map(glob), directions: new Set(directions), ports, targets };
}

/** How far a rule got with a route, to report the most telling refusal. */
const PROGRESS: Record<RouteRefusal, number> = {
  'not-allowed': 0,
  'direction-not-allowed': 1,
  'port-not-allowed': 2,
  'target-not-allowed': 2,
  invalid: 0,
  duplicate: 0,
  'port-in-use': 0,
  'too-many-routes': 0,
  other: 0,
};

/**
 * The server's allowlist: which client may serve which routes, on which
 * ports, towards which targets. Rules are alternatives: a route is allowed
 * when one rule for its client names it and allows its direction and its
 * port (reverse) or target (forward). A refused route gets the most
 * telling reason among the rules that got furthest with it.
 */
export class RouteAllowlist {
  private readonly rules: readonly AllowRule[];
  readonly maxRoutes: number;

  constructor(options: AllowlistOptions, option = 'allow') {
    const read = new OptionReader(options as unknown as Record<string, unknown>, option);
    const rules = read.raw('rules');
    if (!Array.isArray(rules)) read.fail('rules', 'an array of rules ({ clients, names, directions, ports, targets })');
    this.rules = (rules as unknown[]).map((rule, i) => validateRule(rule, `${read.name('rules')}[${i}]`));
    this.maxRoutes = read.int('maxRoutes', 64, 1, MAX_ROUTES);
    read.rejectUnknown();
  }

  /** The verdict on one announced route for `client` (the identity proved on its control stream). */
  check(client: ClientIdentity | undefined, route: AnnouncedRoute): RouteVerdict {
    const who = clientLabel(client);
    if (!ROUTE_NAME.test(route.name)) return { allowed: false, status: 'invalid', reason: `route name ${JSON.stringify(route.name)} is not 1 to 64 characters of A-Z a-z 0-9 . _ -` };
    if (route.direction === 'forward' && (route.targetHost === '' || route.targetPort === 0 || route.serverPort !== 0)) {
      return { allowed: false, status: 'invalid', reason: `forward route ${route.name} must name a target and ask for no server port` };
    }
    if (route.direction === 'reverse' && (route.targetHost !== '' || route.targetPort !== 0)) {
      return { allowed: false, status: 'invalid', reason: `reverse route ${route.name} must not name a target (it is the client's)` };
    }
    const labels = labelsOf(client);
    let best: { status: RouteRefusal; reason: string } = { status: 'not-allowed', reason: `no allowlist rule lets client ${who} serve route ${route.name}` };
    for (const [index, rule] of this.rules.entries()) {
      if (rule.clients !== '*' && !labels.some((label) => (rule.clients as readonly string[]).includes(label))) continue;
      if (!rule.names.some((name) => name.test(route.name))) continue;
      const refuse = (status: RouteRefusal, reason: string): void => {
        if (PROGRESS[status] > PROGRESS[best.status]) best = { status, reason };
      };
      if (!rule.directions.has(route.direction)) {
        refuse('direction-not-allowed', `route ${route.name} of client ${who}: direction ${route.direction} is not allowed`);
        continue;
      }
      if (route.direction === 'reverse') {
        if (rule.ports.length === 0) {
          refuse('port-not-allowed', `route ${route.name} of client ${who}: no server ports are allowed for it`);
          continue;
        }
        if (route.serverPort !== 0 && !rule.ports.some((range) => route.serverPort >= range.from && route.serverPort <= range.to)) {
          refuse('port-not-allowed', `route ${route.name} of client ${who}: server port ${route.serverPort} is outside the allowed ${rule.ports.map(showRange).join(', ')}`);
          continue;
        }
        return { allowed: true, rule: index, ports: rule.ports };
      }
      const host = route.targetHost.toLowerCase();
      const target = rule.targets.find(
        (t) => (t.host === '*' || t.host === host) && (t.ports === '*' || (route.targetPort >= t.ports.from && route.targetPort <= t.ports.to)),
      );
      if (!target) {
        refuse('target-not-allowed', `route ${route.name} of client ${who}: target ${route.targetHost}:${route.targetPort} is not among the allowed targets`);
        continue;
      }
      return { allowed: true, rule: index, ports: [] };
    }
    return { allowed: false, ...best };
  }

  /**
   * The answer to every route of a hello: duplicates within the hello and
   * routes past `maxRoutes` refused, the rest by `check`; `taken` lets the
   * server refuse what another client already holds ('duplicate',
   * 'port-in-use'). An accepted route's port is filled in later, when the
   * server has bound it (0 here).
   */
  answer(client: ClientIdentity | undefined, routes: readonly AnnouncedRoute[], taken?: (route: AnnouncedRoute) => { status: RouteRefusal; reason: string } | undefined): RouteAnswer[] {
    const names = new Set<string>();
    return routes.map((route, i): RouteAnswer => {
      const refuse = (status: RouteRefusal, text: string): RouteAnswer => ({ name: route.name, status, port: 0, text });
      if (i >= this.maxRoutes) return refuse('too-many-routes', `a client may announce at most ${this.maxRoutes} routes`);
      if (names.has(route.name)) return refuse('duplicate', `route ${route.name} is announced twice`);
      names.add(route.name);
      const verdict = this.check(client, route);
      if (!verdict.allowed) return refuse(verdict.status, verdict.reason);
      const conflict = taken?.(route);
      if (conflict) return refuse(conflict.status, conflict.reason);
      return { name: route.name, status: 'accepted', port: 0, text: '' };
    });
  }
}

function showRange(range: PortRange): string {
  return range.from === range.to ? String(range.from) : `${range.from}-${range.to}`;
}
