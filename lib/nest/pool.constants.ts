/**
 * Injection tokens. They are readable strings, so a DI error names the pool
 * a person asked for ("nestjs-tunnel-pool:CLIENT_POOL:billing").
 */

/** The name of the pool registered without one. */
export const DEFAULT_POOL_NAME = 'default';

const PREFIX = 'nestjs-tunnel-pool';

function token(kind: string, name?: string): string {
  return name === undefined || name === DEFAULT_POOL_NAME ? `${PREFIX}:${kind}` : `${PREFIX}:${kind}:${name}`;
}

/** The token of the `ClientPoolService` of pool `name` (the default pool when omitted). */
export function getClientPoolToken(name?: string): string {
  return token('CLIENT_POOL', name);
}

/** The token of the `ServerPoolService` of pool `name` (the default pool when omitted). */
export function getServerPoolToken(name?: string): string {
  return token('SERVER_POOL', name);
}

/** The default pool's `ClientPoolService`. */
export const CLIENT_POOL = getClientPoolToken();

/** The default pool's `ServerPoolService`. */
export const SERVER_POOL = getServerPoolToken();

// Internal tokens (not exported from the package).

/** The options of pool `name`, as given to forRoot or returned by the async factory. */
export function getPoolOptionsToken(name?: string): string {
  return token('POOL_OPTIONS', name);
}

/** The validated registration of pool `name`: its settings and its core pools. */
export function getPoolRegistrationToken(name?: string): string {
  return token('POOL_REGISTRATION', name);
}

/** The provider that starts and closes pool `name` with the application. */
export function getPoolLifecycleToken(name?: string): string {
  return token('POOL_LIFECYCLE', name);
}
