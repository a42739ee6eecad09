import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1:0 that plays a middlebox which terminates TCP
 * (a NAT, a firewall, a proxy whose own kernel answers): it can stop
 * forwarding a connection without closing it. A silent connection drops
 * every byte both ways and passes on no FIN and no close; its sockets stay
 * open, so each end still believes in it and keep-alive probes are answered
 * by the proxy's kernel. New connections are forwarded as usual.
 */
export interface SilentProxy {
  port: number;
  /** Sets the target (e.g. a server pool's port, as `startPair`'s `via` gives it) and returns the proxy's port. */
  to(targetPort: number): number;
  /** Connections made through it so far. */
  readonly connections: number;
  /** Connections that went silent so far. */
  readonly silenced: number;
  /** Every connection open now goes silent; later ones are forwarded. */
  goSilent(): void;
  close(): Promise<void>;
}

export interface SilentProxyOptions {
  /**
   * A connection that carried no byte either way for this many ms goes
   * silent, as a NAT forgets an idle mapping (default: never).
   */
  idleTimeout?: number;
}

interface Pair {
  inbound: net.Socket;
  outbound: net.Socket;
  silent: boolean;
}

export async function startSilentProxy(options: SilentProxyOptions = {}): Promise<SilentProxy> {
  let target: number | undefined;
  let silenced = 0;
  let connections = 0;
  const pairs = new Set<Pair>();
  const silence = (pair: Pair): void => {
    if (pair.silent) return;
    pair.silent = true;
    silenced++;
    pair.inbound.setTimeout(0);
  };
  const forward = (pair: Pair, from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (!pair.silent) to.write(chunk);
    });
    // Pooled streams are half-open: a FIN goes one way only.
    from.on('end', () => {
      if (!pair.silent) to.end();
    });
    from.on('close', () => {
      if (!pair.silent) to.destroy();
    });
  };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (inbound) => {
    inbound.on('error', () => undefined);
    if (target === undefined) return void inbound.destroy();
    connections++;
    const outbound = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true, noDelay: true });
    outbound.on('error', () => undefined);
    const pair: Pair = { inbound, outbound, silent: false };
    pairs.add(pair);
    forward(pair, inbound, outbound);
    forward(pair, outbound, inbound);
    // Bytes either way pass through the inbound socket (read or written), so its timeout is the pair's.
    if (options.idleTimeout !== undefined) inbound.setTimeout(options.idleTimeout, () => silence(pair));
    inbound.on('close', () => {
      if (!pair.silent) pairs.delete(pair);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    to: (targetPort) => {
      target = targetPort;
      return port;
    },
    get connections() {
      return connections;
    },
    get silenced() {
      return silenced;
    },
    goSilent: () => {
      for (const pair of pairs) silence(pair);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.inbound.destroy();
          pair.outbound.destroy();
        }
        pairs.clear();
        server.close(() => resolve());
      }),
  };
}
