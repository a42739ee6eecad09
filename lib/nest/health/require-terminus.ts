import type { HealthIndicatorService } from '@nestjs/terminus';
import { MissingModuleError } from '../../core/errors.js';

/**
 * An indicator's Terminus service, or the error that names the fix: the
 * indicators take it as optional only to replace Nest's generic "can't
 * resolve dependencies" with this.
 */
export function requireTerminus(indicator: string, service: HealthIndicatorService | undefined): HealthIndicatorService {
  if (service) return service;
  throw new MissingModuleError(
    `${indicator} needs Terminus's HealthIndicatorService: do not list ${indicator} in your providers, import PoolHealthModule from 'nestjs-tunnel-pool/health' instead (it brings TerminusModule)`,
  );
}
