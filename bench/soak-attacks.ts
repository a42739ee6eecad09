/**
 * The hostile part of the soak run (issue 10): while hand-offs run, every
 * ATTACK_EVERY_MS one attack from 127.0.0.2 hits the server port, each
 * bounded in connections and time (bench/attacks.ts). The run's own rules
 * still judge it (no crash, no stall, no corrupted byte); what each attack
 * must produce on top (a 1009, refusals) is counted as an error when it
 * does not.
 */
import { connectResetFlood, h2StreamFlood, junkFinFlood, slowloris, wsOversized } from './attacks.js';

export const ATTACKS = ['reset-flood', 'slowloris', 'junk-fin', 'ws-oversized', 'h2-stream-flood'] as const;
export type Attack = (typeof ATTACKS)[number];

/** The transports each attack applies to. */
const APPLIES: Record<Attack, readonly string[]> = {
  'reset-flood': ['tcp', 'tls', 'http2', 'ws'],
  slowloris: ['tcp', 'tls', 'http2', 'ws'],
  'junk-fin': ['tcp', 'tls', 'http2', 'ws'],
  'ws-oversized': ['ws'],
  'h2-stream-flood': ['http2'],
};

const ATTACK_EVERY_MS = 1500;
/** How long a slowloris or a stream flood holds what it opened. */
const HOLD_MS = 3000;
const SLOWLORIS = 500;
const RESETS = 200;
const JUNK = 100;
const H2_STREAMS = 256;

export interface AttackRun {
  /** Stops starting attacks and waits for the one in progress (bounded by HOLD_MS and its own timeouts). */
  stop(): Promise<void>;
}

export function parseAttacks(list: string): Set<Attack> {
  const attacks = new Set<Attack>();
  const names = list === 'none' ? [] : list === 'all' ? [...ATTACKS] : list.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!(ATTACKS as readonly string[]).includes(name)) throw new Error(`--attacks takes ${ATTACKS.join(', ')}, all or none, got ${name}`);
    attacks.add(name as Attack);
  }
  return attacks;
}

/**
 * Starts the attacks that apply to `transport`. `port()` is the server's
 * port (undefined while it restarts); `count` records what ran, `failed`
 * what did not have its expected effect.
 */
export function startAttacks(options: {
  transport: string;
  attacks: ReadonlySet<Attack>;
  port: () => number | undefined;
  count: (what: string) => void;
  failed: (what: string) => void;
}): AttackRun {
  const enabled = [...options.attacks].filter((attack) => APPLIES[attack].includes(options.transport));
  let running = enabled.length > 0;
  let current: Promise<void> = Promise.resolve();
  /** Ends the pause between attacks at once (stop()). */
  let wake: (() => void) | undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const one = async (attack: Attack, port: number): Promise<void> => {
    options.count(`attack-${attack}`);
    switch (attack) {
      case 'reset-flood':
        await connectResetFlood({ port, count: RESETS });
        return;
      case 'junk-fin':
        await junkFinFlood({ port, count: JUNK, linger: 1000 });
        return;
      case 'slowloris': {
        const held = await slowloris({ port, count: SLOWLORIS });
        await sleep(HOLD_MS);
        held.destroy();
        return;
      }
      case 'ws-oversized': {
        const code = await wsOversized({ port, timeout: 3000 });
        // 0: the attacker could not get in (a restart, the pool full): nothing to judge.
        if (code !== 1009 && code !== 0) options.failed(`attack-ws-oversized:closed-${code}`);
        return;
      }
      case 'h2-stream-flood': {
        const flood = await h2StreamFlood({ port, streams: H2_STREAMS });
        await sleep(HOLD_MS);
        const pending = flood.statuses.filter((status) => status === 0).length;
        flood.destroy();
        // One connection holds no more than its share of the handshake slots (maxHandshakesPerConnection, 64 by default).
        if (pending > 64) options.failed('attack-h2-stream-flood:more-than-its-share-pending');
        return;
      }
    }
  };
  const loop = async (): Promise<void> => {
    while (running) {
      await pause(ATTACK_EVERY_MS * (0.5 + Math.random()));
      const port = options.port();
      if (!running || port === undefined) continue;
      const attack = enabled[Math.floor(Math.random() * enabled.length)]!;
      current = one(attack, port).catch((error: unknown) => options.failed(`attack-${attack}:${(error as { code?: string }).code ?? 'error'}`));
      await current;
    }
  };
  const looping = running ? loop() : Promise.resolve();
  return {
    async stop() {
      running = false;
      wake?.();
      await current;
      await looping;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
