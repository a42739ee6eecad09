import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { InvalidOptionsError } from '../core/errors.js';
import { OptionReader, show } from '../core/validate.js';

/**
 * Where a shared key comes from: the key itself (a string, used as its
 * UTF-8 bytes, or a Buffer), `{ env: 'NAME' }` (an environment variable) or
 * `{ file: '/path' }` (read once, at start-up). Env and file contents are
 * trimmed of surrounding whitespace. `id` names the key in stats and logs
 * (default: derived from a hash of the key, never the key itself).
 */
export type AuthKeyInput = string | Buffer | AuthKeySpec;

export interface AuthKeySpec {
  id?: string;
  key?: string | Buffer;
  env?: string;
  file?: string;
}

/** `auth` on a client pool: the one key it proves. */
export interface ClientAuthOptions {
  key: AuthKeyInput;
  /**
   * Fold the TLS channel binding (RFC 9266 style exporter) into the proof
   * when the pooled connection runs TLS (default `true`). Set it to `false`
   * on both ends only when a proxy terminates TLS between them.
   */
  channelBinding?: boolean;
}

/** `auth` on a server pool: the keys it accepts (several during a rotation). */
export interface ServerAuthOptions {
  key: AuthKeyInput | readonly AuthKeyInput[];
  /** See `ClientAuthOptions.channelBinding` (default `true`). */
  channelBinding?: boolean;
  /** Unbound header proofs (ws:// or channelBinding false): how far a client's clock may be off, in ms (default 120 000). */
  maxClockSkew?: number;
  /** Unbound header proofs: how many recent proofs are remembered to refuse a replay (default 65 536). */
  replayCacheSize?: number;
}

/** The smallest key accepted, in bytes. */
export const MIN_KEY_BYTES = 16;
/** The smallest estimated entropy accepted, in bits (a sanity check against placeholders, not a strength meter). */
export const MIN_KEY_ENTROPY_BITS = 48;
/** At most this many keys on a server (each proof is checked against every key). */
export const MAX_KEYS = 16;

const REDACTED = '[redacted]';
const secrets = new WeakMap<AuthKey, Buffer>();

/**
 * One shared key. The bytes are held where no property, `JSON.stringify`
 * or `util.inspect` reaches them; only `id` is shown.
 */
export class AuthKey {
  readonly id: string;

  constructor(id: string, secret: Buffer) {
    this.id = id;
    secrets.set(this, Buffer.from(secret));
    Object.freeze(this);
  }

  toJSON(): { id: string; key: string } {
    return { id: this.id, key: REDACTED };
  }

  toString(): string {
    return `AuthKey(${this.id})`;
  }

  [inspect.custom](): string {
    return `AuthKey { id: ${JSON.stringify(this.id)}, key: ${REDACTED} }`;
  }
}

/** HMAC-SHA256 under a key; the only way the key's bytes are used. */
export function keyHmac(key: AuthKey, data: Buffer): Buffer {
  const secret = secrets.get(key);
  if (!secret) throw new TypeError('not an AuthKey made by this library');
  return createHmac('sha256', secret).update(data).digest();
}

/**
 * The id of a key that has none: `k-` and the first 6 bytes (12 hex digits)
 * of SHA-256 over a label and the key, so it names the key without showing
 * it (and matches no other hash of the same secret).
 */
export function deriveKeyId(secret: Buffer): string {
  return `k-${createHash('sha256').update('nestjs-tunnel-pool key id\0').update(secret).digest('hex').slice(0, 12)}`;
}

/**
 * A fresh random key, 32 bytes as base64url (43 characters): what the
 * sample prints for two-process runs and `keygen` prints. Never one that
 * starts with `-` (one in 64 would): `--key <that>` reads as a flag.
 */
export function generateAuthKey(): string {
  for (;;) {
    const key = randomBytes(32).toString('base64url');
    if (!key.startsWith('-')) return key;
  }
}

/** Shannon entropy of the bytes' own distribution times their count: a rough upper estimate, enough to catch "aaaa…" and placeholders. */
export function estimateEntropyBits(bytes: Uint8Array): number {
  if (bytes.length === 0) return 0;
  const counts = new Map<number, number>();
  for (const byte of bytes) counts.set(byte, (counts.get(byte) ?? 0) + 1);
  let perByte = 0;
  for (const count of counts.values()) {
    const p = count / bytes.length;
    perByte -= p * Math.log2(p);
  }
  return perByte * bytes.length;
}

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

function checkStrength(option: string, secret: Buffer, where: string): void {
  const hint = 'make one with generateAuthKey() or `openssl rand -base64 32`';
  if (secret.length < MIN_KEY_BYTES) {
    throw new InvalidOptionsError(option, `the key ${where} has ${secret.length} bytes, expected at least ${MIN_KEY_BYTES}; ${hint}`);
  }
  if (estimateEntropyBits(secret) < MIN_KEY_ENTROPY_BITS) {
    throw new InvalidOptionsError(option, `the key ${where} is too predictable (repeated or too few distinct characters); ${hint}`);
  }
}

/** One key input → an AuthKey; errors name the option, the env var or the file, never the key. */
function resolveKey(input: unknown, option: string, env: NodeJS.ProcessEnv): AuthKey {
  if (typeof input === 'string' || Buffer.isBuffer(input)) return fromSecret(option, undefined, secretOf(input, option, 'given'), 'given');
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    const kind = input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input;
    throw new InvalidOptionsError(option, `got ${kind}, expected a key (a string or Buffer), { env: "NAME" }, { file: "/path" } or { id, key }`);
  }
  const spec = input as Record<string, unknown>;
  const known = new Set(['id', 'key', 'env', 'file']);
  for (const name of Object.keys(spec)) {
    if (!known.has(name) && spec[name] !== undefined) throw new InvalidOptionsError(`${option}.${name}`, 'unknown option; known options: env, file, id, key');
  }
  const sources = (['key', 'env', 'file'] as const).filter((name) => spec[name] !== undefined);
  if (sources.length !== 1) {
    throw new InvalidOptionsError(option, `set exactly one of key, env or file (got ${sources.length === 0 ? 'none' : sources.join(' and ')})`);
  }
  const id = spec['id'];
  if (id !== undefined && (typeof id !== 'string' || !ID_PATTERN.test(id))) {
    throw new InvalidOptionsError(`${option}.id`, `got ${show(id)}, expected 1 to 64 characters of A-Z a-z 0-9 . _ : -`);
  }
  const source = sources[0]!;
  if (source === 'key') {
    const value = spec['key'];
    if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
      throw new InvalidOptionsError(`${option}.key`, `got ${typeof value}, expected a string or a Buffer`);
    }
    return fromSecret(`${option}.key`, id as string | undefined, secretOf(value, `${option}.key`, 'given'), 'given');
  }
  if (source === 'env') {
    const name = spec['env'];
    if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionsError(`${option}.env`, `got ${show(name)}, expected the name of an environment variable`);
    const value = env[name];
    if (value === undefined || value.trim().length === 0) {
      throw new InvalidOptionsError(`${option}.env`, `the environment variable ${name} is ${value === undefined ? 'not set' : 'empty'}`);
    }
    return fromSecret(`${option}.env`, id as string | undefined, Buffer.from(value.trim(), 'utf8'), `in the environment variable ${name}`);
  }
  const path = spec['file'];
  if (typeof path !== 'string' || path.length === 0) throw new InvalidOptionsError(`${option}.file`, `got ${show(path)}, expected a file path`);
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (error) {
    throw new InvalidOptionsError(`${option}.file`, `cannot read ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return fromSecret(`${option}.file`, id as string | undefined, trimBytes(text), `in the file ${JSON.stringify(path)}`);
}

function secretOf(value: string | Buffer, option: string, where: string): Buffer {
  if (typeof value === 'string') return Buffer.from(value.trim(), 'utf8');
  if (value.length === 0) throw new InvalidOptionsError(option, `the key ${where} is empty`);
  return value;
}

/** Strips ASCII whitespace (a trailing newline of `echo key > file`) at both ends. */
function trimBytes(bytes: Buffer): Buffer {
  const space = (b: number | undefined): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
  let start = 0;
  let end = bytes.length;
  while (start < end && space(bytes[start])) start++;
  while (end > start && space(bytes[end - 1])) end--;
  return bytes.subarray(start, end);
}

function fromSecret(option: string, id: string | undefined, secret: Buffer, where: string): AuthKey {
  checkStrength(option, secret, where);
  return new AuthKey(id ?? deriveKeyId(secret), secret);
}

/** Resolved client `auth`. */
export class ClientAuth {
  constructor(
    readonly key: AuthKey,
    readonly channelBinding: boolean,
  ) {
    Object.freeze(this);
  }
}

/** Resolved server `auth`: the accepted keys, ids unique. */
export class ServerAuth {
  constructor(
    readonly keys: readonly AuthKey[],
    readonly channelBinding: boolean,
    readonly maxClockSkew: number,
    readonly replayCacheSize: number,
  ) {
    Object.freeze(this.keys);
    Object.freeze(this);
  }
}

function reader(input: unknown, option: string): OptionReader {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidOptionsError(option, `got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}, expected { key }`);
  }
  return new OptionReader(input as Record<string, unknown>, option);
}

/** Validates a client pool's `auth` option (undefined: no authentication, the default wire). */
export function resolveClientAuth(input: unknown, option = 'auth', env: NodeJS.ProcessEnv = process.env): ClientAuth | undefined {
  if (input === undefined) return undefined;
  const read = reader(input, option);
  const raw = read.raw('key');
  if (raw === undefined) throw new InvalidOptionsError(read.name('key'), 'set the shared key: a string or Buffer, { env: "NAME" } or { file: "/path" }');
  if (Array.isArray(raw)) throw new InvalidOptionsError(read.name('key'), 'a client proves one key; several keys are for a server (key rotation)');
  const key = resolveKey(raw, read.name('key'), env);
  const channelBinding = read.bool('channelBinding', true);
  read.rejectUnknown();
  return new ClientAuth(key, channelBinding);
}

/** Validates a server pool's `auth` option (undefined: no authentication, the default wire). */
export function resolveServerAuth(input: unknown, option = 'auth', env: NodeJS.ProcessEnv = process.env): ServerAuth | undefined {
  if (input === undefined) return undefined;
  const read = reader(input, option);
  const raw = read.raw('key');
  if (raw === undefined) throw new InvalidOptionsError(read.name('key'), 'set the accepted key, or an array of keys during a rotation');
  const inputs: unknown[] = Array.isArray(raw) ? raw : [raw];
  if (inputs.length === 0 || inputs.length > MAX_KEYS) {
    throw new InvalidOptionsError(read.name('key'), `got ${inputs.length} keys, expected 1 to ${MAX_KEYS}`);
  }
  const keys = inputs.map((entry, i) => resolveKey(entry, Array.isArray(raw) ? `${read.name('key')}[${i}]` : read.name('key'), env));
  const ids = new Set<string>();
  for (const [i, key] of keys.entries()) {
    if (ids.has(key.id)) throw new InvalidOptionsError(`${read.name('key')}[${i}]`, `the key id ${JSON.stringify(key.id)} is used twice (or the same key is given twice)`);
    ids.add(key.id);
  }
  for (let i = 0; i < keys.length; i++) {
    for (let j = 0; j < i; j++) {
      if (sameSecret(keys[i]!, keys[j]!)) throw new InvalidOptionsError(`${read.name('key')}[${i}]`, `the same key as ${read.name('key')}[${j}] under another id`);
    }
  }
  const channelBinding = read.bool('channelBinding', true);
  const maxClockSkew = read.ms('maxClockSkew', 120_000, 1_000);
  const replayCacheSize = read.int('replayCacheSize', 65_536, 16, 16_777_216);
  read.rejectUnknown();
  return new ServerAuth(keys, channelBinding, maxClockSkew, replayCacheSize);
}

function sameSecret(a: AuthKey, b: AuthKey): boolean {
  return secrets.get(a)!.equals(secrets.get(b)!);
}
