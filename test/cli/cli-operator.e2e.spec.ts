/**
 * The command line as an operator runs it, child processes from dist/:
 * everything from TUNNEL_* variables with a key made by `keygen`, port 0 on
 * both kinds of route (each side prints the port it bound), a route the
 * allowlist refuses (both sides say so), a second client with the same key
 * (it says why on stderr and exits 3 while the first keeps serving), TLS 2
 * with certificate files, TLS 1 with the right and a wrong pin.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority } from '../../lib/certs/index.js';
import { closeAll, exitOf, get, httpTarget, KEY, run, waitFor, type Run } from './cli-support.js';

afterEach(closeAll);

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tunnel-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (text: string, pattern: RegExp): string[] => text.split('\n').filter((line) => pattern.test(line));

async function stop(...runs: Run[]): Promise<void> {
  for (const r of runs) {
    r.child.kill('SIGTERM');
    expect(await exitOf(r)).toBe(0);
  }
}

describe('nestjs-tunnel-pool command line, as an operator runs it', () => {
  it('TUNNEL_* variables and a keygen key; port 0 on a reverse and a forward route; a refused route on both sides; a second client with the same key exits 3 and the first never stops serving', async () => {
    const keygen = run(['keygen']);
    expect(await exitOf(keygen)).toBe(0);
    const key = keygen.out().trim();
    expect(key).toMatch(/^\S{32,}$/);
    const targetPort = await httpTarget();

    const server = run(['server'], {
      TUNNEL_LISTEN: '127.0.0.1:0',
      TUNNEL_KEY: key,
      TUNNEL_PORTS: '20000-40000',
      TUNNEL_ALLOW: 'web,back*',
      TUNNEL_ALLOW_TARGETS: `127.0.0.1:${targetPort}`,
    });
    const tunnelPort = Number(await waitFor(server, /listening for tunnel clients on 127\.0\.0\.1:(\d+) \(tcp, tls 0, authenticated\)/));
    const target = `127.0.0.1:${targetPort}`;
    const first = run(['client'], {
      TUNNEL_CONNECT: `127.0.0.1:${tunnelPort}`,
      TUNNEL_KEY: key,
      TUNNEL_NAME: 'first',
      TUNNEL_ROUTES: `web=reverse:0:${target} back=forward:0:${target} secret=reverse:0:${target} back2=forward:0:127.0.0.1:1`,
    });
    // Each side prints the port it bound for a route that asked for 0.
    const publicPort = Number(await waitFor(server, /route web: connect to 127\.0\.0\.1:(\d+)/));
    expect(Number(await waitFor(first, /route web: server port (\d+) ->/))).toBe(publicPort);
    const forwardPort = Number(await waitFor(first, /route back: listening on 127\.0\.0\.1:(\d+) ->/));
    expect(publicPort).toBeGreaterThan(0);
    expect(forwardPort).toBeGreaterThan(0);
    expect(await get(publicPort, '/web')).toBe('target saw /web');
    expect(await get(forwardPort, '/back')).toBe('target saw /back');
    // A route the allowlist does not name, a forward route to a target it does not list: refused, said on both sides' stderr.
    await waitFor(server, /client key:\S+: route secret refused \(not-allowed\)/, 20_000, 'err');
    await waitFor(first, /route secret refused by the server \(not-allowed\)/, 20_000, 'err');
    await waitFor(server, /client key:\S+: route back2 refused \(target-not-allowed\): .*127\.0\.0\.1:1 is not among the allowed targets/, 20_000, 'err');
    await waitFor(first, /route back2 refused by the server \(target-not-allowed\)/, 20_000, 'err');
    expect(first.out()).toMatch(/up: web accepted, back accepted, secret refused \(not-allowed\), back2 refused \(target-not-allowed\)/);

    // Traffic through both of the first client's routes, one request after another, while a second client with the same key starts and gives up.
    const failures: string[] = [];
    let served = 0;
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading && i < 10_000; i++) {
        const port = i % 2 === 0 ? publicPort : forwardPort;
        try {
          const body = await get(port, `/load${i}`);
          if (body === `target saw /load${i}`) served++;
          else failures.push(`${port}: ${body}`);
        } catch (error) {
          failures.push(`${port}: ${(error as Error).message}`);
        }
      }
    })();
    const servedBefore = async (count: number): Promise<void> => {
      for (let i = 0; i < 400 && served < count && failures.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    };
    let afterSecond = 0;
    try {
      await servedBefore(10);
      const second = run(['client', '--connect', `127.0.0.1:${tunnelPort}`, '--key', key, '--route', `other=reverse:0:${target}`]);
      const beforeSecond = served;
      // With its stderr, so that a wrong exit says why.
      expect({ code: await exitOf(second), err: second.err() }).toMatchObject({ code: 3 });
      expect(served).toBeGreaterThan(beforeSecond); // requests went through while the second client ran
      expect(second.err().trimEnd().split('\n')).toHaveLength(1);
      expect(second.err()).toMatch(/^nestjs-tunnel-pool client: not serving: the server already has a client with this key .*; exiting with code 3/);
      afterSecond = served;
      await servedBefore(afterSecond + 20);
    } finally {
      loading = false;
      await load;
    }
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThanOrEqual(afterSecond + 20);
    // The server kept the first: refused the newcomer once, and the first never went down.
    expect(lines(server.err(), /second control connection was refused/)).toHaveLength(1);
    expect(lines(server.out(), /client key:\S+ (up|down)/)).toHaveLength(1);
    expect(first.out()).not.toMatch(/ down/);

    await stop(first, server);
  }, 90_000);

  it('--tls 2 with certificate files made in the test (ws): the client verifies the server against --tls-ca; a wrong --hostname is refused with a clear line', async () => {
    const ca = createCertificateAuthority({ commonName: 'cli test CA' });
    const leaf = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
    writeFileSync(files.ca, ca.cert);
    writeFileSync(files.cert, leaf.cert);
    writeFileSync(files.key, leaf.key);
    const targetPort = await httpTarget();
    const wire = ['--transport', 'ws', '--tls', '2', '--key', KEY];

    // The server from flags, the first client from variables only (TUNNEL_TLS_CA, TUNNEL_HOSTNAME ...).
    const server = run(['server', ...wire, '--tls-cert', files.cert, '--tls-key', files.key, '--listen', '127.0.0.1:0', '--ports', '20000-40000']);
    const tunnelPort = Number(await waitFor(server, /listening for tunnel clients on 127\.0\.0\.1:(\d+) \(ws, tls 2, authenticated\)/));
    const client = run(['client'], {
      TUNNEL_TRANSPORT: 'ws',
      TUNNEL_TLS: '2',
      TUNNEL_KEY: KEY,
      TUNNEL_TLS_CA: files.ca,
      TUNNEL_HOSTNAME: 'localhost',
      TUNNEL_CONNECT: `127.0.0.1:${tunnelPort}`,
      TUNNEL_ROUTES: `web=reverse:0:127.0.0.1:${targetPort}`,
    });
    const publicPort = Number(await waitFor(server, /route web: connect to 127\.0\.0\.1:(\d+)/));
    expect(await get(publicPort)).toBe('target saw /hello');

    const wrong = run(['client', ...wire, '--tls-ca', files.ca, '--hostname', 'elsewhere.example', '--connect', `127.0.0.1:${tunnelPort}`, '--route', `web2=reverse:0:127.0.0.1:${targetPort}`]);
    await waitFor(wrong, /dialing failed .*elsewhere\.example/, 20_000, 'err');
    expect(wrong.out()).not.toMatch(/ up:/);
    await stop(wrong, client, server);
  }, 60_000);

  it('--tls 1 with --pin (public listeners on 0.0.0.0): the fingerprint the server prints lets the client in; a wrong pin is refused with a clear line and SIGTERM still exits 0', async () => {
    const targetPort = await httpTarget();
    // Public listeners on every address: the line names the port to connect to, not 0.0.0.0 as an address.
    const server = run(['server', '--tls', '1', '--key', KEY, '--listen', '127.0.0.1:0', '--public-host', '0.0.0.0', '--ports', '20000-40000']);
    const pin = await waitFor(server, /pin: "([0-9A-F:]{95})"/);
    const tunnelPort = Number(await waitFor(server, /listening for tunnel clients on 127\.0\.0\.1:(\d+) \(tcp, tls 1, authenticated\)/));
    // The right pin, and everything else, from variables; the key from a file (with its trailing newline).
    const keyFile = path.join(dir, 'tunnel.key');
    writeFileSync(keyFile, `${KEY}\n`);
    const client = run(['client'], {
      TUNNEL_TLS: '1',
      TUNNEL_PIN: pin,
      TUNNEL_KEY_FILE: keyFile,
      TUNNEL_CONNECT: `127.0.0.1:${tunnelPort}`,
      TUNNEL_ROUTES: `web=reverse:0:127.0.0.1:${targetPort}`,
      TUNNEL_MIN_CAP: '2',
      TUNNEL_MAX_CAP: '4',
    });
    expect(await waitFor(client, /connecting to (.*)$/m)).toBe(`127.0.0.1:${tunnelPort} (tcp, tls 1, authenticated)`);
    const publicPort = Number(await waitFor(server, /route web: connect to port (\d+) of this machine \(listening on 0\.0\.0\.0:\d+\)/));
    expect(await get(publicPort)).toBe('target saw /hello');

    const wrongPin = `${pin.startsWith('00') ? '11' : '00'}${pin.slice(2)}`;
    const wrong = run(['client', '--tls', '1', '--pin', wrongPin, '--key', KEY, '--connect', `127.0.0.1:${tunnelPort}`, '--route', `web2=reverse:0:127.0.0.1:${targetPort}`]);
    await waitFor(wrong, /dialing failed \(POOL_ERR_CERT_PIN\): the server's certificate .* matches no pinned fingerprint/, 20_000, 'err');
    expect(wrong.out()).not.toMatch(/ up:/);
    await stop(wrong, client, server);
    expect(wrong.out()).toMatch(/client: stopped/);
  }, 60_000);
});
