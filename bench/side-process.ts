import { type ChildProcess, execFile, execFileSync, fork } from 'node:child_process';
import os from 'node:os';
import type { AdapterName } from './adapters.js';
import type { SideCommands, SideMode, SideReply } from './side-child.js';

const CHILD = new URL('./side-child.js', import.meta.url);

/**
 * One side (raw or pooled) of a measurement in its own forked process
 * (`side-child.ts`), driven by commands over IPC. Scenarios that measure
 * a rate or a size run the raw and the pooled side at the same time in
 * two such processes: on 2 cores each gets one, both see the same
 * machine load at the same moment, and the run takes half the time.
 */
export class Side {
  private sequence = 0;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  private exited: Promise<void>;
  private exitInfo: string | undefined;

  private constructor(
    private readonly proc: ChildProcess,
    readonly adapter: AdapterName,
    readonly mode: SideMode,
  ) {
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = `exited with ${signal ?? code}`;
        const error = new Error(`the ${this.what} ${this.exitInfo}`);
        for (const [, call] of this.pending) {
          clearTimeout(call.timer);
          call.reject(error);
        }
        this.pending.clear();
        resolve();
      });
    });
    proc.on('error', () => undefined);
    proc.on('message', (message: SideReply | { warning: { name: string; message: string } }) => {
      if ('warning' in message) {
        process.emitWarning(message.warning.message, message.warning.name);
        return;
      }
      const call = this.pending.get(message.seq);
      if (!call) return;
      this.pending.delete(message.seq);
      clearTimeout(call.timer);
      if (message.ok) call.resolve(message.result);
      else call.reject(new Error(`${this.what}: ${message.error}`));
    });
  }

  get pid(): number | undefined {
    return this.exitInfo ? undefined : this.proc.pid;
  }

  private get what(): string {
    return `${this.mode} ${this.adapter} side process`;
  }

  /**
   * Forks a side process (`--expose-gc`; the parent's flags such as
   * `--cpu-prof` are passed on, so each child writes its own profile).
   */
  static start(adapter: AdapterName, mode: SideMode): Side {
    const proc = fork(CHILD, [adapter, mode], {
      execArgv: [...process.execArgv.filter((flag) => flag !== '--expose-gc'), '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Side(proc, adapter, mode);
  }

  /** Sends one command; rejects if the child reports an error, exits, or takes longer than `timeout` ms. */
  call<K extends keyof SideCommands>(cmd: K, args: SideCommands[K][0], timeout = 120_000): Promise<SideCommands[K][1]> {
    if (this.exitInfo) return Promise.reject(new Error(`the ${this.what} ${this.exitInfo}`));
    const seq = this.sequence++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`${this.what}: ${cmd} did not complete within ${timeout} ms`));
        this.proc.kill('SIGKILL');
      }, timeout);
      this.pending.set(seq, { resolve: resolve as (value: unknown) => void, reject, timer });
      this.proc.send({ seq, cmd, args });
    });
  }

  /**
   * Closes what the child holds and lets it exit; one that has not exited
   * 5 s later is killed (it must never hold the bench open).
   */
  async close(): Promise<void> {
    if (!this.exitInfo) {
      try {
        await this.call('close', {}, 20_000);
        this.proc.disconnect();
      } catch {
        // exited or failed already: killed below if still there
      }
    }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Runs `work` with two side processes of `adapter`, closing both however
 * it ends: a raw and a pooled one, or (`both`) two that each hold both and
 * are told per command which side to play.
 */
export async function withSides<T>(adapter: AdapterName, work: (sides: { raw: Side; pooled: Side }) => Promise<T>, holding: 'one each' | 'both' = 'one each'): Promise<T> {
  const sides = holding === 'both' ? { raw: Side.start(adapter, 'both'), pooled: Side.start(adapter, 'both') } : { raw: Side.start(adapter, 'raw'), pooled: Side.start(adapter, 'pooled') };
  try {
    return await work(sides);
  } finally {
    await Promise.all([sides.raw.close(), sides.pooled.close()]);
  }
}

// ---- fair share of the cores -----------------------------------------------------

let tasksetChecked: boolean | undefined;

/**
 * Whether the two side processes can be moved between CPUs 0 and 1 (Linux,
 * `taskset`, 2+ CPUs; `BENCH_SWAP_CORES=0` turns it off).
 */
export function canSwapCores(): boolean {
  if (tasksetChecked === undefined) {
    tasksetChecked = false;
    if (process.platform === 'linux' && os.cpus().length >= 2 && process.env.BENCH_SWAP_CORES !== '0') {
      try {
        execFileSync('taskset', ['-V'], { stdio: 'ignore' });
        tasksetChecked = true;
      } catch {
        // no util-linux taskset: the kernel places the processes
      }
    }
  }
  return tasksetChecked;
}

function pin(pid: number | undefined, cpus: string): void {
  if (pid !== undefined) execFile('taskset', ['-a', '-pc', cpus, String(pid)], () => undefined);
}

const SWAP_MS = 100;

/**
 * While two side processes measure side by side, swaps them between CPU 0
 * and CPU 1 every `SWAP_MS`: left to the kernel, each stays on the core
 * it started on, and on a VM the two cores are not equal (one serves
 * more interrupts, the host runs other guests' work on it...): on this
 * kind of machine that gave the process on the better core a steady
 * 10–15 % edge. Swapping gives each the same share of both. Returns the
 * function that stops swapping and frees both processes to run anywhere.
 */
function swapCores(sides: { raw: Side; pooled: Side }, run: number): () => void {
  if (!canSwapCores()) return () => undefined;
  const all = `0-${os.cpus().length - 1}`;
  let turn = run % 2;
  const swap = (): void => {
    pin(sides.raw.pid, String(turn % 2));
    pin(sides.pooled.pid, String((turn + 1) % 2));
    turn++;
  };
  swap();
  const timer = setInterval(swap, SWAP_MS);
  return () => {
    clearInterval(timer);
    for (const pid of [sides.raw.pid, sides.pooled.pid]) {
      try {
        if (pid !== undefined) execFileSync('taskset', ['-a', '-pc', all, String(pid)], { stdio: 'ignore' });
      } catch {
        // exited meanwhile
      }
    }
  };
}

/**
 * The same command to both sides at once (alternating which is sent
 * first), resolving with both replies. Used twice per run: "prepare"
 * (each side gets ready: pairs taken, pool refilled) then "go" (both
 * measure at the same moment).
 */
export async function both<K extends keyof SideCommands>(
  sides: { raw: Side; pooled: Side },
  run: number,
  cmd: K,
  args: SideCommands[K][0] | ((side: 'raw' | 'pooled') => SideCommands[K][0]),
  timeout?: number,
): Promise<{ raw: SideCommands[K][1]; pooled: SideCommands[K][1] }> {
  const order = orderOf(run);
  const calls = {} as Record<'raw' | 'pooled', Promise<SideCommands[K][1]>>;
  // Measuring commands ("go") run with the processes swapping cores.
  const stopSwapping = cmd.endsWith('.go') ? swapCores(sides, run) : () => undefined;
  for (const side of order) calls[side] = sides[side].call(cmd, typeof args === 'function' ? args(side) : args, timeout);
  // Both settle before this returns: a failure on one side must not leave the other's reply unheard.
  const [raw, pooled] = await Promise.allSettled([calls.raw, calls.pooled]);
  stopSwapping();
  if (raw.status === 'rejected') throw raw.reason;
  if (pooled.status === 'rejected') throw pooled.reason;
  return { raw: raw.value, pooled: pooled.value };
}

/**
 * The same command to one side, then the other (order alternating per
 * run), each measuring alone with both cores to itself and the other
 * process idle, as the hand-off latency is measured. For open-loop
 * latency: its driver spins (setImmediate) between close arrivals, and
 * two processes spinning side by side keep both cores busy, so each
 * one's network work in the kernel (loopback delivery, softirqs) waits
 * for a core; the side doing more of it per hand-off (the pool's refill:
 * connect, accept, the ID) paid several times its own cost (scratch runs,
 * tcp at 1000/s: pooled p50 0.2–0.3 ms alone, 1.9–7 ms beside a spinning
 * raw side).
 */
export async function inTurn<K extends keyof SideCommands>(
  sides: { raw: Side; pooled: Side },
  run: number,
  cmd: K,
  args: SideCommands[K][0],
  timeout?: number,
): Promise<{ raw: SideCommands[K][1]; pooled: SideCommands[K][1] }> {
  const order = orderOf(run);
  const replies = {} as { raw: SideCommands[K][1]; pooled: SideCommands[K][1] };
  for (const side of order) replies[side] = await sides[side].call(cmd, args, timeout);
  return replies;
}

/** Which side goes first in run `run`: raw in even runs, pooled in odd ones. */
export function orderOf(run: number): readonly ['raw', 'pooled'] | readonly ['pooled', 'raw'] {
  return run % 2 === 0 ? (['raw', 'pooled'] as const) : (['pooled', 'raw'] as const);
}
