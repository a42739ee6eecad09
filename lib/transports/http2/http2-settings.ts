import type { OptionReader } from '../../core/validate.js';

/** Flow-control and memory knobs shared by both sides (see docs/transports/http2.md for what they cost). */
export interface Http2FlowOptions {
  /**
   * Receive window of each stream, in bytes (SETTINGS_INITIAL_WINDOW_SIZE;
   * default 1 MiB, HTTP/2's own default is 64 KiB). How much one stream may
   * have in flight towards this side before it is read.
   */
  initialWindowSize?: number;
  /**
   * Receive window of the whole session, in bytes (default 2 MiB; HTTP/2's
   * own is 64 KiB). Keep it within what the sockets' buffers absorb: Node
   * stops reading a session's socket while its own write to it is pending,
   * so two peers both allowed more in flight than the buffers hold can each
   * wait for the other to read, and the session freezes (seen with 64 MiB
   * and bulk data both ways; see docs/transports/http2.md).
   */
  sessionWindowSize?: number;
  /** Node's `maxSessionMemory` per session, in MiB (default 64; Node's own is 10). */
  maxSessionMemory?: number;
}

export const HTTP2_FLOW_OPTION_KEYS = ['initialWindowSize', 'sessionWindowSize', 'maxSessionMemory'] as const;

export interface ResolvedHttp2Flow {
  initialWindowSize: number;
  sessionWindowSize: number;
  maxSessionMemory: number;
}

export const DEFAULT_INITIAL_WINDOW_SIZE = 1024 * 1024;
export const DEFAULT_SESSION_WINDOW_SIZE = 2 * 1024 * 1024;
export const DEFAULT_MAX_SESSION_MEMORY_MIB = 64;
const MAX_WINDOW = 2 ** 31 - 1;
const HTTP2_DEFAULT_WINDOW = 65_535;

export function resolveHttp2Flow(read: OptionReader): ResolvedHttp2Flow {
  return {
    initialWindowSize: read.int('initialWindowSize', DEFAULT_INITIAL_WINDOW_SIZE, HTTP2_DEFAULT_WINDOW, MAX_WINDOW),
    sessionWindowSize: read.int('sessionWindowSize', DEFAULT_SESSION_WINDOW_SIZE, HTTP2_DEFAULT_WINDOW, MAX_WINDOW),
    maxSessionMemory: read.int('maxSessionMemory', DEFAULT_MAX_SESSION_MEMORY_MIB, 1, 1 << 20),
  };
}

/** After the pool's close timeout (when it cuts what the application still holds), how long sessions get to close before they are destroyed. */
export const SESSION_CLOSE_GRACE = 250;
