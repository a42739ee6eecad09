import { createRequire } from 'node:module';
import http from 'node:http';

/** Which code masks the client's frames: Node itself, the bufferutil addon, or JavaScript in ws. */
export type WsMasking = 'node' | 'bufferutil' | 'javascript';

const require = createRequire(import.meta.url);
let cached: WsMasking | undefined;

/**
 * Decides what `ws` masks frames with, the same way `ws` does when it loads
 * (lib/buffer-util.js): Node's own `http.websocketMask` where it exists, else
 * the `bufferutil` addon unless `WS_NO_BUFFER_UTIL` is set, else JavaScript.
 * bufferutil itself falls back to JavaScript when its binary cannot load, so
 * it counts only when its `mask` is native code. This package does not
 * depend on bufferutil; an application may install it (on Node 22 and 24,
 * which have no mask of their own). Client→server throughput depends on it
 * (here: ~90 MiB/s in JavaScript, ~800 MiB/s native).
 */
export function wsMasking(): WsMasking {
  if (cached) return cached;
  if (typeof (http as { websocketMask?: unknown }).websocketMask === 'function') return (cached = 'node');
  if (process.env['WS_NO_BUFFER_UTIL']) return (cached = 'javascript');
  try {
    const addon = require('bufferutil') as { mask?: unknown };
    cached = typeof addon.mask === 'function' && Function.prototype.toString.call(addon.mask).includes('[native code]') ? 'bufferutil' : 'javascript';
  } catch {
    cached = 'javascript';
  }
  return cached;
}
