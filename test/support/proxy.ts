import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1:0 in front of `targetPort`, so a test can act on
 * the wire under a pool: stop forwarding (a peer that stops answering, as
 * behind a dead NAT), stop reading, or cut every connection with a FIN or
 * a reset.
 */
export interface Proxy {
  port: number;
  /** Connections made through it so far. */
  readonly connections: number;
  /** Existing connections stop forwarding in both directions, closes included; new ones still work. */
  freeze(): void;
  /** Existing connections stop reading in both directions, so writes into them back up. */
  stall(): void;
  /** Closes every connection made so far (a FIN to each end). */
  cut(): void;
  /** Resets every connection made so far (an RST to each end). */
  reset(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const pairs: Array<{ inbound: net.Socket; outbound: net.Socket; frozen: boolean }> = [];
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { inbound, outbound, frozen: false };
    pairs.push(pair);
    inbound.on('error', () => undefined);
    outbound.on('error', () => undefined);
    inbound.on('data', (chunk: Buffer) => {
      if (!pair.frozen) outbound.write(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      if (!pair.frozen) inbound.write(chunk);
    });
    // Frozen, not even a close gets through.
    inbound.on('close', () => pair.frozen || outbound.destroy());
    outbound.on('close', () => pair.frozen || inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const destroyAll = (): void => {
    for (const pair of pairs) {
      pair.inbound.destroy();
      pair.outbound.destroy();
    }
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return pairs.length;
    },
    freeze: () => {
      for (const pair of pairs) pair.frozen = true;
    },
    stall: () => {
      for (const pair of pairs) {
        pair.inbound.pause();
        pair.outbound.pause();
      }
    },
    cut: destroyAll,
    reset: () => {
      for (const pair of pairs) {
        pair.inbound.resetAndDestroy();
        pair.outbound.resetAndDestroy();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        destroyAll();
        server.close(() => resolve());
      }),
  };
}
