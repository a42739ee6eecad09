import { describe, expect, it } from '@jest/globals';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';

const address = '127.0.0.1:9';

describe('client pool options', () => {
  it.each([
    [{ address, minCap: 0 }, 'minCap', /got 0, expected an integer >= 1/],
    [{ address, minCap: 1.5 }, 'minCap', /got 1.5/],
    [{ address, minCap: 5, maxCap: 2 }, 'minCap', /minCap \(5\) is greater than maxCap \(2\)/],
    [{ address, minIvl: 0 }, 'minIvl', /got 0/],
    [{ address, minIvl: 900, maxIvl: 100 }, 'minIvl', /minIvl \(900\) is greater than maxIvl \(100\)/],
    [{ address, maxCapacity: 4 }, 'maxCapacity', /unknown option \(did you mean "maxCap"\?\)/],
    [{ address, tls: 'strictest' }, 'tls', /expected "0" \(none\), "1" \(insecure/],
    [{ address, tls: '2' }, 'hostname', /TLS mode "2" verifies .* set hostname/],
    [{ address: 'nohost' }, 'address', /expected "host:port"/],
    [{ address: '127.0.0.1:70000' }, 'address', /port from 1 to 65535/],
    [{ address, addressResolver: () => address }, 'address', /either address or addressResolver/],
    [{}, 'address', /needs address \("host:port"\), addressResolver or dialer/],
    [{ address, idFormat: 'hex16' }, 'idFormat', /one of "hex8", "raw4"/],
    [{ address, transport: 'carrier-pigeon' }, 'transport', /one of "tcp"/],
    [{ address, keepAlive: -1 }, 'keepAlive', /got -1/],
    [{ address, getTimeout: 'soon' }, 'getTimeout', /got "soon"/],
    [{ address, maxIdle: -1 }, 'maxIdle', /got -1, expected an integer from 0/],
    [{ address, maxIdle: Infinity }, 'maxIdle', /got Infinity/],
  ])('%j fails on %s', (options, option, message) => {
    let caught: unknown;
    try {
      createClientPool(options as never);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option });
    expect((caught as Error).message).toMatch(message);
  });

  it('names the option with its prefix (as the Nest module passes it)', () => {
    expect(() => createClientPool({ address, maxCap: 0 }, 'client')).toThrow(/invalid option client\.maxCap: got 0/);
    expect(() => createClientPool({ address: 'x' }, 'client')).toThrow(/invalid option client\.address: got "x"/);
  });

  it('allows minCap 0 in single mode and defaults sensibly', () => {
    const pool = createClientPool({ address, isSingle: true, minCap: 0, maxCap: 3 });
    expect(pool.options).toMatchObject({ minCap: 0, maxCap: 3, minIvl: 1000, maxIvl: 1000, getTimeout: 5000 });
    expect(createClientPool({ address, maxIvl: 300 }).options).toMatchObject({ minIvl: 300, maxIvl: 300 });
    expect(createClientPool({ address, minCap: 4 }).options).toMatchObject({ minCap: 4, maxCap: 4 });
  });
});

describe('server pool options', () => {
  it.each([
    [{ maxCap: 0 }, 'maxCap', /got 0/],
    [{ port: 65536 }, 'port', /from 0 to 65535/],
    [{ allowedIps: 'localhost' }, 'allowedIps', /expected an IP address/],
    [{ tls: { key: 'nope', cert: 'nope' } }, 'tls', /key and certificate were not accepted/],
    [{ tls: true }, 'tls', /expected \{ key, cert \}/],
    [{ host: '' }, 'host', /non-empty string/],
    [{ server: {} }, 'server', /a net.Server/],
    [{ reserveFirstID: true }, 'reserveFirstID', /did you mean "reserveFirstId"/],
    [{ maxIdle: -1 }, 'maxIdle', /got -1, expected an integer from 0/],
    [{ maxIdle: 1.5 }, 'maxIdle', /got 1.5/],
    [{ maxIdle: Infinity }, 'maxIdle', /got Infinity/],
    [{ maxIdleMs: 1000 }, 'maxIdleMs', /did you mean "maxIdle"/],
  ])('%j fails on %s', (options, option, message) => {
    let caught: unknown;
    try {
      createServerPool(options as never);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option });
    expect((caught as Error).message).toMatch(message);
  });
});

describe('server pool start-up', () => {
  it('names the port option (with its prefix) when the port is taken, and start() is shared by concurrent callers', async () => {
    const first = createServerPool({ port: 0 }, 'server');
    const concurrent = [first.start(), first.start()];
    await Promise.all(concurrent);
    expect(first.address()).not.toBeNull();
    const second = createServerPool({ port: first.address()!.port }, 'server');
    await expect(second.start()).rejects.toMatchObject({ code: 'POOL_ERR_LISTEN', option: 'server.port', message: expect.stringContaining('EADDRINUSE') });
    await second.close();
    await first.close();
  });
});
