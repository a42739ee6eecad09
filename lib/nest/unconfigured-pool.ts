import { InvalidOptionsError } from '../core/errors.js';

/** Why a service has nothing to do: its registration does not configure that side. */
export function unconfiguredMessage(role: 'client' | 'server', name: string): string {
  return `no ${role} pool is configured for pool '${name}'`;
}

/** What every method of a service without its side throws (or rejects with). */
export function unconfiguredError(role: 'client' | 'server', name: string): InvalidOptionsError {
  return new InvalidOptionsError(role, `${unconfiguredMessage(role, name)}: add ${role} to its PoolModule options`);
}
