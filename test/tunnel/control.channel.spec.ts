import { afterEach, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import net from 'node:net';
import { ControlProtocolError, ControlRefusedError, ControlTimeoutError, ControlVersionError, PoolClosedError } from '../../lib/core/errors.js';
import { ControlChannel, type ControlChannelOptions, type ServerAnswer } from '../../lib/tunnel/control/channel.js';
import { decodeAll } from '../../lib/tunnel/control/decoder.js';
import { encodeMessage, type AnnouncedRoute, type ControlMessage } from '../../lib/tunnel/control/messages.js';
import { CONTROL_PREAMBLE } from '../../lib/tunnel/control/wire.js';
import { eventually } from '../support/net.js';

/** A connected pair of real TCP sockets on 127.0.0.1, half-open like pooled streams. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')]);
  server.close(); // stops listening now; its callback would wait for these two sockets
  opened.push(client, serverSide);
  return [client, serverSide];
}

const opened: net.Socket[] = [];
afterEach(async () => {
  for (const socket of opened.splice(0)) socket.destroy();
});

const ROUTES: AnnouncedRoute[] = [
  { name: 'web', direction: 'reverse', serverPort: 0, targetHost: '', targetPort: 0, proxyProtocol: 'none', maxConnections: 0, connectTimeout: 10_000 },
  { name: 'db', direction: 'forward', serverPort: 0, targetHost: '127.0.0.1', targetPort: 5432, proxyProtocol: 'v1', maxConnections: 4, connectTimeout: 2000 },
];

const ANSWER: ServerAnswer = {
  limits: { pingInterval: 0, livenessTimeout: 0, maxRoutes: 64, maxConnections: 0 },
  routes: [
    { name: 'web', status: 'accepted', port: 18080, text: '' },
    { name: 'db', status: 'target-not-allowed', port: 0, text: 'target 127.0.0.1:5432 is not among the allowed targets' },
  ],
};

const quiet = { pingInterval: 0, livenessTimeout: 0 } satisfies Partial<ControlChannelOptions>;

async function connected(client: Partial<ControlChannelOptions> = {}, server: Partial<ControlChannelOptions> = {}): Promise<{ c: ControlChannel; s: ControlChannel; cs: net.Socket; ss: net.Socket }> {
  const [cs, ss] = await socketPair();
  const c = new ControlChannel(cs, { role: 'client', ...quiet, ...client });
  const s = new ControlChannel(ss, { role: 'server', ...quiet, ...server });
  await Promise.all([c.hello({ name: 'c1', routes: ROUTES }), s.accept(() => ANSWER)]);
  return { c, s, cs, ss };
}

/** Closes both channels and waits for both sockets to be gone. */
async function closeBoth(...channels: ControlChannel[]): Promise<void> {
  await Promise.all(channels.map((channel) => channel.close()));
}

/** Counts of the kinds of handles that keep Node's loop alive. */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

describe('ControlChannel over real TCP sockets', () => {
  it('hello: the server sees the routes and the version, the client gets the answers and the limits', async () => {
    const [cs, ss] = await socketPair();
    const c = new ControlChannel(cs, { role: 'client', ...quiet });
    const s = new ControlChannel(ss, { role: 'server', ...quiet });
    const seen: unknown[] = [];
    const [client, server] = await Promise.all([
      c.hello({ name: 'c1', routes: ROUTES }),
      s.accept((hello, version) => {
        seen.push(hello, version);
        return ANSWER;
      }),
    ]);
    expect(seen).toEqual([{ type: 'hello', minVersion: 1, maxVersion: 1, name: 'c1', routes: ROUTES }, 1]);
    expect(client.version).toBe(1);
    expect(client.ack).toEqual({ type: 'hello-ack', version: 1, ...ANSWER });
    expect(server.hello.routes).toEqual(ROUTES);
    expect([c.version, s.version]).toEqual([1, 1]);
    await closeBoth(c, s);
  });

  it('carries the server\'s WANT hint to the client, its count clamped to 1..65535', async () => {
    const { c, s } = await connected();
    const counts: number[] = [];
    c.on('want', (count) => counts.push(count));
    await s.want(3);
    await s.want(0);
    await s.want(1e6);
    await eventually(() => counts.length === 3, 5000, 'three WANTs');
    expect(counts).toEqual([3, 1, 65_535]);
    await closeBoth(c, s);
  });

  it('carries open, fail, accounting, flush both ways, in order, as typed events', async () => {
    const { c, s } = await connected();
    const got: [string, unknown][] = [];
    for (const channel of [c, s]) {
      const side = channel === c ? 'client' : 'server';
      channel.on('open', (m) => got.push([side, m])).on('fail', (m) => got.push([side, m])).on('accounting', (m) => got.push([side, m])).on('flush', () => got.push([side, 'flush']));
    }
    const peer = { address: '203.0.113.9', port: 51000 };
    // Each message, then the event it makes on the other end (the two directions are two byte streams: no order between them).
    const step = async (send: Promise<void>, on: ControlChannel, event: 'open' | 'fail' | 'accounting' | 'flush'): Promise<void> => {
      const seen = once(on, event);
      await send;
      await seen;
    };
    await step(s.open({ conn: 1, id: 'a1b2c3d4', route: 'web', peer }), c, 'open');
    await step(c.fail({ conn: 1, id: 'a1b2c3d4', reason: 'target-refused', text: 'ECONNREFUSED 127.0.0.1:8080' }), s, 'fail');
    await step(c.open({ conn: 1, id: '0badf00d', route: 'db' }), s, 'open');
    await step(s.accounting({ conn: 1, id: '0badf00d', sent: 64 * 1024 * 1024, received: 12, how: 'end' }), c, 'accounting');
    await step(s.flush(), c, 'flush');
    expect(got).toEqual([
      ['client', { type: 'open', conn: 1, id: 'a1b2c3d4', route: 'web', peer }],
      ['server', { type: 'fail', conn: 1, id: 'a1b2c3d4', reason: 'target-refused', text: 'ECONNREFUSED 127.0.0.1:8080' }],
      ['server', { type: 'open', conn: 1, id: '0badf00d', route: 'db' }],
      ['client', { type: 'end', conn: 1, id: '0badf00d', sent: 64 * 1024 * 1024, received: 12, how: 'end' }],
      ['client', 'flush'],
    ]);
    // Several messages in one burst arrive in the order they were sent.
    const opens: number[] = [];
    const all = new Promise<void>((resolve) => c.on('open', (m) => opens.push(m.conn) === 50 && resolve()));
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.open({ conn: 100 + i, id: 'a1b2c3d4', route: 'web' })));
    await all;
    expect(opens).toEqual(Array.from({ length: 50 }, (_, i) => 100 + i));
    await closeBoth(c, s);
  });

  it('refuses a version mismatch clearly on both ends, with both ranges', async () => {
    const [cs, ss] = await socketPair();
    const c = new ControlChannel(cs, { role: 'client', ...quiet, versions: { min: 2, max: 3 } });
    const s = new ControlChannel(ss, { role: 'server', ...quiet });
    const closes = [once(c, 'close'), once(s, 'close')];
    const [client, server] = await Promise.allSettled([c.hello({ routes: [] }), s.accept(() => ANSWER)]);
    expect(client.status === 'rejected' && client.reason).toBeInstanceOf(ControlVersionError);
    expect(client.status === 'rejected' && client.reason).toMatchObject({ code: 'POOL_ERR_CONTROL_VERSION', local: { min: 2, max: 3 }, peer: { min: 1, max: 1 } });
    expect(server.status === 'rejected' && server.reason).toMatchObject({ code: 'POOL_ERR_CONTROL_VERSION', local: { min: 1, max: 1 }, peer: { min: 2, max: 3 } });
    expect(String(client.status === 'rejected' && client.reason.message)).toMatch(/this end speaks 2\.\.3, the peer 1\.\.1; upgrade the older end/);
    const [[clientClose], [serverClose]] = (await Promise.all(closes)) as [[Error], [Error]];
    expect(clientClose).toBeInstanceOf(ControlVersionError);
    expect(serverClose).toBeInstanceOf(ControlVersionError);
    await once(cs, 'close');
  });

  it('a server that refuses the client (a second channel for one identity) is an explicit ControlRefusedError', async () => {
    const [cs, ss] = await socketPair();
    const c = new ControlChannel(cs, { role: 'client', ...quiet });
    const s = new ControlChannel(ss, { role: 'server', ...quiet });
    const hello = c.hello({ routes: [] }).catch((e: unknown) => e);
    await s.close({ code: 'duplicate', text: 'client key:a already has a control channel' });
    const error = await hello;
    expect(error).toMatchObject({ code: 'POOL_ERR_CONTROL_REFUSED', reason: 'duplicate', text: 'client key:a already has a control channel' });
    expect(error).toBeInstanceOf(ControlRefusedError);
    expect(c.closed).toBe(true);
  });

  it('the hello has a deadline: a silent server fails it with ControlTimeoutError and the stream is destroyed', async () => {
    const [cs] = await socketPair();
    const c = new ControlChannel(cs, { role: 'client', ...quiet, helloTimeout: 300 });
    const error = await c.hello({ routes: ROUTES }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlTimeoutError);
    expect(error).toMatchObject({ code: 'POOL_ERR_CONTROL_TIMEOUT', phase: 'hello' });
    expect((error as Error).message).toMatch(/did not answer the control hello within 300 ms \(helloTimeout\)/);
    expect(c.closed).toBe(true);
    expect(cs.destroyed).toBe(true);
  });

  it('a peer that is no tunnel end (it sends a pool ID) fails the hello with a preamble error, not a hang', async () => {
    const [cs, ss] = await socketPair();
    const c = new ControlChannel(cs, { role: 'client', ...quiet, helloTimeout: 20_000 });
    const hello = c.hello({ routes: [] });
    ss.write('a1b2c3d4');
    await expect(hello).rejects.toMatchObject({ code: 'POOL_ERR_CONTROL_PROTOCOL', reason: 'preamble' });
  });

  it('a protocol error from the peer closes the channel and tells the peer why (an ERROR frame)', async () => {
    const [cs, ss] = await socketPair();
    const s = new ControlChannel(ss, { role: 'server', ...quiet });
    const accepted = s.accept(() => ANSWER).catch((e: unknown) => e);
    const reply: Buffer[] = [];
    cs.on('data', (chunk: Buffer) => reply.push(chunk));
    cs.write(Buffer.concat([CONTROL_PREAMBLE, Buffer.from('7f00000000', 'hex')])); // an unknown must-understand type
    const error = await accepted;
    expect(error).toBeInstanceOf(ControlProtocolError);
    expect(error).toMatchObject({ reason: 'unknown-type' });
    await once(cs, 'end');
    const decoded = decodeAll(Buffer.concat(reply));
    expect(decoded).toHaveLength(1);
    expect(decoded[0]).toMatchObject({ kind: 'message', message: { type: 'error', code: 'protocol', text: expect.stringMatching(/0x7f/) } });
  });

  it('a message out of place (a second HELLO after the hello) is a protocol error', async () => {
    const { c, s, cs } = await connected();
    const closed = once(s, 'close');
    cs.write(encodeMessage({ type: 'hello', minVersion: 1, maxVersion: 1, name: '', routes: [] }));
    const [error] = (await closed) as [ControlProtocolError];
    expect(error).toMatchObject({ code: 'POOL_ERR_CONTROL_PROTOCOL', reason: 'unexpected' });
    await once(c, 'close');
  });

  it('ping measures the round trip; periodic pings emit rtt', async () => {
    const { c, s } = await connected({ pingInterval: 20 });
    const rtt = await s.ping();
    expect(rtt).toBeGreaterThan(0);
    expect(s.rtt).toBe(rtt);
    const [periodic] = (await once(c, 'rtt')) as [number];
    expect(periodic).toBeGreaterThan(0);
    await closeBoth(c, s);
  });

  it('liveness: a peer that sends nothing at all is declared dead with ControlTimeoutError, its stream destroyed', async () => {
    const { c, s, ss } = await connected({}, { livenessTimeout: 300 });
    const [error] = (await once(s, 'close')) as [Error];
    expect(error).toBeInstanceOf(ControlTimeoutError);
    expect(error).toMatchObject({ phase: 'liveness' });
    expect(error.message).toMatch(/nothing from the peer of the control channel for 300 ms/);
    expect(ss.destroyed).toBe(true);
    // The client learns why (the ERROR frame), and the server's socket goes.
    const clientClose = c.closed ? undefined : once(c, 'close');
    await Promise.all([ss.destroyed ? undefined : once(ss, 'close'), clientClose]);
    expect(c.closed).toBe(true);
  });

  it('liveness: the peer\'s pings keep a channel alive well past the timeout', async () => {
    const { c, s } = await connected({ pingInterval: 25 }, { livenessTimeout: 400 });
    let closed = false;
    s.once('close', () => (closed = true));
    // 40 answered pings span at least 40 * 25 ms = 1000 ms, 2.5 liveness timeouts.
    let pongs = 0;
    await new Promise<void>((resolve) => c.on('rtt', () => ++pongs === 40 && resolve()));
    expect(closed).toBe(false);
    await closeBoth(c, s);
  });

  it('drain: the peer is told, and neither end opens any more', async () => {
    const { c, s } = await connected();
    const drained = once(c, 'drain');
    await s.drain(5000, 'shutting down');
    const [message] = (await drained) as [ControlMessage];
    expect(message).toEqual({ type: 'drain', timeout: 5000, text: 'shutting down' });
    expect([c.draining, s.draining]).toEqual([true, true]);
    await expect(c.open({ conn: 2, id: '00000001', route: 'db' })).rejects.toBeInstanceOf(PoolClosedError);
    await expect(s.open({ conn: 2, id: '00000001', route: 'web' })).rejects.toThrow(/draining \(this end announced it\)/);
    // Accounting for connections still open goes on.
    const accounted = once(s, 'accounting');
    await c.accounting({ conn: 1, id: '00000002', sent: 1, received: 2, how: 'end' });
    await accounted;
    await closeBoth(c, s);
  });

  it('close() is clean and idempotent: both ends see close without an error, no socket, timer or listener is left', async () => {
    const before = handles();
    const [cs, ss] = await socketPair();
    const listeners = (socket: net.Socket): number[] => ['data', 'end', 'close', 'error', 'drain'].map((event) => socket.listenerCount(event));
    const fresh = [listeners(cs), listeners(ss)];
    const c = new ControlChannel(cs, { role: 'client', pingInterval: 1000, livenessTimeout: 5000 });
    const s = new ControlChannel(ss, { role: 'server', pingInterval: 1000, livenessTimeout: 5000 });
    await Promise.all([c.hello({ routes: ROUTES }), s.accept(() => ANSWER)]);
    const closes = [once(c, 'close'), once(s, 'close')];
    await Promise.all([c.close(), c.close()]);
    const [[clientError], [serverError]] = (await Promise.all(closes)) as [[unknown], [unknown]];
    expect([clientError, serverError]).toEqual([undefined, undefined]);
    await Promise.all([cs, ss].map((socket) => (socket.closed ? undefined : once(socket, 'close'))));
    expect([cs.destroyed, ss.destroyed]).toEqual([true, true]);
    // What is left on the sockets: Node's own listeners, and the one 'error' guard each channel keeps so a late error cannot crash the process.
    const guard = (counts: number[]): number[] => counts.map((n, i) => (i === 3 ? n + 1 : n));
    expect([listeners(cs), listeners(ss)]).toEqual([guard(fresh[0]!), guard(fresh[1]!)]);
    await s.close();
    await expect(c.ping()).rejects.toBeInstanceOf(PoolClosedError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(handles()).toEqual(before);
  });

  it('a peer that vanishes (its socket reset) closes the channel with a cut, and pending pings fail with it', async () => {
    const { c, s, cs } = await connected();
    const closed = once(s, 'close');
    const ping = s.ping().catch((e: unknown) => e);
    cs.resetAndDestroy();
    const [error] = (await closed) as [Error];
    expect(error).toMatchObject({ name: 'StreamCutError', code: 'ECONNRESET' });
    expect(await ping).toBe(error);
    expect(s.closed).toBe(true);
    c.destroy();
  });

  it('back-pressure: sends wait while the peer does not read, and go on when it does', async () => {
    const [cs, ss] = await socketPair();
    const s = new ControlChannel(ss, { role: 'server', ...quiet });
    const accepted = s.accept(() => ANSWER);
    cs.write(Buffer.concat([CONTROL_PREAMBLE, encodeMessage({ type: 'hello', minVersion: 1, maxVersion: 1, name: '', routes: [] })]));
    await accepted;
    cs.pause(); // a peer that reads nothing more
    const text = 'x'.repeat(60_000);
    let waiting: Promise<void> | undefined;
    let settled = false;
    let sent = 0;
    // Bounded: the kernel buffers of a loopback pair hold a few MiB at most.
    for (let i = 0; i < 2000 && waiting === undefined; i++) {
      const send = s.fail({ conn: i, id: '00000001', reason: 'other', text });
      sent++;
      if (ss.writableNeedDrain) waiting = send.then(() => void (settled = true));
      else await send;
    }
    expect(waiting).toBeDefined();
    // More messages while the stream is full all wait for the same drain: one listener each for drain and close.
    const drainListeners = ss.listenerCount('drain');
    const closeListeners = ss.listenerCount('close');
    const more = Array.from({ length: 20 }, (_, i) => s.fail({ conn: 5000 + i, id: '00000001', reason: 'other', text: 'queued' }));
    expect(ss.listenerCount('drain')).toBe(drainListeners);
    expect(ss.listenerCount('close')).toBe(closeListeners);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false); // still waiting for the peer
    let received = 0;
    cs.on('data', (chunk: Buffer) => (received += chunk.length));
    cs.resume();
    await waiting;
    await Promise.all(more);
    expect(settled).toBe(true);
    expect(ss.listenerCount('drain')).toBe(drainListeners - 1);
    expect(sent).toBeGreaterThan(1);
    const closed = once(s, 'close');
    cs.end(); // the peer ends cleanly: the channel ends its side too
    expect(await closed).toEqual([undefined]);
    expect(received).toBeGreaterThan(60_000);
  });

  it('validates its options, naming the option', () => {
    const stream = new net.Socket();
    expect(() => new ControlChannel(stream, { role: 'middle' as 'client' })).toThrow(/invalid option control\.role/);
    expect(() => new ControlChannel(stream, { role: 'client', helloTimeout: 0 })).toThrow(/control\.helloTimeout/);
    expect(() => new ControlChannel(stream, { role: 'client', versions: { min: 3, max: 2 } })).toThrow(/control\.versions\.min/);
    expect(() => new ControlChannel(stream, { role: 'client', pingIntervall: 5 } as ControlChannelOptions)).toThrow(/did you mean "pingInterval"/);
    stream.destroy();
  });
});
