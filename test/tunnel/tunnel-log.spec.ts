/**
 * The tunnel's logs (issue 15), over a real tunnel (tcp with keys on
 * 127.0.0.1): one line per control-channel event and route answer, failures
 * that repeat rate-limited (the first with its cause, the rest in a
 * summary), silent without a logger, and never a key.
 */
import { expect, it, jest } from '@jest/globals';
import net from 'node:net';
import type { PoolLogger } from '../../lib/core/logger.js';
import { eventually, freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { get, httpTarget, KEYS, startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

function recorder(): { logger: PoolLogger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string): void => void lines.push(`${level} ${message}`);
  return { logger: { log: at('log'), warn: at('warn'), error: at('error') }, lines };
}

/** A public connection that is reset (its target refuses): resolves when it is gone. */
function refusedConnection(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

it('logs the control channel and route answers once each, failures rate-limited, and never a key', async () => {
  const [webPort, downPort, deniedPort, nowhere] = await freePorts(4);
  const serverLog = recorder();
  const clientLog = recorder();
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: ['web', 'down'], directions: ['reverse'], ports: [webPort!, downPort!] }], 'tcp', { logger: serverLog.logger });
  const target = await httpTarget(scope, 'logged');
  const client = startTunnelClient(
    scope,
    server,
    'site-a',
    [
      { name: 'web', serverPort: webPort, target: `127.0.0.1:${target}` },
      { name: 'down', serverPort: downPort, target: `127.0.0.1:${nowhere}` },
      { name: 'denied', serverPort: deniedPort, target: `127.0.0.1:${target}` },
    ],
    { logger: clientLog.logger },
  );
  await client.start();
  expect((await get(webPort!, '/')).status).toBe(200);
  for (let i = 0; i < 3; i++) await refusedConnection(downPort!);
  await eventually(() => (client.stats.routes['down']?.failures['target-refused'] ?? 0) === 3, 10_000, 'three refusals counted');

  const up = serverLog.lines.filter((line) => line.includes('client key:site-a is up'));
  expect(up).toHaveLength(1);
  expect(up[0]).toMatch(new RegExp(`^log tunnel server '.+': client key:site-a is up: web \\(public port ${webPort}\\), down \\(public port ${downPort}\\), denied refused \\(`));
  expect(serverLog.lines.filter((line) => line.startsWith('warn') && line.includes('route denied refused'))).toHaveLength(1);
  expect(clientLog.lines.filter((line) => line.includes('control channel up'))).toHaveLength(1);
  expect(clientLog.lines.filter((line) => line.startsWith('warn') && line.includes('route denied refused by the server'))).toHaveLength(1);
  // Three refused targets: one line with the first one's cause on each end; the rest wait for the summary a minute later.
  const clientFailures = clientLog.lines.filter((line) => line.includes('opening tunnelled connections failed'));
  expect(clientFailures).toHaveLength(1);
  expect(clientFailures[0]).toMatch(/^warn .*POOL_ERR_TARGET_CONNECT/);
  expect(serverLog.lines.filter((line) => line.includes('opening tunnelled connections failed'))).toHaveLength(1);

  await client.close();
  await eventually(() => serverLog.lines.some((line) => line.includes('client key:site-a closed its control channel')), 10_000, 'the server logged the close');
  for (const line of [...serverLog.lines, ...clientLog.lines]) for (const key of Object.values(KEYS)) expect(line).not.toContain(key);
});

it('is silent without a logger (the default)', async () => {
  const [webPort] = await freePorts(1);
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'web', directions: ['reverse'], ports: [webPort!] }]);
  const client = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: webPort, target: '127.0.0.1:1' }]);
  const spy = jest.spyOn(console, 'log');
  const warn = jest.spyOn(console, 'warn');
  scope.defer(() => {
    spy.mockRestore();
    warn.mockRestore();
  });
  await client.start();
  await refusedConnection(webPort!);
  expect(spy).not.toHaveBeenCalled();
  expect(warn).not.toHaveBeenCalled();
});

it('a server that shuts down closes the client\'s control channel on purpose: logged, not warned', async () => {
  const [webPort] = await freePorts(1);
  const clientLog = recorder();
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'web', directions: ['reverse'], ports: [webPort!] }]);
  const client = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: webPort, target: '127.0.0.1:1' }], { logger: clientLog.logger, reconnect: false });
  await client.start();
  await server.close();
  await eventually(() => clientLog.lines.some((line) => line.includes('control channel closed by the server')), 10_000, 'the client logged the close');
  expect(clientLog.lines.filter((line) => line.startsWith('warn'))).toEqual([]);
});
