import { normalizeAddress, type AddressFilter } from './ip-filter.js';
import type { Refusal } from './transport.js';

/** The limits a `SlotGate` enforces. */
export interface SlotLimits {
  /** Slots held at once, all peers together. */
  readonly total: number;
  /** Slots held at once by one peer address. */
  readonly perPeer: number;
  /** Slots held at once on one connection (several pooled streams share one on HTTP/2). */
  readonly perConnection: number;
}

/**
 * The per-peer admission of a server pool, written once for every
 * transport: the peer address check and the handshake slots (in total, per
 * peer address, per connection), each refusal with its own typed reason.
 * Transports reach it through `ServerAcceptor.connecting` (at accept, before
 * TLS) and `ServerAcceptor.admit` (per pooled stream). The HTTP/2 transport
 * counts its sessions with one too.
 *
 * A slot is held from the moment it is taken until its release, whichever
 * way the handshake ends; release is idempotent.
 */
export class SlotGate {
  private total = 0;
  private readonly perPeer = new Map<string, number>();
  private readonly perConnection = new WeakMap<object, number>();

  constructor(
    private readonly limits: SlotLimits,
    private readonly filter: AddressFilter = () => true,
  ) {}

  /** Slots held, all peers together. */
  get size(): number {
    return this.total;
  }

  /** Peer addresses holding at least one slot. */
  get peers(): number {
    return this.perPeer.size;
  }

  /** Whether the address is served at all (`allowedIps`). */
  allows(remoteAddress: string | undefined): boolean {
    return this.filter(remoteAddress);
  }

  /**
   * Takes one handshake slot for a connection (or a stream on it) from
   * `remoteAddress`, or says why not. Checks the address first when
   * `checkAddress` (a refused address takes nothing), then the total, the
   * peer's and the connection's share. `null`: the peer is not known yet
   * (a proxy in front names it later); the slot counts in the total only.
   */
  take(remoteAddress: string | undefined | null, connection: object | undefined, checkAddress: boolean): (() => void) | Refusal {
    if (checkAddress && !this.filter(remoteAddress ?? undefined)) return 'ip';
    if (this.total >= this.limits.total) return 'busy';
    const peer = remoteAddress === null ? undefined : peerKey(remoteAddress);
    const fromPeer = peer === undefined ? 0 : (this.perPeer.get(peer) ?? 0);
    if (peer !== undefined && fromPeer >= this.limits.perPeer) return 'peer-busy';
    const onConnection = connection === undefined ? 0 : (this.perConnection.get(connection) ?? 0);
    if (connection !== undefined && onConnection >= this.limits.perConnection) return 'connection-busy';
    this.total++;
    if (peer !== undefined) this.perPeer.set(peer, fromPeer + 1);
    if (connection !== undefined) this.perConnection.set(connection, onConnection + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      if (peer !== undefined) {
        const left = (this.perPeer.get(peer) ?? 1) - 1;
        if (left > 0) this.perPeer.set(peer, left);
        else this.perPeer.delete(peer);
      }
      if (connection !== undefined) this.perConnection.set(connection, (this.perConnection.get(connection) ?? 1) - 1);
    };
  }
}

/** One key per peer: IPv4-mapped IPv6 counts as its IPv4 address; an unknown address is one peer of its own. */
function peerKey(remoteAddress: string | undefined): string {
  return remoteAddress === undefined ? '?' : normalizeAddress(remoteAddress);
}
