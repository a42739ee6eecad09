import { dialableHost, type SampleConfig } from './config.js';

export interface Endpoint {
  host: string;
  port: number;
}

export type EndpointKind = 'pool' | 'control' | 'target';

/**
 * Where each side dials. A listener of this process registers its bound
 * port (from its constructor, before anything dials), so with `both` on
 * ephemeral ports the exit finds the entry; otherwise the configured port of
 * the server side (`TUNNEL_SERVER`) or of the local target is used.
 */
export class TunnelEndpoints {
  private readonly bound = new Map<EndpointKind, () => number | undefined>();

  constructor(private readonly config: SampleConfig) {}

  register(kind: EndpointKind, port: () => number | undefined): void {
    this.bound.set(kind, port);
  }

  dial(kind: EndpointKind): Endpoint {
    const port = this.bound.get(kind)?.() ?? this.config.ports[kind];
    const host = kind === 'target' ? dialableHost(this.config.host) : this.config.server;
    return { host, port };
  }
}

export function formatEndpoint({ host, port }: Endpoint): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
