import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wsMasking } from '../../lib/transports/ws/masking.js';

// Client frames are masked: ~90 MiB/s in JavaScript, ~800 MiB/s with the
// bufferutil addon. A clean install must give ws the addon, and the library
// must work where it cannot load (ws then masks in JavaScript). Both run the
// built package (dist/, as `npm test` builds it first) in a Node process of
// their own, since ws picks its masker once, when it loads.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const PROGRAM = `
  import { createRequire } from 'node:module';
  import { createServerPool, createClientPool, wsMasking } from 'nestjs-tunnel-pool';
  const server = createServerPool({ transport: 'ws', port: 0 });
  await server.start();
  const client = createClientPool({ transport: 'ws', address: '127.0.0.1:' + server.address().port });
  client.start();
  const [id, theirs] = await server.incomingGet(5000);
  const mine = await client.outgoingGet(id, 5000);
  const size = 4 * 1024 * 1024;
  const sent = Buffer.alloc(size);
  for (let i = 0; i < size; i++) sent[i] = (i * 13) & 0xff;
  const received = [];
  let total = 0;
  const done = new Promise((resolve) => theirs.on('data', (chunk) => {
    received.push(chunk);
    total += chunk.length;
    if (total >= size) resolve();
  }));
  mine.write(sent);
  await done;
  const intact = Buffer.concat(received).equals(sent);
  mine.destroy(); theirs.destroy();
  await client.close(); await server.close();
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes('bufferutil')).map((path) => path.slice(path.indexOf('bufferutil')));
  console.log(JSON.stringify({ masking: wsMasking(), stats: client.stats.transportStats.masking, intact, loaded }));
`;

function run(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, ['--input-type=module', '-e', PROGRAM], { cwd: root, env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Outcome {
  masking: string;
  stats: string;
  intact: boolean;
  loaded: string[];
}

async function outcome(env: NodeJS.ProcessEnv): Promise<Outcome> {
  expect(existsSync(join(root, 'dist/lib/transports/ws/index.js'))).toBe(true); // npm test builds dist/ first
  const { code, stdout, stderr } = await run(env);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return JSON.parse(stdout.trim()) as Outcome;
}

const { WS_NO_BUFFER_UTIL: _ignored, ...baseEnv } = process.env;

describe('ws frame masking', () => {
  it('this install gives ws a native masker (the bufferutil addon)', () => {
    expect(['bufferutil', 'node']).toContain(wsMasking());
  });

  it('ws loads the bufferutil binary, and 4 MiB of masked frames arrive intact', async () => {
    const result = await outcome(baseEnv);
    expect(result).toMatchObject({ masking: 'bufferutil', stats: 'bufferutil', intact: true });
    expect(result.loaded.some((path) => path.endsWith('.node'))).toBe(true);
  });

  it('with WS_NO_BUFFER_UTIL=1 ws masks in JavaScript and the library works the same', async () => {
    const result = await outcome({ ...baseEnv, WS_NO_BUFFER_UTIL: '1' });
    expect(result).toEqual({ masking: 'javascript', stats: 'javascript', intact: true, loaded: [] });
  });
});
