// `npm start`: the sample tunnel with its configuration from the environment
// (see sample/README.md). Prints where to connect, then runs until Ctrl-C or
// SIGTERM and exits on its own once everything is closed.
import { loadConfig, SampleConfigError, type SampleConfig } from './config.js';
import { createSampleApp } from './sample-app.js';

/** How long a shutdown may take before the process gives up on exiting by itself. */
const SHUTDOWN_WATCHDOG_MS = 10_000;

async function main(): Promise<void> {
  let config: SampleConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof SampleConfigError)) throw error;
    reportConfigError(error);
    return;
  }

  const stopping = new AbortController();
  // Nest's shutdown hook closes the app, then sends the signal to the process
  // again so that the default action (termination) ends it. This listener
  // outlives Nest's, so that second signal is absorbed: the process then
  // exits by itself, with code 0, because nothing is left open. A leak would
  // keep it alive; the watchdog reports that instead of hanging forever.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    console.log(`${signal} received, shutting down...`);
    setTimeout(() => {
      console.error(`still running ${SHUTDOWN_WATCHDOG_MS} ms after ${signal}: something is still open; exiting with code 1`);
      process.exit(1);
    }, SHUTDOWN_WATCHDOG_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const sample = await createSampleApp(config, { enableShutdownHooks: true });
  const { urls, ports } = sample;
  process.once('exit', (code) => console.log(`sample stopped (exit code ${code})`));

  const lines = [
    `nestjs-tunnel-pool sample: role ${config.role}, transport ${config.transport}, TLS mode ${config.tls}`,
  ];
  if (urls.public) lines.push(`  through the tunnel:   curl ${urls.public}`);
  lines.push(`  health:               curl ${urls.health}`);
  if (urls.target) lines.push(`  target (no tunnel):   curl ${urls.target}`);
  if (ports.pool !== undefined) lines.push(`  pool listener on port ${ports.pool} (the tunnel's control channel rides on one of its streams)`);
  if (config.role === 'server' && ports.public === undefined) lines.push('  public port:          picked when the client side announces its route (PUBLIC_PORT=0)');
  if (config.auth?.source === 'generated' && config.role === 'server') {
    // Printed once, here: the client process needs it. The library never logs a key.
    lines.push(`  key made at start-up: start the client side with TUNNEL_KEY=${config.auth.key as string}`);
  }
  lines.push(`  pooled connections:   ${config.auth ? `authenticated (key from ${config.auth.source === 'generated' ? 'start-up' : config.auth.source})` : 'NOT authenticated (TUNNEL_AUTH=off)'}`);
  if (config.role === 'client') lines.push(`  dialling the server side at ${config.server} (pool port ${config.ports.pool}); route web asks for its public port ${config.ports.public || '(any)'}`);
  lines.push('Press Ctrl-C to stop.');
  console.log(lines.join('\n'));

  try {
    await sample.ready({ signal: stopping.signal });
  } catch {
    return; // stopped before the tunnel came up
  }
  console.log(config.role === 'server'
    ? 'tunnel ready: a tunnel client is connected and its route is open'
    : 'tunnel ready: the control channel is up, the server side opened the route and pooled streams are idle');
}

/** The variable behind a pool option the library rejected (it names options, not variables). */
const OPTION_VARIABLES: Record<string, string> = {
  transport: 'TUNNEL_TRANSPORT',
  tls: 'TUNNEL_TLS',
  host: 'TUNNEL_HOST',
  port: 'POOL_PORT',
  minCap: 'POOL_MIN_CAP',
  minIvl: 'POOL_MIN_IVL',
  maxIvl: 'POOL_MAX_IVL',
  'client.maxCap': 'POOL_MAX_CAP',
  'server.maxCap': 'POOL_SERVER_MAX_CAP',
  'auth.key': 'TUNNEL_KEY',
  'auth.key.file': 'TUNNEL_KEY_FILE',
};

function variableHint(error: unknown): string {
  const option = (error as { option?: unknown } | undefined)?.option;
  if (typeof option !== 'string') return '';
  const variable = OPTION_VARIABLES[option] ?? OPTION_VARIABLES[option.replace(/^(client|server)\./, '')];
  return variable ? ` (check ${variable})` : '';
}

/** One line per problem, each naming its variable (the variables and their defaults: sample/README.md). */
function reportConfigError(error: SampleConfigError): void {
  for (const problem of error.problems) console.error(`the sample cannot start: ${problem}`);
  process.exitCode = 2;
}

main().catch((error: unknown) => {
  if (error instanceof SampleConfigError) return reportConfigError(error);
  console.error(`the sample failed to start: ${error instanceof Error ? error.message : String(error)}${variableHint(error)}`);
  process.exitCode = 1;
});
