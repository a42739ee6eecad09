/**
 * What the tunnel end-to-end specs share: a TunnelServer over a tcp
 * ServerPool with two shared keys, TunnelClients over tcp ClientPools, an
 * HTTP target and a plain HTTP GET. Everything is closed by the spec's
 * test scope.
 */
import http from 'node:http';
import net from 'node:net';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { LocalControlRouter, type RoutedMessage } from '../../lib/tunnel/router.js';
import type { AllowRuleOptions, RouteOptions } from '../../lib/tunnel/routes.js';
import { TunnelClient, type TunnelClientOptions } from '../../lib/tunnel/tunnel-client.js';
import { TunnelServer, type TunnelServerOptions } from '../../lib/tunnel/tunnel-server.js';
import { kindSpec, type Kind } from '../support/kinds.js';
import type { TestScope } from '../support/scope.js';

export const KEYS = { 'site-a': 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU', 'site-b': 'q2W9e8R7t6Y5u4I3o2P1a0SdFgHjKlZx' } as const;
export type Site = keyof typeof KEYS;

/** The transports a tunnel spec may run over: every kind of the one table (test/support/kinds.ts), TLS with the test certificate. */
export type TunnelKind = Kind;
const kindOf = new WeakMap<TunnelServer, TunnelKind>();
const serverExtra = (kind: TunnelKind): Record<string, unknown> => ({ ...kindSpec(kind).server });
const clientExtra = (kind: TunnelKind): Record<string, unknown> => ({ ...kindSpec(kind).client });

export async function startTunnelServer(scope: TestScope, rules: AllowRuleOptions[], kind: TunnelKind = 'tcp', extra: Partial<TunnelServerOptions> = {}): Promise<TunnelServer> {
  const pool: ServerPool = createServerPool({
    ...serverExtra(kind),
    host: '127.0.0.1',
    port: 0,
    maxCap: 64,
    closeTimeout: 2000,
    auth: { key: Object.entries(KEYS).map(([id, key]) => ({ id, key })) },
  } as ServerPoolConfig);
  const server = new TunnelServer({ pool, allow: { rules }, closeTimeout: 2000, ...extra });
  kindOf.set(server, kind);
  scope.defer(() => pool.close());
  scope.defer(() => server.close());
  await server.start();
  return server;
}

export function clientPool(scope: TestScope, server: TunnelServer, site: Site): ClientPool {
  const kind = kindOf.get(server) ?? 'tcp';
  const pool = createClientPool({
    ...clientExtra(kind),
    address: `127.0.0.1:${server.pool.address()!.port}`,
    auth: { key: KEYS[site] },
    minCap: 4,
    maxCap: 8,
    minIvl: 50,
    maxIvl: 100,
    closeTimeout: 2000,
  } as ClientPoolConfig);
  scope.defer(() => pool.close());
  return pool;
}

export function startTunnelClient(scope: TestScope, server: TunnelServer, site: Site, routes: RouteOptions[], extra: Partial<TunnelClientOptions> = {}): TunnelClient {
  const client = new TunnelClient({ pool: clientPool(scope, server, site), routes, closeTimeout: 2000, ...extra });
  scope.defer(() => client.close());
  return client;
}

export async function httpTarget(scope: TestScope, body: string): Promise<number> {
  const server = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`${body} ${req.method} ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

export function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * The in-process control router, but while held (`hold()` … `release()`)
 * the server's OPENs reach the client only at `release()`. `tell`: when the
 * server learns its OPEN went: 'when delivered' (it waits too) or 'at once'
 * (it goes on as if the client had it).
 */
export class HoldingRouter extends LocalControlRouter {
  private gate: Promise<void> | undefined;
  private open!: () => void;
  readonly held: RoutedMessage[] = [];
  constructor(private readonly tell: 'when delivered' | 'at once' = 'when delivered') {
    super();
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.gate = undefined;
    this.open();
  }
  override async toClient(client: string, message: RoutedMessage): Promise<boolean> {
    const gate = this.gate;
    if (message.type !== 'open' || !gate) return super.toClient(client, message);
    this.held.push(message);
    const delivered = gate.then(() => super.toClient(client, message));
    return this.tell === 'at once' ? true : delivered;
  }
}
