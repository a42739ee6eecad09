import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wsMasking } from '../../lib/transports/ws/masking.js';

// Client frames are masked. ws picks its masker once, when it loads: Node's
// own http.websocketMask where Node has it (Node 26), else the bufferutil
// addon if the application installed it, else JavaScript. This package
// depends on no native addon, so a clean install masks natively on Node 26
// and in JavaScript on 22 and 24, and the pool's stats say which. Each case
// runs the built package (dist/, as `npm test` builds it first) in a Node
// process of its own, wrapping Node's mask before ws loads to see whether
// ws really calls it.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const nodeHasMask = typeof (http as { websocketMask?: unknown }).websocketMask === 'function';

const PROGRAM = `
  import http from 'node:http';
  import { createRequire } from 'node:module';
  let nodeMaskCalls = 0;
  if (typeof http.websocketMask === 'function') {
    const original = http.websocketMask;
    http.websocketMask = (...args) => { nodeMaskCalls++; return original(...args); };
  }
  const { createServerPool, createClientPool, wsMasking } = await import('nestjs-tunnel-pool');
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
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes('bufferutil'));
  console.log(JSON.stringify({ masking: wsMasking(), stats: client.stats.transportStats.masking, intact, loaded, nodeMaskUsed: nodeMaskCalls > 0 }));
`;

function run(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, ['--input-type=module', '-e', PROGRAM], { cwd: root, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Outcome {
  masking: string;
  stats: string;
  intact: boolean;
  loaded: string[];
  nodeMaskUsed: boolean;
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
  it(`this Node (${process.version}) masks with ${nodeHasMask ? "its own http.websocketMask" : 'JavaScript: it has no mask of its own and the package brings no addon'}`, () => {
    expect(wsMasking()).toBe(nodeHasMask ? 'node' : 'javascript');
  });

  it('the reported masker is the one ws uses, and 4 MiB of masked frames arrive intact', async () => {
    const result = await outcome(baseEnv);
    expect(result).toEqual({
      masking: nodeHasMask ? 'node' : 'javascript',
      stats: nodeHasMask ? 'node' : 'javascript',
      intact: true,
      loaded: [],
      nodeMaskUsed: nodeHasMask,
    });
  });

  it('WS_NO_BUFFER_UTIL=1 changes nothing for a clean install (it only turns bufferutil off)', async () => {
    const result = await outcome({ ...baseEnv, WS_NO_BUFFER_UTIL: '1' });
    expect(result).toMatchObject({ masking: nodeHasMask ? 'node' : 'javascript', intact: true, loaded: [], nodeMaskUsed: nodeHasMask });
  });
});
