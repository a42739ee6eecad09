/**
 * Repro: where the RSS of an idle pooled HTTP/2 stream goes, against a raw
 * `node:http2` stream that carried the same bytes (POST, a 1-byte request
 * body, 200 with content-type, a 4-byte reply), both ends in this process,
 * 1000 streams opened 32 at a time after 8 warm-up streams, figures per
 * stream after a forced GC: RSS, heapUsed, heapTotal.
 *
 *   npm run build
 *   node --expose-gc dist/bench/repro/http2-idle-memory.js --side raw
 *   node --expose-gc dist/bench/repro/http2-idle-memory.js --side pooled
 *   node --expose-gc --max-semi-space-size=1 dist/bench/repro/http2-idle-memory.js --side pooled
 *
 * One side per process: the first side's heap growth would be counted
 * against the second's.
 */
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { createSelfSignedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { DEFAULT_INITIAL_WINDOW_SIZE, DEFAULT_MAX_SESSION_MEMORY_MIB } from '../../lib/transports/http2/http2-settings.js';

const { values } = parseArgs({ options: { side: { type: 'string', default: 'pooled' }, count: { type: 'string', default: '1000' } } });
const count = Number(values.count);
const cert = createSelfSignedCertificate();
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const settle = async (): Promise<NodeJS.MemoryUsage> => {
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
};

async function raw(): Promise<{ base: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage; close: () => void }> {
  const settings = { initialWindowSize: DEFAULT_INITIAL_WINDOW_SIZE, maxConcurrentStreams: 4096 };
  const server = http2.createSecureServer({ ...cert, minVersion: 'TLSv1.3', settings, maxSessionMemory: DEFAULT_MAX_SESSION_MEMORY_MIB });
  const held: http2.Http2Stream[] = [];
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
    stream.once('data', () => stream.write(Buffer.from('0a0b0c0d', 'hex')));
    held.push(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, settings, maxSessionMemory: DEFAULT_MAX_SESSION_MEMORY_MIB });
  await new Promise((resolve) => session.once('connect', resolve));
  const open = (): Promise<http2.ClientHttp2Stream> =>
    new Promise((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: false });
      stream.write(Buffer.of(0));
      stream.once('data', () => resolve(stream));
    });
  for (let i = 0; i < 8; i++) (await open()).close();
  const base = await settle();
  for (let i = 0; i < count; i += 32) held.push(...(await Promise.all(Array.from({ length: Math.min(32, count - i) }, open))));
  const after = await settle();
  return { base, after, close: () => (session.destroy(), server.close()) };
}

async function pooled(): Promise<{ base: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage; close: () => Promise<void> }> {
  const server = createServerPool({ transport: 'http2', host: '127.0.0.1', port: 0, tls: cert });
  await server.start();
  const address = `127.0.0.1:${server.address()!.port}`;
  const warm = createClientPool({ transport: 'http2', address, tls: '1', minCap: 8 });
  warm.start();
  await warm.waitForActive(8, 30_000);
  await warm.close();
  const base = await settle();
  const client = createClientPool({ transport: 'http2', address, tls: '1', minCap: count });
  client.start();
  await client.waitForActive(count, 60_000);
  while (server.active < count) await new Promise((resolve) => setTimeout(resolve, 5));
  const after = await settle();
  return { base, after, close: async () => (await client.close(), await server.close()) };
}

const result = values.side === 'raw' ? await raw() : await pooled();
const per = (key: 'rss' | 'heapUsed' | 'heapTotal'): string => `${((result.after[key] - result.base[key]) / count / 1024).toFixed(1)} KiB`;
process.stdout.write(`${values.side}: per idle stream (both ends) RSS ${per('rss')}, heapUsed ${per('heapUsed')}, heapTotal ${per('heapTotal')}\n`);
await result.close();
process.exit(0);
