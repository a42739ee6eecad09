/**
 * The errors of the authentication extension live with every other error
 * class in lib/core/errors.ts (one table, one brand); re-exported here for
 * the auth modules.
 */
export { AuthHandshakeError, AuthRefusedError, PoolErrorCode, type AuthFailure } from '../core/errors.js';
