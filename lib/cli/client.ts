import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import type { ClientPool } from '../core/client-pool.js';
import { ControlRefusedError, InvalidOptionsError } from '../core/errors.js';
import { FailureReporter } from '../core/logger.js';
import { createClientPool, type ClientPoolConfig } from '../pool-factory.js';
import { validateRoutes, type RouteOptions } from '../tunnel/routes.js';
import { TunnelClient } from '../tunnel/tunnel-client.js';
import { CliLog, type CliOutput } from './log.js';
import { CLIENT_FLAGS, helpText, parseFlags, parseRoute, portZeroListen, readCommon, readHost, readHostPort, readName, withListenPorts, type Env } from './options.js';
import { rename, type CommandFailure, type RunningCommand } from './server.js';

export const CLIENT_HELP = helpText(
  'client',
  CLIENT_FLAGS,
  'Runs a tunnel client: connects to the tunnel server at --connect, announces its --route list and\nserves it (reverse: the server listens, this side reaches the target; forward: this side listens,\nthe server reaches the target).',
  `
Routes (--route, repeatable; TUNNEL_ROUTES holds several, separated by spaces):
  NAME=reverse:PORT:HOST:PORT          the server listens on PORT (0: it picks one of its --ports),
                                       connections go to HOST:PORT as reached from this side
  NAME=forward:[HOST:]PORT:HOST:PORT   this side listens on [HOST:]PORT (host default 127.0.0.1; port 0:
                                       a free port, printed once up), connections go to HOST:PORT as
                                       reached from the server
  then optionally ,proxy=v1 or ,proxy=v2 (PROXY protocol header to the target) and ,max=N

One client per key: a client whose key the server already has connected says so on stderr and
exits with code 3 (it does not retry; give each client its own key).

Example:
  nestjs-tunnel-pool client --connect tunnel.example.com:10101 --key-file /etc/tunnel.key \\
    --route web=reverse:8080:127.0.0.1:3000 --route db=forward:15432:db.internal:5432
`,
);

/** Reads the flags, starts the pool and the tunnel client (retrying until the server answers), logs what happens. */
export async function runClient(args: string[], env: Env, output: CliOutput): Promise<RunningCommand | undefined> {
  const values = parseFlags(CLIENT_FLAGS, args, env);
  if (values.bool('help')) {
    output.out(CLIENT_HELP);
    return undefined;
  }
  const common = readCommon(values);
  const connect = readHostPort(values, 'connect');
  if (connect.portZero) throw new InvalidOptionsError(values.from('connect'), 'port 0 cannot be dialled: give the server\'s port');
  // Routes hold commas for their settings: from the variable they are separated by spaces.
  const routeSpecs = values.from('route') === 'TUNNEL_ROUTES' ? (values.string('route') ?? '').split(/\s+/).filter((s) => s.length > 0) : values.list('route');
  if (routeSpecs.length === 0) throw new InvalidOptionsError(values.from('route'), 'no route: give at least one --route (see --help)');
  const routes: RouteOptions[] = routeSpecs.map((spec) => parseRoute(spec, values.from('route')));
  try {
    // A port-0 listen address is checked with a stand-in port no other route uses (the library's routes take ports from 1).
    const used = new Set(routes.map((route) => (typeof route.listen === 'string' ? Number(/:(\d+)$/.exec(route.listen)?.[1]) : 0)));
    let spare = 65_536;
    validateRoutes(withListenPorts(routes, () => {
      do spare--;
      while (used.has(spare));
      return spare;
    }));
  } catch (error) {
    if (error instanceof InvalidOptionsError) throw new InvalidOptionsError(values.from('route'), error.message.replace(/^invalid option /, ''));
    throw error;
  }
  const pin = values.string('pin');
  const ca = values.file('tls-ca');
  if (pin !== undefined && common.tls === '0') throw new InvalidOptionsError(values.from('pin'), 'a pin checks a TLS certificate: give --tls 1');
  if (ca !== undefined && common.tls !== '2') throw new InvalidOptionsError(values.from('tls-ca'), 'a CA verifies the server in tls 2: give --tls 2');
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch {
      throw new InvalidOptionsError(values.from('tls-ca'), `${JSON.stringify(values.string('tls-ca'))} holds no PEM certificate: give the file of the CA certificate that signed the server's`);
    }
  }
  if (values.string('hostname') !== undefined && common.tls !== '2') throw new InvalidOptionsError(values.from('hostname'), 'the name the server certificate must carry is checked in tls 2 only: give --tls 2, or drop --hostname');
  const name = readName(values);
  const maxCap = values.int('max-cap', 16, 1, 65_536);
  const minCap = values.int('min-cap', Math.min(4, maxCap), 1, maxCap);
  const log = new CliLog('client', output);

  const config = {
    transport: common.transport,
    address: `${connect.host.includes(':') ? `[${connect.host}]` : connect.host}:${connect.port}`,
    minCap,
    maxCap,
    logger: log.poolLogger,
    tls: common.tls,
    ...(common.tls === '2' ? { hostname: readHost(values, 'hostname', connect.host) } : {}),
    ...(ca ? { ca } : {}),
    ...(pin !== undefined ? { pin } : {}),
    ...(common.key !== undefined ? { auth: { key: common.key } } : {}),
  } as ClientPoolConfig;
  let pool: ClientPool;
  try {
    pool = createClientPool(config);
  } catch (error) {
    throw rename(error, values.from.bind(values));
  }
  const failures = new FailureReporter(log.poolLogger, 'tunnel', 'opening connections', 10_000);
  const starts = new FailureReporter(log.poolLogger, 'tunnel', `reaching the server at ${config.address as string}`, 10_000);
  log.info(`connecting to ${config.address as string} (${common.transport}, tls ${common.tls}, ${common.key ? 'authenticated' : 'NO authentication (--insecure)'})`);

  let client: TunnelClient | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let fatal: ((failure: CommandFailure) => void) | undefined;
  const fatalError = new Promise<CommandFailure>((resolve) => (fatal = resolve));

  const attempt = async (): Promise<void> => {
    let delay = 250;
    let repicks = 0;
    while (!stopped) {
      let candidate: TunnelClient | undefined;
      try {
        candidate = new TunnelClient({ pool, routes: await pickListenPorts(routes), name });
        client = candidate;
        wire(candidate);
        await candidate.start();
        starts.success();
        return;
      } catch (error) {
        await candidate?.close().catch(() => undefined);
        if (error instanceof ControlRefusedError && error.reason === 'duplicate') {
          // Another client with this key holds the server: the server keeps it. Our pooled streams carry the same identity and would be
          // taken for that client's connections, so none may stay there: the pool closes now, and this command exits (code 3) rather than retry.
          stopped = true;
          await pool.close().catch(() => undefined);
          const who = common.key !== undefined ? 'a client with this key' : 'a client without a key (every --insecure client is the same anonymous one)';
          fatal?.({ exitCode: 3, line: `not serving: the server already has ${who} (${error.text}); exiting with code 3: stop the other client, or give each client a key of its own` });
          return;
        }
        const route = error instanceof InvalidOptionsError ? /^routes\.(.+)\.listen$/.exec(error.option)?.[1] : undefined;
        if (route !== undefined) {
          const asked = routes.find((r) => r.name === route);
          // A port picked for port 0 was taken meanwhile: pick again (a few times). A port given is taken: no retry helps.
          if (asked && portZeroListen(asked) && repicks++ < 5) continue;
          fatal?.({ exitCode: 2, line: new InvalidOptionsError(values.from('route'), (error as Error).message.replace(/^invalid option [^:]+: /, '')).message });
          return;
        }
        if (stopped) return;
        starts.failure(error);
        await new Promise<void>((resolve) => {
          wake = resolve;
          retry = setTimeout(resolve, delay);
        });
        delay = Math.min(delay * 2, 10_000);
      }
    }
  };

  const wire = (tunnel: TunnelClient): void => {
    tunnel.on('up', (states) => {
      const parts = states.map((s) => (s.accepted ? 'accepted' : `refused (${s.status})`));
      log.info(`up: ${states.map((s, i) => `${s.name} ${parts[i]}`).join(', ')}`);
      for (const route of routes) {
        const state = states.find((s) => s.name === route.name);
        if (!state?.accepted) continue;
        const target = typeof route.target === 'string' ? route.target : `${route.target.host}:${route.target.port}`;
        if (route.direction === 'reverse') log.info(`route ${route.name}: server port ${state.port} -> ${target}`);
        else {
          const address = tunnel.addressOf(route.name);
          if (address) log.info(`route ${route.name}: listening on ${address.address}:${address.port} -> ${target} (from the server)`);
        }
      }
    });
    tunnel.on('refused', (answer) => log.warn(`route ${answer.name} refused by the server (${answer.status}): ${answer.text}`));
    tunnel.on('down', (error) => {
      if (!stopped) log.warn(`down${error ? `: ${error.message}` : ''}; reconnecting`);
    });
    tunnel.on('drain', () => log.info('the server is draining: no new connections'));
    tunnel.on('open-failed', ({ error }) => failures.failure(error));
    tunnel.on('connection', () => failures.success());
  };

  const started = attempt();

  return {
    failed: fatalError,
    stop: async () => {
      log.info('stopping: finishing tunnelled connections');
      stopped = true;
      clearTimeout(retry);
      wake?.();
      // Closing the pool ends a start still waiting for the server (a wrong pin, a server down) at once, not at its timeout.
      await client?.close();
      await pool.close();
      await started;
      await client?.close();
      failures.close();
      starts.close();
      log.info('stopped');
    },
  };
}

/** The routes with each port-0 listen address given a port free now on its host (picked by binding port 0 there). */
async function pickListenPorts(routes: readonly RouteOptions[]): Promise<RouteOptions[]> {
  const ports = new Map<number, number>();
  for (const [index, route] of routes.entries()) {
    const zero = portZeroListen(route);
    if (!zero) continue;
    const probe = net.createServer();
    const port = await new Promise<number | NodeJS.ErrnoException>((resolve) => {
      probe.once('error', resolve);
      probe.listen(0, zero.host, () => resolve((probe.address() as net.AddressInfo).port));
    });
    await new Promise<void>((resolve) => (probe.listening ? probe.close(() => resolve()) : resolve()));
    if (typeof port !== 'number') throw new InvalidOptionsError(`routes.${route.name}.listen`, `forward route ${route.name} cannot listen on ${zero.host} (${port.code ?? port.message}): pick a host of this machine`);
    ports.set(index, port);
  }
  return withListenPorts(routes, (_route, index) => ports.get(index)!);
}
