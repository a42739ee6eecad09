/**
 * Nest runs `onModuleDestroy` module after module, awaiting each, and every
 * `PoolModule.forRoot` is a module of its own: N registrations would take up
 * to N × `shutdownTimeout` to close. All the registrations of one
 * application join one group instead; the first of them that Nest destroys
 * closes them all at once, and the others wait for that same close.
 *
 * What runs over the pools (the tunnels of `TunnelModule`) joins the group
 * as a `'before'` member: the group closes (drains) all of those first, in
 * parallel, and the pools only then, whichever module Nest destroys first.
 */
export class PoolShutdownGroup {
  private readonly before = new Set<{ closeOwn(): Promise<void> }>();
  private readonly members = new Set<{ closeOwn(): Promise<void> }>();
  private closing?: Promise<void>;

  join(member: { closeOwn(): Promise<void> }, phase: 'before' | 'pools' = 'pools'): void {
    (phase === 'before' ? this.before : this.members).add(member);
  }

  /** Closes the 'before' members in parallel, then every pool member in parallel; idempotent. Never rejects (members never do). */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.before].map((member) => member.closeOwn()))
      .then(() => Promise.allSettled([...this.members].map((member) => member.closeOwn())))
      .then(() => undefined);
    return this.closing;
  }
}

/** One group per application, keyed by its module container (so tests and apps in one process stay apart). */
const groups = new WeakMap<object, PoolShutdownGroup>();

export function shutdownGroupOf(application: object): PoolShutdownGroup {
  let group = groups.get(application);
  if (!group) {
    group = new PoolShutdownGroup();
    groups.set(application, group);
  }
  return group;
}
