import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Bulk data both ways on one pooled HTTP/2 stream, client and server pools
// in separate processes. Node stops reading a session's socket while its
// own write to it is pending, so windows larger than the socket buffers can
// freeze the session (both peers waiting for the other to read). The
// default windows must not. The script reports a stall after 3 s without
// a byte; it is built from bench/repro by `npm test`'s build step. (With
// 8 MiB / 64 MiB windows it froze in most runs here, not all, so there is
// no control case asserting the stall.)

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const script = resolve(root, 'dist/bench/repro/http2-bidi-stall.js');

function run(...args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [script, ...args], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${String(error)}\n${stdout}\n${stderr}`));
      else resolvePromise(stdout);
    });
  });
}

describe('http2: bulk data both ways across processes', () => {
  it('the script is built', () => {
    expect(existsSync(script)).toBe(true);
  });

  it('completes with the default windows', async () => {
    expect(await run('--size', '64')).toMatch(/the transport defaults: completed/);
  });
});
