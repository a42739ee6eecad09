import { describe, expect, it } from '@jest/globals';
import { PoolModule, type PoolModuleOptions } from '../../lib/index.js';
import { compile, errorOf } from './support/nest.js';

// Options are validated once, when Nest builds the registration: forRoot and
// forRootAsync fail the same way, from compile(), naming the option.
const invalid: Array<[label: string, options: unknown, option: string, message: RegExp]> = [
  ['client.maxCap below client.minCap', { client: { address: '127.0.0.1:1', minCap: 4, maxCap: 2 } }, 'client.minCap', /client\.minCap \(4\) is greater than client\.maxCap \(2\)/],
  ['an unknown top-level key', { server: {}, autostart: false }, 'autostart', /invalid option autostart: unknown option \(did you mean "autoStart"\?\)/],
  ['an unknown client key', { client: { adress: '127.0.0.1:1' } }, 'client.adress', /invalid option client\.adress: unknown option \(did you mean "address"\?\)/],
  ['a bad client tls mode', { client: { address: '127.0.0.1:1', tls: 'maybe' } }, 'client.tls', /invalid option client\.tls: got "maybe", expected "0" \(none\)/],
  ['a bad server port', { server: { port: 70000 } }, 'server.port', /invalid option server\.port: got 70000, expected an integer from 0 to 65535/],
  ['a non-integer shutdownTimeout', { server: {}, shutdownTimeout: 1.5 }, 'shutdownTimeout', /invalid option shutdownTimeout: got 1\.5, expected an integer/],
  ['a non-boolean autoStart', { server: {}, autoStart: 'yes' }, 'autoStart', /invalid option autoStart: got "yes", expected true or false/],
  ['a name that is not a string', { name: 42, server: {} }, 'name', /invalid option name: got 42, expected a non-empty string/],
  ['neither client nor server', { autoStart: true }, 'client', /pool "default" sets neither client nor server/],
  ['a client that is not an object', { client: 'tcp://x' }, 'client', /invalid option client: expected an object, got "tcp:\/\/x"/],
];

describe('invalid options', () => {
  it.each(invalid)('%s fails forRoot and forRootAsync alike', async (_label, options, option, message) => {
    const viaRoot = await errorOf(() => compile({ imports: [PoolModule.forRoot(options as PoolModuleOptions)] }));
    const viaAsync = await errorOf(() => compile({ imports: [PoolModule.forRootAsync({ useFactory: async () => options as PoolModuleOptions })] }));

    expect(viaRoot).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', name: 'InvalidOptionsError', option });
    expect(viaRoot.message).toMatch(message);
    expect(viaAsync).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option, message: viaRoot.message });
  });

  it('a static async name the factory contradicts', async () => {
    const error = await errorOf(() => compile({ imports: [PoolModule.forRootAsync({ name: 'a', useFactory: () => ({ name: 'b', server: {} }) })] }));
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'name' });
    expect(error.message).toMatch(/the options factory returned "b", but the pool is registered as "a"/);
  });

  it('isGlobal returned by the factory (it is static)', async () => {
    const error = await errorOf(() => compile({ imports: [PoolModule.forRootAsync({ useFactory: () => ({ isGlobal: true, server: {} }) as PoolModuleOptions })] }));
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'isGlobal' });
  });

  it('accepts the factory repeating the static name', async () => {
    const moduleRef = await compile({ imports: [PoolModule.forRootAsync({ name: 'a', useFactory: () => ({ name: 'a', server: { port: 0 } }) })] });
    await moduleRef.close();
  });
});
