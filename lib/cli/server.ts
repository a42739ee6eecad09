import { InvalidOptionsError, ListenError } from '../core/errors.js';
import { FailureReporter } from '../core/logger.js';
import type { ServerPool } from '../core/server-pool.js';
import { createServerPool, type ServerPoolConfig } from '../pool-factory.js';
import type { AllowRuleOptions } from '../tunnel/routes.js';
import { TunnelServer } from '../tunnel/tunnel-server.js';
import { CliLog, type CliOutput } from './log.js';
import { helpText, parseFlags, readAllow, readCommon, readHost, readHostPort, SERVER_FLAGS, type Env } from './options.js';

export const SERVER_HELP = helpText(
  'server',
  SERVER_FLAGS,
  'Runs the tunnel server: tunnel clients connect to --listen and announce their routes; the server opens\nthe ones --allow, --ports and --allow-target permit (a public listener per reverse route).',
  '\nExample:\n  nestjs-tunnel-pool server --listen 0.0.0.0:10101 --key-file /etc/tunnel.key --ports 20000-20100\n',
);

/** A running server command: `stop()` drains and closes. */
export interface RunningCommand {
  stop(): Promise<void>;
  /** Settles when the command cannot run on (a forward route's port taken, another client with this key): the stderr line and the exit code. */
  failed?: Promise<CommandFailure>;
}

export interface CommandFailure {
  /** One line, after `nestjs-tunnel-pool <command>: `. */
  line: string;
  exitCode: number;
}

/** Reads the flags, starts the pool and the tunnel server, logs what happens. Throws InvalidOptionsError naming the flag on a bad value. */
export async function runServer(args: string[], env: Env, output: CliOutput): Promise<RunningCommand | undefined> {
  const values = parseFlags(SERVER_FLAGS, args, env);
  if (values.bool('help')) {
    output.out(SERVER_HELP);
    return undefined;
  }
  const common = readCommon(values);
  const listen = readHostPort(values, 'listen', '0.0.0.0:10101');
  const publicHost = readHost(values, 'public-host', listen.host);
  const cert = values.file('tls-cert');
  const key = values.file('tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new InvalidOptionsError(values.from(cert === undefined ? 'tls-cert' : 'tls-key'), 'give --tls-cert and --tls-key together');
  if (common.tls === '2' && cert === undefined) throw new InvalidOptionsError(values.from('tls-cert'), 'tls 2 needs the server certificate: give --tls-cert and --tls-key (or --tls 1 for a certificate made at start-up)');
  if (common.tls === '0' && cert !== undefined) throw new InvalidOptionsError(values.from('tls'), '--tls-cert is given but tls is 0: give --tls 1 or 2');
  const allow = readAllow(values);
  const ports = values.list('ports');
  const targets = values.list('allow-target');
  const maxCap = values.int('max-cap', 64, 1, 65_536);
  const log = new CliLog('server', output);

  const rule: AllowRuleOptions = { names: allow.length > 0 ? allow : '*', ports, targets };
  const config = {
    transport: common.transport,
    host: listen.host,
    port: listen.port,
    maxCap,
    logger: log.poolLogger,
    ...(common.tls === '0' ? {} : { tls: cert && key ? { cert, key } : 'self-signed' }),
    ...(common.key !== undefined ? { auth: { key: common.key } } : {}),
  } as ServerPoolConfig;
  let pool: ServerPool;
  let server: TunnelServer;
  try {
    pool = createServerPool(config);
    server = new TunnelServer({ pool, allow: { rules: [rule] }, host: publicHost, earlyData: values.bool('early-data', true) });
  } catch (error) {
    throw rename(error, values.from.bind(values));
  }
  try {
    await server.start();
  } catch (error) {
    await server.close().catch(() => undefined);
    await pool.close().catch(() => undefined);
    if (error instanceof ListenError) throw new InvalidOptionsError(values.from('listen'), `${error.message}: pick another address or port`);
    throw error;
  }
  const bound = pool.address()!;
  log.info(`listening for tunnel clients on ${hostPort(bound.address, bound.port)} (${common.transport}, tls ${common.tls}, ${common.key ? 'authenticated' : 'NO authentication (--insecure)'})`);
  log.info(`allowing routes ${rule.names === '*' ? '*' : allow.join(', ')}; public ports ${ports.length > 0 ? ports.join(', ') : 'none (give --ports for reverse routes)'}; forward targets ${targets.length > 0 ? targets.join(', ') : 'none'}`);

  const failures = new FailureReporter(log.poolLogger, 'tunnel', 'opening connections', 10_000);
  server.on('client', (client, routes) => {
    const parts = routes.map((r) => (r.status === 'accepted' ? (r.port ? `${r.name} on ${hostPort(publicHost, r.port)}` : `${r.name} (forward)`) : `${r.name} refused`));
    log.info(`client ${client} up: ${parts.join(', ') || 'no routes'}`);
    // The port bound (the one picked when the route asked for 0); a wildcard host is no address to connect to.
    for (const r of routes) {
      if (r.status !== 'accepted' || !r.port) continue;
      if (WILDCARD.has(publicHost)) log.info(`route ${r.name}: connect to port ${r.port} of this machine (listening on ${hostPort(publicHost, r.port)})`);
      else log.info(`route ${r.name}: connect to ${hostPort(publicHost, r.port)}`);
    }
  });
  server.on('refused', (client, answer) => log.warn(`client ${client}: route ${answer.name} refused (${answer.status}): ${answer.text}`));
  server.on('client-gone', (client, error) => log.info(`client ${client} down${error ? `: ${error.message}` : ''}`));
  server.on('duplicate', (client) => log.warn(`client ${client}: a second control connection was refused (one per client; the first keeps it)`));
  server.on('open-failed', ({ error }) => failures.failure(error));
  server.on('connection', () => failures.success());
  server.on('accounted', ({ client, route, complete, mine, peer }) => {
    if (!complete) log.warn(`client ${client}, route ${route}: truncated connection (server sent ${mine.sent}, client read ${peer.received}; client sent ${peer.sent}, server read ${mine.received})`);
  });

  return {
    stop: async () => {
      log.info('stopping: draining tunnelled connections');
      failures.close();
      await server.close();
      await pool.close();
      log.info('stopped');
    },
  };
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A library option error renamed to the flag it came from (the pool's `tls` is --tls-cert, ...). */
export function rename(error: unknown, from: (flag: string) => string): unknown {
  if (!(error instanceof InvalidOptionsError)) return error;
  const table: Array<[RegExp, string]> = [
    [/^tls/, 'tls-cert'],
    [/^auth/, 'key'],
    [/^(host|port|address)/, 'listen'],
    [/^pin/, 'pin'],
    [/^ca/, 'tls-ca'],
    [/^maxCap/, 'max-cap'],
    [/^minCap/, 'min-cap'],
    [/^routes/, 'route'],
    [/^allow\.rules\[\d+\]\.ports/, 'ports'],
    [/^allow\.rules\[\d+\]\.targets/, 'allow-target'],
    [/^allow\.rules\[\d+\]\.names/, 'allow'],
  ];
  const found = table.find(([pattern]) => pattern.test(error.option));
  if (!found) return error;
  // The library's advice names its API; the command line has its own way to make a key.
  const detail = error.message.replace(/^invalid option [^:]+: /, '').replace('generateAuthKey()', 'nestjs-tunnel-pool keygen');
  return new InvalidOptionsError(from(found[1]), detail);
}
