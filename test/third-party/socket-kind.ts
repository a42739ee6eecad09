/**
 * The third-party socket transport as a row of the kinds table
 * (test/support/kinds.ts), so the conformance suite runs the same describe
 * over it as over the built-in kinds. Its pooled streams are plain sockets;
 * a refusal is a bare close before the ID line.
 */
import { expect } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import { socketEcho } from '../support/echo-peers.js';
import type { KindSpec } from '../support/kinds.js';
import { socketTransport } from './socket-transport.js';

export const socketKind: KindSpec<'socket'> = {
  name: 'socket',
  tls: false,
  halfClose: true,
  serverHandshake: false,
  clientHandshakeTimeouts: ['handshakeTimeout'],
  firstIdZero: true,
  zeroFirst: {},
  refusedIp: { code: 'POOL_ERR_REFUSED' },
  refusedFull: { code: 'POOL_ERR_REFUSED' },
  expectStreams: (client, server) => {
    for (const stream of [client, server]) {
      expect(stream).toBeInstanceOf(net.Socket);
      expect(stream).not.toBeInstanceOf(tls.TLSSocket);
    }
  },
  echoPeer: () => socketEcho(false),
  server: { transport: socketTransport },
  client: { transport: socketTransport },
};
