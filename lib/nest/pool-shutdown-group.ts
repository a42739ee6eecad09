/**
 * Nest runs `onModuleDestroy` module after module, awaiting each, and every
 * `PoolModule.forRoot` is a module of its own: N registrations would take up
 * to N × `shutdownTimeout` to close. All the registrations of one
 * application join one group instead; the first of them that Nest destroys
 * closes them all at once, and the others wait for that same close.
 */
export class PoolShutdownGroup {
  private readonly members = new Set<{ closeOwn(): Promise<void> }>();
  private closing?: Promise<void>;

  join(member: { closeOwn(): Promise<void> }): void {
    this.members.add(member);
  }

  /** Closes every member in parallel; idempotent. Never rejects (members never do). */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.members].map((member) => member.closeOwn())).then(() => undefined);
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
