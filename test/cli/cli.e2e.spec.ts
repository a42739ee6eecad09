/**
 * The command line, run as child processes from dist/ (the test command
 * builds first): a reverse route tunnels an HTTP request, a bad flag exits
 * 2 with one line naming it, SIGTERM exits 0 and leaves nothing listening.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import path from 'node:path';
import { freePorts } from '../support/net.js';
import { closeAll, exitOf, get, httpTarget, KEY, refused, run, waitFor } from './cli-support.js';

afterEach(closeAll);

const ROUTE = '--route=web=reverse:0:127.0.0.1:1';
const NOT_PEM = path.resolve('package.json');

describe('nestjs-tunnel-pool command line', () => {
  it.each([
    ['tcp', ['--transport', 'tcp'], []],
    ['ws (server with --no-early-data)', ['--transport', 'ws'], ['--no-early-data']],
    ['http2 (tls 1, certificate made at start-up)', ['--transport', 'http2', '--tls', '1'], []],
  ])('%s: tunnels an HTTP request through a reverse route and a forward route; SIGTERM exits 0 and closes every port', async (_kind, wire, serverOnly) => {
    const targetPort = await httpTarget();
    const server = run(['server', ...(wire as string[]), ...(serverOnly as string[]), '--listen', '127.0.0.1:0', '--key', KEY, '--ports', '20000-40000', '--allow-target', `127.0.0.1:${targetPort}`]);
    const tunnelPort = Number(await waitFor(server, /listening for tunnel clients on 127\.0\.0\.1:(\d+)/));
    const [listenPort] = await freePorts(1);
    const client = run(['client', ...(wire as string[]), '--connect', `127.0.0.1:${tunnelPort}`, '--key', KEY, '--route', `web=reverse:0:127.0.0.1:${targetPort}`, '--route', `back=forward:${listenPort}:127.0.0.1:${targetPort}`]);
    const publicPort = Number(await waitFor(server, /route web: connect to 127\.0\.0\.1:(\d+)/));
    const forwardPort = Number(await waitFor(client, /route back: listening on 127\.0\.0\.1:(\d+)/));

    expect(await get(publicPort)).toBe('target saw /hello');
    expect(await get(forwardPort)).toBe('target saw /hello');

    client.child.kill('SIGTERM');
    expect(await client.exited).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.err()).toBe('');
    expect(await refused(tunnelPort)).toBe(true);
    expect(await refused(publicPort)).toBe(true);
    expect(await refused(forwardPort)).toBe(true);
  }, 60_000);

  it.each([
    [['server', '--transport', 'quic', '--insecure'], {}, /^nestjs-tunnel-pool server: invalid option --transport: got "quic"/],
    [['server', '--listen', '127.0.0.1:0'], {}, /^nestjs-tunnel-pool server: invalid option --key: no shared key/],
    [['server', '--insecure', '--tls', '2', '--tls-cert', '/no/such.pem', '--tls-key', '/no/such.key'], {}, /^nestjs-tunnel-pool server: invalid option --tls-cert: cannot read "\/no\/such.pem"/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', '--route', 'web=sideways:80:127.0.0.1:1'], {}, /^nestjs-tunnel-pool client: invalid option --route: bad route/],
    [['server', '--bogus'], {}, /^nestjs-tunnel-pool server: invalid option --bogus: unknown flag/],
    // The allowlist's own errors are named by the flag they came from, not by the library's option path.
    [['server', '--insecure', '--listen', '127.0.0.1:0', '--ports', 'abc'], {}, /^nestjs-tunnel-pool server: invalid option --ports: got "abc"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0'], { TUNNEL_PORTS: '0-5' }, /^nestjs-tunnel-pool server: invalid option TUNNEL_PORTS: got "0-5"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0', '--allow-target', 'nonsense'], {}, /^nestjs-tunnel-pool server: invalid option --allow-target: got "nonsense"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0', '--allow', 'bad name!'], {}, /^nestjs-tunnel-pool server: invalid option --allow: got "bad name!"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0', '--public-host', 'bad host'], {}, /^nestjs-tunnel-pool server: invalid option --public-host: got "bad host"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0'], { TUNNEL_TLS: '3' }, /^nestjs-tunnel-pool server: invalid option TUNNEL_TLS: got "3"/],
    [['server', '--insecure', '--listen', '127.0.0.1:0'], { TUNNEL_EARLY_DATA: 'maybe' }, /^nestjs-tunnel-pool server: invalid option TUNNEL_EARLY_DATA: got "maybe", expected 1 or 0/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--hostname', 'example.com'], {}, /^nestjs-tunnel-pool client: invalid option --hostname: .*--tls 2/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--tls', '2', '--tls-ca', NOT_PEM], {}, /^nestjs-tunnel-pool client: invalid option --tls-ca: .*no PEM certificate/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--name', 'x'.repeat(300)], {}, /^nestjs-tunnel-pool client: invalid option --name: /],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--tls', '1', '--pin', 'AB:CD'], {}, /^nestjs-tunnel-pool client: invalid option --pin: got "AB:CD"/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--route', 'web=forward:0:127.0.0.1:1'], {}, /^nestjs-tunnel-pool client: invalid option --route: .*web is already used/],
    [['client', '--insecure', '--connect', '127.0.0.1:1', ROUTE, '--tls', '2', '--hostname', 'bad host'], {}, /^nestjs-tunnel-pool client: invalid option --hostname: got "bad host"/],
    [['client', '--key', 'short', '--connect', '127.0.0.1:1', ROUTE], {}, /^nestjs-tunnel-pool client: invalid option --key: .*at least 16; make one with nestjs-tunnel-pool keygen/],
    [['server', '--listen', '127.0.0.1:0'], { TUNNEL_INSECURE: '1', TUNNEL_KEY: KEY }, /^nestjs-tunnel-pool server: invalid option TUNNEL_INSECURE: TUNNEL_KEY gives a key: drop TUNNEL_INSECURE, or the key/],
    [['client', '--insecure', '--connect', '127.0.0.1:1'], { TUNNEL_ROUTES: 'a=forward:0:127.0.0.1:1 b=forward:x:127.0.0.1:1' }, /^nestjs-tunnel-pool client: invalid option TUNNEL_ROUTES: bad route "b=forward:x/],
  ])('%j %j exits 2 with one line naming the flag', async (args, env, line) => {
    const r = run(args as string[], env as Record<string, string>);
    expect(await exitOf(r, 15_000)).toBe(2);
    expect(r.err().trimEnd().split('\n')).toHaveLength(1);
    expect(r.err()).toMatch(line);
  }, 30_000);

  it('a --listen port in use exits 2 naming --listen', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const r = run(['server', '--insecure', '--listen', `127.0.0.1:${port}`]);
      expect(await r.exited).toBe(2);
      expect(r.err()).toMatch(/^nestjs-tunnel-pool server: invalid option --listen: .*EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 30_000);
});
