/**
 * Peers that are not pools, on 127.0.0.1:0, echoing every stream: the far
 * end of a single-mode client of each transport, and a raw HTTP/2 server a
 * test can make misbehave.
 */
import http from 'node:http';
import type { ServerHttp2Session } from 'node:http2';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocketServer } from 'ws';
import { testCertificate } from './certificate.js';

export interface EchoPeer {
  port: number;
  close(): Promise<void>;
}

async function listening(server: net.Server | http2.Http2SecureServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function closing(server: net.Server, sockets: Set<Duplex>): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
}

/** A net server, or a TLS 1.3 one when `secure`, piping every connection back to itself. */
export async function socketEcho(secure: boolean): Promise<EchoPeer> {
  const sockets = new Set<Duplex>();
  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.pipe(socket);
  };
  const { key, cert } = testCertificate();
  const server = secure ? tls.createServer({ key, cert, minVersion: 'TLSv1.3' }, onSocket) : net.createServer(onSocket);
  return { port: await listening(server), close: closing(server, sockets) };
}

/** A `ws` server sending every message back; over https (TLS 1.3) when `secure`. */
export async function wsEcho(secure: boolean): Promise<EchoPeer> {
  const { key, cert } = testCertificate();
  const sockets = new Set<Duplex>();
  const web = secure ? https.createServer({ key, cert, minVersion: 'TLSv1.3' }) : http.createServer();
  web.on('connection', (socket: net.Socket) => sockets.add(socket));
  const wss = new WebSocketServer({ server: web, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.on('message', (data) => ws.send(data as Buffer));
  });
  const port = await listening(web);
  const closeWeb = closing(web, sockets);
  return {
    port,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeWeb();
    },
  };
}

/**
 * A raw `node:http2` server speaking the nph2 server side by hand (IDs
 * 00000001, 00000002... in order), echoing what it gets: a single-mode
 * peer, or a peer the test can make misbehave (GOAWAY with a chosen last
 * stream...).
 */
export interface RawH2Server extends EchoPeer {
  sessions: ServerHttp2Session[];
  /** Stream ID on the wire by pooled ID. */
  streamIds: Map<string, number>;
}

export async function startRawH2Server(): Promise<RawH2Server> {
  const { key, cert } = testCertificate();
  const server = http2.createSecureServer({ key, cert, allowHTTP1: false });
  const sessions: ServerHttp2Session[] = [];
  const streamIds = new Map<string, number>();
  let next = 1;
  server.on('session', (session) => {
    sessions.push(session);
    session.on('error', () => undefined);
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.once('data', (first: Buffer) => {
      const id = (next++).toString(16).padStart(8, '0');
      streamIds.set(id, stream.id!);
      stream.respond({ ':status': 200 });
      stream.write(Buffer.from(id, 'hex'));
      if (first.length > 1) stream.write(first.subarray(1));
      stream.pipe(stream);
    });
  });
  return {
    port: await listening(server),
    sessions,
    streamIds,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}
