import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as coreEntry from '../../lib/core-entry.js';
import * as errors from '../../lib/core/errors.js';
import {
  AuthHandshakeError,
  AuthRefusedError,
  DialError,
  DuplicatePoolError,
  FdLimitError,
  FirstStreamLostError,
  FirstStreamTakenError,
  HandshakeError,
  InvalidIdError,
  InvalidOptionsError,
  IpNotAllowedError,
  isPoolError,
  ListenError,
  MissingModuleError,
  PoolAbortedError,
  PoolClosedError,
  PoolError,
  PoolErrorCode,
  PoolFullError,
  PoolNotStartedError,
  PoolRefusedError,
  PoolTimeoutError,
  StreamCutError,
  TlsMismatchError,
  CertificatePinError,
  WsStreamError,
  ControlProtocolError,
  ControlVersionError,
  ControlTimeoutError,
  ControlRefusedError,
  TargetConnectError,
  RouteLimitError,
  ProxyHeaderError,
} from '../../lib/core/errors.js';
import { Http2StreamAbortedError } from '../../lib/transports/http2/http2-stream.error.js';

/**
 * Every error class of the library in one table: its code, its parent,
 * its brand, what it does with a message and a cause. A class added to
 * lib/core/errors.ts without a row here fails the first test.
 */

const BRAND = Symbol.for('nestjs-tunnel-pool.error');
const cause = new Error('the cause');

interface Row {
  make: () => PoolError;
  code: string;
  parent: abstract new (...args: never[]) => unknown;
  /** The message the instance carries (what `make` passed, or the default). */
  message: string | RegExp;
  /** Whether the constructor takes `{ cause }` and keeps it. */
  keepsCause: boolean;
}

const TABLE: Record<string, Row> = {
  PoolError: { make: () => new PoolError('POOL_ERR_DIAL', 'base', { cause }), code: 'POOL_ERR_DIAL', parent: Error, message: 'base', keepsCause: true },
  PoolTimeoutError: { make: () => new PoolTimeoutError('late'), code: 'POOL_ERR_TIMEOUT', parent: PoolError, message: 'late', keepsCause: false },
  PoolClosedError: { make: () => new PoolClosedError(), code: 'POOL_ERR_CLOSED', parent: PoolError, message: 'the pool is closed', keepsCause: false },
  PoolNotStartedError: { make: () => new PoolNotStartedError(), code: 'POOL_ERR_NOT_STARTED', parent: PoolError, message: /call start\(\) first/, keepsCause: false },
  PoolRefusedError: { make: () => new PoolRefusedError('no', { cause }), code: 'POOL_ERR_REFUSED', parent: PoolError, message: 'no', keepsCause: true },
  IpNotAllowedError: { make: () => new IpNotAllowedError(undefined, { cause }), code: 'POOL_ERR_IP_NOT_ALLOWED', parent: PoolRefusedError, message: /allowedIps/, keepsCause: true },
  PoolFullError: { make: () => new PoolFullError(undefined, { cause }), code: 'POOL_ERR_FULL', parent: PoolRefusedError, message: /maxCap/, keepsCause: true },
  DialError: { make: () => new DialError('dial', { cause }), code: 'POOL_ERR_DIAL', parent: PoolError, message: 'dial', keepsCause: true },
  HandshakeError: { make: () => new HandshakeError('hs', { cause }), code: 'POOL_ERR_HANDSHAKE', parent: PoolError, message: 'hs', keepsCause: true },
  TlsMismatchError: { make: () => new TlsMismatchError('tls', { cause }), code: 'POOL_ERR_TLS_MISMATCH', parent: HandshakeError, message: 'tls', keepsCause: true },
  CertificatePinError: { make: () => new CertificatePinError('pinned', undefined, { cause }), code: 'POOL_ERR_CERT_PIN', parent: HandshakeError, message: 'pinned', keepsCause: true },
  AuthRefusedError: { make: () => new AuthRefusedError(undefined, { cause }), code: 'POOL_ERR_AUTH_REFUSED', parent: PoolRefusedError, message: /share the key/, keepsCause: true },
  AuthHandshakeError: { make: () => new AuthHandshakeError('required', undefined, { cause }), code: 'POOL_ERR_AUTH', parent: HandshakeError, message: /set auth.key/, keepsCause: true },
  InvalidIdError: { make: () => new InvalidIdError('id'), code: 'POOL_ERR_INVALID_ID', parent: PoolError, message: 'id', keepsCause: false },
  InvalidOptionsError: { make: () => new InvalidOptionsError('maxCap', 'got -1'), code: 'POOL_ERR_INVALID_OPTIONS', parent: PoolError, message: 'invalid option maxCap: got -1', keepsCause: false },
  ListenError: { make: () => new ListenError('port', 'taken', { cause }), code: 'POOL_ERR_LISTEN', parent: PoolError, message: 'taken', keepsCause: true },
  DuplicatePoolError: { make: () => new DuplicatePoolError('twice'), code: 'POOL_ERR_DUPLICATE_POOL', parent: PoolError, message: 'twice', keepsCause: false },
  PoolAbortedError: { make: () => new PoolAbortedError(), code: 'POOL_ERR_ABORTED', parent: PoolError, message: 'the operation was aborted', keepsCause: false },
  FirstStreamLostError: { make: () => new FirstStreamLostError('lost', { cause }), code: 'POOL_ERR_FIRST_STREAM_LOST', parent: PoolError, message: 'lost', keepsCause: true },
  FirstStreamTakenError: { make: () => new FirstStreamTakenError('taken'), code: 'POOL_ERR_FIRST_STREAM_TAKEN', parent: PoolError, message: 'taken', keepsCause: false },
  FdLimitError: { make: () => new FdLimitError('fds'), code: 'POOL_ERR_FD_LIMIT', parent: PoolError, message: 'fds', keepsCause: false },
  MissingModuleError: { make: () => new MissingModuleError('import it'), code: 'POOL_ERR_MISSING_MODULE', parent: PoolError, message: 'import it', keepsCause: false },
  StreamCutError: { make: () => new StreamCutError('reset', 'cut', { rstCode: 8, cause }), code: 'ECONNRESET', parent: PoolError, message: 'cut', keepsCause: true },
  WsStreamError: { make: () => new WsStreamError('ERR_WS_TEXT_MESSAGE', 'text'), code: 'ERR_WS_TEXT_MESSAGE', parent: PoolError, message: 'text', keepsCause: false },
  ControlProtocolError: { make: () => new ControlProtocolError('malformed', 'bad body', { cause }), code: 'POOL_ERR_CONTROL_PROTOCOL', parent: PoolError, message: 'bad body', keepsCause: true },
  ControlVersionError: { make: () => new ControlVersionError({ min: 1, max: 1 }, { min: 2, max: 3 }), code: 'POOL_ERR_CONTROL_VERSION', parent: PoolError, message: /this end speaks 1\.\.1, the peer 2\.\.3/, keepsCause: false },
  ControlTimeoutError: { make: () => new ControlTimeoutError('liveness', 'silent'), code: 'POOL_ERR_CONTROL_TIMEOUT', parent: PoolError, message: 'silent', keepsCause: false },
  ControlRefusedError: { make: () => new ControlRefusedError('duplicate', 'one per client'), code: 'POOL_ERR_CONTROL_REFUSED', parent: PoolError, message: /\(duplicate\): one per client/, keepsCause: false },
  TargetConnectError: { make: () => new TargetConnectError('refused', '127.0.0.1', 80, 'refused', { cause }), code: 'POOL_ERR_TARGET_CONNECT', parent: PoolError, message: 'refused', keepsCause: true },
  RouteLimitError: { make: () => new RouteLimitError(3), code: 'POOL_ERR_ROUTE_LIMIT', parent: PoolError, message: /maximum of 3 .*maxConnections/, keepsCause: false },
  ProxyHeaderError: { make: () => new ProxyHeaderError('signature', 'no PROXY'), code: 'POOL_ERR_PROXY_HEADER', parent: PoolError, message: 'invalid PROXY protocol header (signature): no PROXY', keepsCause: false },
};

/** instanceof by the prototype chain alone, as without Symbol.hasInstance. */
function ordinaryInstanceOf(Class: abstract new (...args: never[]) => unknown, value: unknown): boolean {
  return Function.prototype[Symbol.hasInstance].call(Class, value);
}

/** The classes a module exports: functions whose instances are Errors. */
function errorClassesOf(module: Record<string, unknown>): string[] {
  return Object.entries(module)
    .filter(([, value]) => typeof value === 'function' && (value as { prototype?: unknown }).prototype instanceof Error)
    .map(([name]) => name)
    .sort();
}

describe('the error-class table', () => {
  it('has one row per error class lib/core/errors.ts exports, and the public entry exports each', () => {
    expect(Object.keys(TABLE).sort()).toEqual(errorClassesOf(errors));
    expect(Object.keys(errors.poolErrorClasses).sort()).toEqual(Object.keys(TABLE).sort());
    for (const name of Object.keys(TABLE)) expect((coreEntry as Record<string, unknown>)[name]).toBe((errors as Record<string, unknown>)[name]);
  });

  it('gives every code a class: each code is among the codes of a class', () => {
    const claimed = new Set(Object.values(errors.poolErrorClasses).flatMap((Class) => Class.codes ?? []));
    expect([...claimed].sort()).toEqual(Object.values(PoolErrorCode).sort());
  });

  it.each(Object.entries(TABLE))('%s: code, name, parent, brand, message, cause', (name, row) => {
    const error = row.make();
    const Class = (errors as unknown as Record<string, abstract new (...args: never[]) => unknown>)[name]!;
    expect(error.code).toBe(row.code);
    expect(error.name).toBe(name);
    expect(Object.getPrototypeOf(Class)).toBe(row.parent);
    expect(error).toBeInstanceOf(Class);
    expect(error).toBeInstanceOf(PoolError);
    expect(error).toBeInstanceOf(Error);
    expect((error as unknown as Record<symbol, unknown>)[BRAND]).toBe(true);
    expect(Object.keys(error)).not.toContain(BRAND.toString()); // the brand is on the prototype, not in the error's own fields
    expect(isPoolError(error)).toBe(true);
    expect(isPoolError(error, row.code as PoolErrorCode)).toBe(true);
    expect(isPoolError(error, row.code === 'POOL_ERR_TIMEOUT' ? 'POOL_ERR_DIAL' : 'POOL_ERR_TIMEOUT')).toBe(false);
    if (typeof row.message === 'string') expect(error.message).toBe(row.message);
    else expect(error.message).toMatch(row.message);
    expect(error.cause).toBe(row.keepsCause ? cause : undefined);
    expect(error.stack).toContain(name);
  });

  it('instanceof tells the classes apart: a class matches its own codes and its subclasses, no other', () => {
    for (const [name, row] of Object.entries(TABLE)) {
      const error = row.make();
      for (const [otherName, other] of Object.entries(TABLE)) {
        const Other = (errors as unknown as Record<string, abstract new (...args: never[]) => unknown>)[otherName]!;
        // Its own class and its ancestors; and the base PoolError row (code POOL_ERR_DIAL) is a DialError by its code.
        const expected = ordinaryInstanceOf(Other, error) || (name === 'PoolError' && other.code === row.code);
        expect([name, otherName, error instanceof Other]).toEqual([name, otherName, expected]);
      }
    }
  });

  it('is no PoolError without the brand: a plain Error with a pool code, null, a string', () => {
    const lookalike = Object.assign(new Error('x'), { code: 'POOL_ERR_TIMEOUT' });
    for (const value of [lookalike, null, undefined, 'POOL_ERR_TIMEOUT', { code: 'POOL_ERR_TIMEOUT' }]) {
      expect(isPoolError(value)).toBe(false);
      expect(value instanceof PoolError).toBe(false);
      expect(value instanceof PoolTimeoutError).toBe(false);
    }
  });

  it('a subclass written outside the module is matched by its prototype chain only', () => {
    class AuthError extends PoolError {
      constructor() {
        super('POOL_ERR_REFUSED', 'bad token');
      }
    }
    expect(new AuthError()).toBeInstanceOf(AuthError);
    expect(new AuthError()).toBeInstanceOf(PoolRefusedError); // by its code, as a copy of the package would see it
    expect(new PoolRefusedError('no')).not.toBeInstanceOf(AuthError);
  });

  it('StreamCutError carries the reason and what the wire said; Http2StreamAbortedError is the same class', () => {
    const error = new StreamCutError('closed', 'the peer closed with 1011', { closeCode: 1011 });
    expect(error).toMatchObject({ code: 'ECONNRESET', reason: 'closed', closeCode: 1011 });
    expect(error).not.toHaveProperty('rstCode');
    expect(Http2StreamAbortedError).toBe(StreamCutError);
    expect(error).toBeInstanceOf(Http2StreamAbortedError);
    expect(coreEntry.Http2StreamAbortedError).toBe(StreamCutError);
  });
});

describe('two copies of the package in one process', () => {
  // Two separately loaded copies of the built module (query strings make Node load the file twice):
  // what happens when an application's node_modules holds two versions of the package.
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const built = join(root, 'dist/lib/core/errors.js');

  function run(source: string): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolvePromise, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', source], { cwd: root, timeout: 20_000 }, (error, stdout, stderr) =>
        error ? reject(Object.assign(error, { stderr })) : resolvePromise({ stdout, stderr }),
      );
    });
  }

  it('recognise each other\'s errors: instanceof by brand and code, isPoolError', async () => {
    expect(existsSync(built)).toBe(true); // `npm run build` first, as `npm test` does
    const url = pathToFileURL(built).href;
    const { stdout } = await run(`
      const a = await import(${JSON.stringify(`${url}?copy=a`)});
      const b = await import(${JSON.stringify(`${url}?copy=b`)});
      const fromA = new a.PoolTimeoutError('late');
      const cut = new a.StreamCutError('reset', 'cut');
      const full = new a.PoolFullError();
      console.log(JSON.stringify({
        distinctCopies: a.PoolError !== b.PoolError,
        ownCopy: fromA instanceof a.PoolTimeoutError,
        otherCopy: fromA instanceof b.PoolTimeoutError,
        otherCopyBase: fromA instanceof b.PoolError,
        otherCopyWrongClass: fromA instanceof b.DialError,
        cutIsCut: cut instanceof b.StreamCutError,
        fullIsRefused: full instanceof b.PoolRefusedError,
        fullIsFull: full instanceof b.PoolFullError,
        fullIsIp: full instanceof b.IpNotAllowedError,
        isPoolError: b.isPoolError(fromA),
        isPoolErrorCode: b.isPoolError(fromA, 'POOL_ERR_TIMEOUT'),
        plainError: new Error('x') instanceof b.PoolError,
      }));
    `);
    expect(JSON.parse(stdout)).toEqual({
      distinctCopies: true,
      ownCopy: true,
      otherCopy: true,
      otherCopyBase: true,
      otherCopyWrongClass: false,
      cutIsCut: true,
      fullIsRefused: true,
      fullIsFull: true,
      fullIsIp: false,
      isPoolError: true,
      isPoolErrorCode: true,
      plainError: false,
    });
  });
});

describe('literal code types (checked by `npm run typecheck`)', () => {
  it('each class narrows code; isPoolError and a code check narrow the value', () => {
    const timeout: 'POOL_ERR_TIMEOUT' = new PoolTimeoutError('late').code;
    const refused: 'POOL_ERR_REFUSED' | 'POOL_ERR_IP_NOT_ALLOWED' | 'POOL_ERR_FULL' | 'POOL_ERR_AUTH_REFUSED' = new PoolRefusedError('no').code;
    const value: unknown = new StreamCutError('goaway', 'not processed');
    let reason: string | undefined;
    if (isPoolError(value, 'ECONNRESET')) reason = value.reason; // narrowed to StreamCutError
    let option: string | undefined;
    const invalid: unknown = new InvalidOptionsError('maxCap', 'got -1');
    if (invalid instanceof PoolError && invalid.code === 'POOL_ERR_INVALID_OPTIONS' && invalid instanceof InvalidOptionsError) option = invalid.option;
    expect([timeout, refused, reason, option]).toEqual(['POOL_ERR_TIMEOUT', 'POOL_ERR_REFUSED', 'goaway', 'maxCap']);
  });
});
