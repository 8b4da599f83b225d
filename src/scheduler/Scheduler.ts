import type { Database } from '../db/Database.js';
import { TaskStatus } from '../generated/prisma/client.js';
import { type Handler, type HandlerContext, type HandlerRegistry, LeaseLostError } from '../handlers/HandlerRegistry.js';
import { isNonRetryable } from '../handlers/NonRetryableError.js';
import { ThreadDied, ThreadRunner } from '../handlers/ThreadRunner.js';
import type { Logger } from '../logger.js';
import { CANCEL_CHANNEL, WAKE_CHANNEL } from '../tasks/statusMachine.js';
import type { TaskTypeRegistry } from '../tasks/TaskTypeRegistry.js';
import { fireOverlappingTasks } from './fireOverlappingTasks.js';
import { LeaseKeeper, type LeaseReport } from './LeaseKeeper.js';
import { RunLogger } from './RunLogger.js';
import { nextRunAfter, retryDelayMs } from './recurrence.js';
import type { SchedulerObserver } from './SchedulerObserver.js';
import { skipMisfiredTasks } from './skipMisfiredTasks.js';
import {
  type ClaimedTask,
  type ClaimRequest,
  type Completion,
  type CompletionResult,
  checkLease,
  claimCappedTasks,
  claimTasks,
  completeRuns,
  hasCappedTenants,
  msUntilNextDue,
  recoverExpiredTasks,
  type StartClaim,
} from './sql.js';
import { toJson, toStorableText } from './toJson.js';

/** A Completion less what every ending of an attempt shares (Scheduler.completionFor); `revision` may be overridden. */
type AttemptEnd = Omit<Completion, 'taskId' | 'runId' | 'workerId' | 'durationMs' | 'logs' | 'abandoned' | 'eventType' | 'revision'> &
  Partial<Pick<Completion, 'revision'>>;

export interface SchedulerOptions {
  workerId: string;
  /** Handlers running at once in this process. */
  concurrency: number;
  /**
   * The share (0-1] of `concurrency` one tenant may hold once more than one tenant has tasks
   * (TENANT_SLOT_SHARE), so another tenant's due task finds a free slot even while one tenant's long
   * tasks run. At least one slot.
   */
  tenantSlotShare: number;
  /** Per-queue limits in this process, e.g. { emails: 2 }. */
  queueConcurrency: Record<string, number>;
  leaseMs: number;
  /** How long an aborted handler may take to stop before it is abandoned (in-process) or its thread terminated. */
  abortGraceMs: number;
  /** Longest sleep between checks even when nothing is due (a safety net for lost notifications). */
  maxSleepMs: number;
  /** Largest handler result (as JSON) that is stored; a larger or unstorable one fails the attempt. */
  maxJsonBytes: number;
  /** Heap limit of a handler thread when neither task, template, handler nor type sets one. */
  threadMemoryLimitMb: number;
  /** How long the main thread may be unresponsive before the heartbeat thread lets its leases run out. */
  leaseWatchdogMs: number;
  /** PostgreSQL URL for the heartbeat thread's own connection; absent on PGlite. */
  databaseUrl?: string;
  /** Told about claims, recoveries and completions (metrics). */
  observer?: SchedulerObserver;
  /** The TaskSvc a handler gets in its context: bound to its task's tenant, acting as the task. */
  taskSvcFor: (task: { id: string; tenantId: string }) => HandlerContext['taskSvc'];
}

type AbortReason = 'forced' | 'timeout' | 'shutdown' | 'lost';

/**
 * Slots of this instance's scheduler held for one create that claims its own due-now tasks in its insert
 * (Scheduler.reserveStart). Exactly one of `start` and `release` must follow.
 */
export interface StartReservation {
  /** What the insert claims with (src/tasks/bulkInsert.ts). */
  claim: StartClaim;
  /** The insert committed: runs the tasks it claimed (or hands them back if the scheduler stopped meanwhile) and frees the other slots. */
  start(claimed: ClaimedTask[]): void;
  /** The insert failed or wrote nothing: frees the slots. */
  release(): void;
}

/** The scheduler as task creation sees it (TaskSvc): slots for starting due-now tasks in their insert. */
export interface TaskStarter {
  reserveStart(tenantId: string, due: number): StartReservation | null;
}

interface Running {
  task: ClaimedTask;
  /**
   * The handler's `ctx.signal`, made when the handler (or its task type, or the thread runner) first
   * reads it: most handlers never do, and an AbortController with its EventTarget was a tenth of the
   * time from a claim's answer to its handler's start. One read after an abort gets a signal that is
   * already aborted, with the same reason.
   */
  controller?: AbortController;
  reason?: AbortReason;
  /** Why the run was aborted (entry.reason), as the signal gives it to the handler. */
  abortError?: Error;
  /** The run's own reaction to an abort (invoke: the grace period), called by abort() after the signal's listeners. */
  onAbort?: () => void;
  /** Local time by which the lease must be extended again: a conservative copy of the database's locked_until. */
  leaseDeadline: number;
  /** Local time when the claim's answer was in (task.claimedAt is the database's time of the claim). */
  claimedLocally: number;
  /** Terminates the thread of a thread-isolated run. */
  kill?: AbortController;
  /** The handler has settled: the run no longer takes a slot, though its end is still being recorded. */
  settled?: boolean;
  done: Promise<void>;
}

type Outcome =
  | { kind: 'ok'; value: unknown }
  | { kind: 'error'; error: unknown }
  | { kind: 'abandoned' }
  | { kind: 'died'; error: ThreadDied };

/** How often at most the next-due look-up runs while every slot is taken (see tick). */
const BUSY_LOOKUP_MS = 250;

/** A stop under way (Scheduler.stop). */
interface Stopping {
  /** When running handlers' grace period ends (epoch ms). */
  graceEnds: number;
  /** Ends the grace period at `at` instead. */
  setGraceEnd: (at: number) => void;
  /** Resolves once nothing touches the database any more. */
  done: Promise<void>;
}

/**
 * Runs due tasks. It sleeps until the next task is due (by the database's clock) and is woken early by
 * NOTIFY on `chronograph_wake` — sent on commit whenever a task becomes due sooner — so a task due now
 * starts within milliseconds without polling. Claims are batched and SKIP LOCKED, so any number of
 * instances share one database; each run holds a lease (fenced by its run id) that the LeaseKeeper's
 * heartbeat extends, and leases that ran out are recovered by whichever instance sees them first.
 *
 * A handler's `ctx.signal` is aborted when its lease is gone or could not be extended in time (a quarter
 * of the lease before it runs out), so an instance cut off from the database stops its handlers before
 * another instance may take them over; thread-isolated handlers are terminated then.
 *
 * The loop never throws: database errors are logged and retried after a pause.
 */
export class Scheduler implements TaskStarter {
  /** By run id: a task claimed again here while an abandoned attempt of it lingers is a second entry. */
  private readonly running = new Map<string, Running>();
  private timer?: NodeJS.Timeout;
  /** A check asked for by wake(), run at the next turn of the event loop (setTimeout's 0 is at least 1 ms). */
  private immediate?: NodeJS.Immediate;
  private guard?: NodeJS.Timeout;
  private lastGuard = 0;
  private ticking = false;
  private again = false;
  private stopped = true;
  /** Set at start and whenever due work was left unclaimed: SKIP-policy misfires are then decided before claiming. */
  private checkMisfires = true;
  /** Local time when the earliest lease held by another worker runs out: recovery is due then. */
  private recoverAt = 0;
  /** Local time when the earliest ALLOW-overlap task is due to be fired. */
  private overlapAt = 0;
  /** Local time of the last next-due look-up (see BUSY_LOOKUP_MS). */
  private lookedUpAt = 0;
  /** ALLOW-overlap tasks whose last firing failed: when to try again, and the delay that led there. */
  private readonly fireBackoff = new Map<string, { at: number; delayMs: number }>();
  /** The same for the last firing pass as a whole, when it failed (at 0: it did not). */
  private firePassBackoff = { at: 0, delayMs: 0 };
  /**
   * The last check claimed everything it could and found nothing due that was left out for lack of a
   * slot (no queue or tenant at its limit): a run ending then frees a slot nobody is waiting for, and
   * need not trigger a check (a task that becomes due wakes the scheduler through NOTIFY or its timer).
   */
  private idle = false;
  /** A run's slot was freed while a check was in progress: whether that frees anything is known at its end. */
  private freedDuringTick = false;
  private unlisten: (() => Promise<void>)[] = [];
  /** A claim statement is in flight (its limit was the free slots when it was sent): no reservation meanwhile. */
  private claiming = false;
  /** Slots held by creates claiming their own due-now tasks (reserveStart), in all and by tenant. */
  private reserved = 0;
  /** A lease keeper update is queued (leasesChanged). */
  private leasesPending = false;
  private readonly reservedByTenant = new Map<string, number>();
  /** Whether some tenant has maxConcurrentRuns (looked up at most once a second), and which claim goes first. */
  private capped = { any: false, checkedAt: 0, first: false };
  private readonly pending: { completion: Completion; done: (result: CompletionResult | Error) => void }[] = [];
  private flushing?: Promise<void>;
  private readonly keeper: LeaseKeeper;
  /** warmUp started the keeper and neither start() nor stop() came since: a stop() of a stopped scheduler ends it. */
  private warmedUp = false;
  /** The stop under way, which a second stop() joins: when its grace period ends, and how to end it sooner. */
  private stopping?: Stopping;
  /** What a start() under way opens (listeners, the lease keeper, the guard): a stop ends them once it is opened. */
  private starting?: Promise<void>;
  /** Counts stop() calls: a start() that waited for a stop under way does not start when another stop came meanwhile. */
  private stops = 0;
  private readonly threads: ThreadRunner;

  constructor(
    private readonly db: Database,
    private readonly handlers: HandlerRegistry,
    private readonly taskTypes: TaskTypeRegistry,
    private readonly logger: Logger,
    private readonly options: SchedulerOptions,
  ) {
    this.keeper = new LeaseKeeper({
      workerId: options.workerId,
      leaseMs: options.leaseMs,
      watchdogMs: options.leaseWatchdogMs,
      databaseUrl: options.databaseUrl,
      sql: db.sql,
      logger,
      onBeat: (report) => this.leasesExtended(report),
    });
    this.threads = new ThreadRunner({ maxThreads: options.concurrency, maxJsonBytes: options.maxJsonBytes });
  }

  get workerId(): string {
    return this.options.workerId;
  }

  /** Task ids running in this process right now. */
  runningTaskIds(): string[] {
    return [...new Set([...this.running.values()].map((r) => r.task.id))];
  }

  private get margin(): number {
    return Math.floor(this.options.leaseMs / 4);
  }

  async start(): Promise<void> {
    const stops = this.stops;
    // A start during a stop comes after it: the stop would otherwise close what the start opens. A stop
    // that came while it waited (it joined the one under way) is the later call: the scheduler stays
    // stopped (app.stop() then closes the database, which this start would otherwise go on using).
    if (this.stopping) {
      await this.stopping.done.catch(() => {});
      if (stops !== this.stops) return;
    }
    if (!this.stopped) return;
    this.stopped = false;
    this.warmedUp = false;
    const starting = this.open();
    this.starting = starting;
    try {
      await starting;
    } finally {
      if (this.starting === starting) this.starting = undefined;
    }
  }

  /** start()'s listeners, lease keeper and guard; a stop that comes meanwhile waits for them (finishStop). */
  private async open(): Promise<void> {
    this.checkMisfires = true;
    this.recoverAt = 0;
    this.overlapAt = 0;
    // Failing here only delays claims for capped tenants to the first check's own look-up.
    await this.checkCapped().catch(() => {});
    this.unlisten.push(await this.db.listen(WAKE_CHANNEL, () => this.wake()));
    this.unlisten.push(await this.db.listen(CANCEL_CHANNEL, (taskId) => this.abortTask(taskId, 'forced')));
    await this.keeper.start();
    this.lastGuard = Date.now();
    this.guard = setInterval(() => this.guardLeases(), Math.max(10, Math.floor(this.options.leaseMs / 8)));
    if (this.stopped) return;
    this.logger.info({ worker: this.workerId, concurrency: this.options.concurrency, leaseMs: this.options.leaseMs }, 'scheduler started');
    this.wake();
  }

  /**
   * Starts what start() would wait for and can start early without claiming anything: the heartbeat
   * thread on PostgreSQL (LeaseKeeper.warmUp). Chronograph.create calls it first thing, so that the
   * thread's start overlaps the rest of the instance's; stop() ends it even if start() never came.
   */
  warmUp(): void {
    // Not during a stop, whose end would leave the thread it starts to nobody.
    if (!this.stopped || this.stopping) return;
    this.warmedUp = true;
    this.keeper.warmUp();
  }

  /** Asks for a check of due tasks soon; calls during a check coalesce into one more check. */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (this.immediate) return;
    clearTimeout(this.timer);
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      void this.tick();
    });
  }

  /** Aborts every attempt of a task running here (a forced end from any instance arrives through CANCEL_CHANNEL). */
  abortTask(taskId: string, reason: AbortReason): boolean {
    let any = false;
    for (const entry of this.running.values()) if (entry.task.id === taskId) any = this.abort(entry, reason) || any;
    return any;
  }

  private abort(entry: Running, reason: AbortReason, detail?: string): boolean {
    if (entry.reason) return false;
    entry.reason = reason;
    entry.abortError = new Error(detail ?? reasonText(reason));
    entry.controller?.abort(entry.abortError);
    entry.onAbort?.();
    // A thread can be terminated: right away when another instance may take the task over any moment,
    // otherwise once the handler had its grace period to stop by itself.
    if (entry.kill) {
      const kill = entry.kill;
      setTimeout(() => kill.abort(), reason === 'lost' ? 0 : this.options.abortGraceMs).unref();
    }
    return true;
  }

  /**
   * Stops claiming at once (a claim already in flight is handed straight back), gives running handlers up
   * to `graceMs` to finish while their leases are still extended, then aborts the rest and hands their
   * tasks back: they become due again at once, not counted as an attempt, and the NOTIFY that goes with
   * it makes another instance claim them within milliseconds.
   */
  async stop(graceMs: number): Promise<void> {
    const ends = Date.now() + graceMs;
    this.stops++;
    if (this.stopping) {
      // A second stop joins the first (whose handlers keep their leases meanwhile), and ends its grace
      // period at its own deadline when that comes sooner: it resolves, as the first does, once nothing
      // touches the database any more.
      if (ends < this.stopping.graceEnds) this.stopping.setGraceEnd(ends);
      return this.stopping.done;
    }
    if (this.stopped) {
      // Only what warmUp started.
      if (this.warmedUp) {
        this.warmedUp = false;
        await this.keeper.stop();
      }
      return;
    }
    this.stopped = true;
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.immediate = undefined;
    let timer: NodeJS.Timeout | undefined;
    let graceOver!: () => void;
    const graceEnded = new Promise<false>((resolve) => (graceOver = () => resolve(false)));
    const stopping: Stopping = {
      graceEnds: ends,
      setGraceEnd: (at) => {
        stopping.graceEnds = at;
        clearTimeout(timer);
        timer = setTimeout(graceOver, Math.max(0, at - Date.now()));
      },
      done: Promise.resolve(),
    };
    stopping.setGraceEnd(ends);
    this.stopping = stopping;
    stopping.done = this.finishStop(graceEnded).finally(() => {
      clearTimeout(timer);
      this.stopping = undefined;
    });
    return stopping.done;
  }

  private async finishStop(graceEnded: Promise<false>): Promise<void> {
    // A start under way goes on opening after the stop came (it claims nothing: the scheduler counts as
    // stopped): what it opens is closed below, not left behind (a heartbeat thread, the guard's interval).
    await this.starting?.catch(() => {});
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    const finished = await Promise.race([all().then(() => true), graceEnded]);
    if (!finished) {
      const entries = [...this.running.values()];
      for (const entry of entries) this.abort(entry, 'shutdown');
      await all();
      // None when the grace period ran out while a start under way was still opening (see above).
      if (entries.length > 0) this.logger.warn({ tasks: entries.length }, 'handed back the tasks still running at shutdown');
    }
    // Wait for an in-flight tick, and for creates whose insert may have claimed tasks (they hand them back),
    // and the completions they hand back, so nothing touches the database after stop() resolves.
    while (this.ticking || this.reserved > 0) await new Promise((r) => setTimeout(r, 5));
    await this.flushing;
    clearInterval(this.guard);
    await this.keeper.stop();
    for (const unlisten of this.unlisten.splice(0)) await unlisten().catch(() => {});
    await this.threads.close();
    this.logger.info({ worker: this.workerId }, 'scheduler stopped');
  }

  /** Whether it claims and runs tasks (started and not stopped). */
  get isRunning(): boolean {
    return !this.stopped;
  }

  private observe(report: (observer: SchedulerObserver) => void): void {
    if (!this.options.observer) return;
    try {
      report(this.options.observer);
    } catch (error) {
      this.logger.warn({ err: error }, 'scheduler observer failed');
    }
  }

  /**
   * Reports claimed tasks to the observer (the metrics) after their handlers' first steps: execute() queues
   * each handler's start as a microtask, so whatever runs synchronously after it still comes first
   * (prom-client's two label look-ups per task took 0.04 ms of a due-now create's path to its handler).
   */
  private observeClaimed(claimed: readonly ClaimedTask[]): void {
    if (claimed.length) queueMicrotask(() => this.observe((o) => o.claimed(claimed)));
  }

  private fullQueues(): string[] {
    const counts = new Map<string, number>();
    // Every run until its end is recorded, so a queue's runs never overlap in its history.
    for (const r of this.running.values()) counts.set(r.task.queue, (counts.get(r.task.queue) ?? 0) + 1);
    return Object.entries(this.options.queueConcurrency)
      .filter(([queue, limit]) => (counts.get(queue) ?? 0) >= limit)
      .map(([queue]) => queue);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    let delay: number;
    this.idle = false;
    try {
      // Only when an ALLOW-overlap task is (or may be) due: the last next-due look-up says when.
      if (Date.now() >= this.overlapAt) await this.fireOverlapping();
      if (Date.now() >= this.recoverAt) await this.recover();
      if (this.checkMisfires) {
        this.checkMisfires = false;
        await this.skipMisfires();
      }
      // Set when a claim found less than it could take: whatever is still due is then not claimable.
      let exhausted = false;
      for (;;) {
        const free = this.freeSlots();
        if (free <= 0 || this.stopped) break;
        // Per-queue limits apply to the whole batch, so claim one at a time while any queue is limited.
        const limit = Object.keys(this.options.queueConcurrency).length ? 1 : free;
        const sentAt = Date.now();
        let claimed: ClaimedTask[];
        this.claiming = true;
        try {
          claimed = await this.claim(limit);
        } finally {
          this.claiming = false;
        }
        if (this.stopped) {
          // SIGTERM came while the claim was in flight: no new run starts; the tasks go straight back.
          await Promise.all(
            claimed.map((task) => this.complete(this.handBack(task, 0, [], 'the worker is shutting down; it never started'))),
          );
          break;
        }
        for (const task of claimed) this.execute(task, sentAt);
        this.observeClaimed(claimed);
        if (claimed.length < limit) {
          exhausted = true;
          break;
        }
      }
      // After the claim, not before it: the look-up is off the path from a wake to a handler's start. A
      // tenant that got maxConcurrentRuns meanwhile lost nothing: the open claim leaves capped tenants out
      // (they are due, unclaimed, so the next check comes within 20 ms, with the capped claim).
      const now = Date.now();
      // Every slot taken and the last claim full: nothing more can be claimed, and the look-up would only
      // say when leases run out and ALLOW-overlap tasks are due, which change seldom. It then runs at most
      // every BUSY_LOOKUP_MS (each run that ends wakes a check; on PGlite, which runs one statement at a
      // time, the look-up after every claim took a sixth of a drain). The timer wakes at the end of that
      // interval at the latest, so a change only the look-up would see waits no longer than that.
      const busy = !exhausted && this.freeSlots() <= 0 && now < this.recoverAt && now < this.overlapAt;
      if (now - this.capped.checkedAt >= 1000) await this.checkCapped();
      if (busy && now - this.lookedUpAt < BUSY_LOOKUP_MS) {
        this.idle = false;
        delay = Math.min(
          this.options.maxSleepMs,
          Math.max(1, Math.min(this.recoverAt, this.overlapAt, this.lookedUpAt + BUSY_LOOKUP_MS) - now),
        );
      } else {
        const excludedQueues = this.fullQueues();
        const excludedTenants = this.tenantsAtShare();
        const retryFireAt = this.nextFireRetry();
        const next = await msUntilNextDue(this.db.sql, [...this.running.keys()], excludedQueues, excludedTenants, [
          ...this.fireBackoff.keys(),
        ]);
        this.lookedUpAt = Date.now();
        this.idle =
          exhausted &&
          (next.dueMs == null || next.dueMs > 0) &&
          excludedQueues.length === 0 &&
          excludedTenants.length === 0 &&
          !this.capped.any;
        this.recoverAt = next.leaseMs == null ? Infinity : Date.now() + Math.max(0, next.leaseMs);
        this.overlapAt = Math.max(
          this.firePassBackoff.at,
          Math.min(retryFireAt, next.overlapMs == null ? Infinity : Date.now() + Math.max(0, next.overlapMs)),
        );
        // Something due that we could not claim: locked by another instance mid-claim, or a SKIP-policy
        // misfire waiting for its decision. Look again shortly, deciding misfires first.
        if (exhausted && next.dueMs != null && next.dueMs <= 0) this.checkMisfires = true;
        const dueMs = this.freeSlots() <= 0 ? null : next.dueMs;
        // Firing needs no free slot: an ALLOW-overlap task's occurrence is created on time, and waits for one.
        const ms = Math.min(dueMs ?? Infinity, next.leaseMs ?? Infinity, this.overlapAt - Date.now());
        delay = ms === Infinity ? this.options.maxSleepMs : Math.min(this.options.maxSleepMs, ms <= 0 ? 20 : ms);
      }
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'scheduler check failed; retrying');
      delay = 1000;
    } finally {
      this.ticking = false;
    }
    if (this.stopped) return;
    clearTimeout(this.timer);
    const freed = this.freedDuringTick;
    this.freedDuringTick = false;
    if (this.again) {
      this.again = false;
      this.wake();
      return;
    }
    this.timer = setTimeout(() => void this.tick(), delay);
    if (freed) this.slotFreed();
  }

  /** Whether some tenant has maxConcurrentRuns (then claims also run claimCappedTasks). */
  private async checkCapped(): Promise<void> {
    this.capped.any = await hasCappedTenants(this.db.sql);
    this.capped.checkedAt = Date.now();
  }

  /** Slots of this instance one tenant may hold once more than one tenant has tasks. */
  private get tenantSlots(): number {
    return Math.max(1, Math.floor(this.options.concurrency * this.options.tenantSlotShare));
  }

  private heldByTenant(extra: ClaimedTask[] = []): Map<string, number> {
    const held = new Map(this.reservedByTenant);
    for (const task of [...[...this.running.values()].map((r) => r.task), ...extra])
      held.set(task.tenantId, (held.get(task.tenantId) ?? 0) + 1);
    return held;
  }

  private tenantsAtShare(): string[] {
    return [...this.heldByTenant()].filter(([, n]) => n >= this.tenantSlots).map(([tenant]) => tenant);
  }

  /**
   * Claims up to `limit` tasks, shared fairly between tenants (see claimTasks). While some tenant has
   * maxConcurrentRuns, its tasks are claimed by claimCappedTasks, which enforces the limit across
   * instances; the two claims take turns going first.
   */
  private async claim(limit: number): Promise<ClaimedTask[]> {
    const sql = this.db.sql;
    const request = (n: number, extra: ClaimedTask[] = []): ClaimRequest => ({
      workerId: this.workerId,
      limit: n,
      leaseMs: this.options.leaseMs,
      excludedQueues: this.fullQueues(),
      tenantSlots: this.tenantSlots,
      held: this.heldByTenant(extra),
    });
    if (!this.capped.any) return claimTasks(sql, request(limit));
    this.capped.first = !this.capped.first;
    const [one, two] = this.capped.first
      ? [
          (n: number, extra: ClaimedTask[]) => claimCappedTasks(sql, request(n, extra)),
          (n: number, extra: ClaimedTask[]) => claimTasks(sql, request(n, extra)),
        ]
      : [
          (n: number, extra: ClaimedTask[]) => claimTasks(sql, request(n, extra)),
          (n: number, extra: ClaimedTask[]) => claimCappedTasks(sql, request(n, extra)),
        ];
    const first = await one(limit, []);
    if (first.length >= limit || this.stopped) return first;
    try {
      return [...first, ...(await two(limit - first.length, first))];
    } catch (error) {
      // The first claim's tasks are RUNNING under this worker's leases: they must run, not wait for recovery.
      this.logger.error({ err: error }, 'claim failed; running what was claimed before it');
      return first;
    }
  }

  /**
   * Fires the due ALLOW-overlap tasks. Its failures never stop ordinary tasks from being claimed. One task
   * whose occurrence cannot be written is left out of the next attempts for a while (1 s, doubling up to
   * a minute, each with a warning), so that it neither holds up the others nor has the scheduler retry it
   * at every check; a failure of the whole pass (the database, a timeout) defers the next pass alike.
   */
  private async fireOverlapping(): Promise<void> {
    try {
      for (;;) {
        const now = Date.now();
        const skip = [...this.fireBackoff].filter(([, b]) => b.at > now).map(([id]) => id);
        const { seen, fired, failed } = await fireOverlappingTasks(this.db.prisma, 100, skip);
        for (const id of fired) this.fireBackoff.delete(id);
        if (seen < 100) {
          // Every due task was looked at: one tried again that neither fired nor failed is no longer due.
          const failedIds = new Set(failed.map((f) => f.id));
          for (const id of this.fireBackoff.keys()) if (!skip.includes(id) && !failedIds.has(id)) this.fireBackoff.delete(id);
        }
        for (const { id, error } of failed) {
          const backoff = backoffAfter(this.fireBackoff.get(id));
          this.fireBackoff.set(id, backoff);
          this.logger.warn({ err: error, taskId: id, retryInMs: backoff.delayMs }, 'could not fire an occurrence of an ALLOW-overlap task');
        }
        if (seen < 100 || this.stopped) break;
      }
      this.firePassBackoff = { at: 0, delayMs: 0 };
    } catch (error) {
      this.firePassBackoff = backoffAfter(this.firePassBackoff);
      if (!this.stopped) this.logger.error({ err: error, retryInMs: this.firePassBackoff.delayMs }, 'could not fire ALLOW-overlap tasks');
    }
  }

  /** When the next ALLOW-overlap task left out after a failed firing is to be tried again (Infinity: none). */
  private nextFireRetry(): number {
    let at = Infinity;
    for (const b of this.fireBackoff.values()) at = Math.min(at, b.at);
    return at;
  }

  /** Ends the attempts whose worker stopped (lease expired): FAILED on the last allowed attempt, else RETRYING after backoff. */
  private async recover(): Promise<void> {
    try {
      const own = [...this.running.keys()];
      let ended: { id: string; queue: string }[];
      do {
        ended = await recoverExpiredTasks(this.db.sql, 100, own);
        if (ended.length > 0) {
          this.logger.warn({ tasks: ended.length }, 'ended the attempts of tasks whose worker stopped (lease expired)');
          this.observe((o) => o.recovered(ended));
        }
      } while (ended.length === 100 && !this.stopped);
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'could not recover tasks with expired leases');
    }
  }

  private async skipMisfires(): Promise<void> {
    try {
      while ((await skipMisfiredTasks(this.db.prisma, 100)) === 100 && !this.stopped);
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'could not apply misfire policy SKIP');
    }
  }

  /** The heartbeat's answer: runs missing from it lost their lease (taken over or force-ended) and must stop. */
  private leasesExtended(report: LeaseReport): void {
    for (const runId of report.asked) {
      const entry = this.running.get(runId);
      if (!entry) continue;
      if (report.held.has(runId)) entry.leaseDeadline = Math.max(entry.leaseDeadline, report.sentAt + this.options.leaseMs);
      else this.abort(entry, 'lost', 'the run lost its lease: the task was force-ended or taken over by another instance');
    }
    if (Date.now() >= this.recoverAt) this.wake();
  }

  /**
   * Aborts runs whose lease could not be extended in time (a quarter of a lease before it runs out by
   * our conservative count). Skipped when this check itself ran late — the event loop was blocked or the
   * process frozen — so that the heartbeat, not a stale clock, decides first.
   */
  private guardLeases(): void {
    const now = Date.now();
    const interval = Math.max(10, Math.floor(this.options.leaseMs / 8));
    const late = now - this.lastGuard - interval;
    this.lastGuard = now;
    this.keeper.alive();
    if (late > interval) return;
    for (const entry of this.running.values()) {
      if (!entry.reason && now > entry.leaseDeadline - this.margin) {
        this.abort(entry, 'lost', 'the lease of this run could not be extended in time (the database is unreachable or slow)');
      }
    }
  }

  private execute(task: ClaimedTask, claimSentAt: number): void {
    const entry: Running = {
      task,
      leaseDeadline: claimSentAt + this.options.leaseMs,
      claimedLocally: Date.now(),
      done: Promise.resolve(),
    };
    this.running.set(task.runId, entry);
    // Queued before run() queues the handler's first step: the keeper knows of the run before the handler
    // can block the event loop (a synchronous handler longer than LEASE_MS keeps its lease).
    this.leasesChanged();
    entry.done = this.run(entry)
      .catch((error) => {
        this.logger.error(
          { err: error, taskId: task.id },
          'could not record the end of a run; its lease will expire and it will be recovered',
        );
        return false;
      })
      .then((applied) => {
        this.running.delete(task.runId);
        this.leasesChanged();
        this.slotFreed();
        // Its end was not recorded: the task may still be RUNNING under this run, whose lease no look-up
        // here watched while the run was ours (msUntilNextDue leaves running runs out). A check now looks
        // it up, so the task is recovered as its lease runs out, not at the next timer, up to 30 s later.
        if (!applied) this.wake();
      });
  }

  /**
   * Runs that take one of the CONCURRENCY slots: those whose handler has not settled. (Queue limits and
   * tenant shares count every run until its end is recorded.) While some tenant has maxConcurrentRuns,
   * every run: a capped claim's transaction may begin before that end is written and count after it, and
   * its run would then be recorded as starting before the other one ended (run history over the limit).
   */
  private active(): Running[] {
    const all = [...this.running.values()];
    return this.capped.any ? all : all.filter((r) => !r.settled);
  }

  /**
   * Slots free for a claim. A run whose handler settled frees its slot at once, so the next claim goes
   * out while its end is still being written (the claim and the completions' statement overlap instead
   * of taking turns); runs still being recorded are bounded by another CONCURRENCY.
   */
  private freeSlots(): number {
    const { concurrency } = this.options;
    return Math.min(concurrency - this.active().length, 2 * concurrency - this.running.size) - this.reserved;
  }

  /**
   * Slots for a create whose insert claims its own due-now tasks (up to `due` of them), so that they start
   * here as soon as it commits instead of after a NOTIFY, a check and a claim of their own (src/tasks/
   * bulkInsert.ts): the insert leaves them exactly as a claim does, and the slots are this instance's free
   * ones, held until `start` or `release`. Null — the tasks take the usual path — when the scheduler is
   * not running, no slot is free, a claim is in flight (its limit counted the free slots), some tenant has
   * maxConcurrentRuns (enforced across instances by claimCappedTasks only). The insert itself leaves out
   * queues with a per-process limit, takes no more than the tenant's share once more than one tenant has
   * tasks (as the claim does), and claims nothing while another task waits to be claimed.
   */
  reserveStart(tenantId: string, due: number): StartReservation | null {
    if (this.stopped || due <= 0 || this.claiming || this.capped.any) return null;
    const slots = Math.min(due, this.freeSlots());
    if (slots <= 0) return null;
    const tenantRoom = Math.max(0, this.tenantSlots - (this.heldByTenant().get(tenantId) ?? 0));
    this.reserved += slots;
    this.reservedByTenant.set(tenantId, (this.reservedByTenant.get(tenantId) ?? 0) + slots);
    const sentAt = Date.now();
    let open = true;
    const end = () => {
      if (!open) return false;
      open = false;
      this.reserved -= slots;
      const left = this.reservedByTenant.get(tenantId)! - slots;
      if (left > 0) this.reservedByTenant.set(tenantId, left);
      else this.reservedByTenant.delete(tenantId);
      return true;
    };
    return {
      claim: {
        workerId: this.workerId,
        leaseMs: this.options.leaseMs,
        limit: slots,
        excludedQueues: Object.keys(this.options.queueConcurrency),
        tenantRoom,
      },
      // The runs use the scheduler's own database handles, never the request's that created them: a run
      // does not inherit its time budget and client signal.
      start: (claimed) => {
        if (!end()) return;
        if (this.stopped) {
          // stop() came while the insert was in flight: no new run starts; the tasks go straight back.
          for (const task of claimed) {
            this.complete(this.handBack(task, 0, [], 'the worker is shutting down; it never started')).catch((error) =>
              this.logger.error(
                { err: error, taskId: task.id },
                'could not hand back a task; its lease will expire and it will be recovered',
              ),
            );
          }
          return;
        }
        for (const task of claimed) this.execute(task, sentAt);
        this.observeClaimed(claimed);
        if (claimed.length < slots) this.slotFreed();
      },
      release: () => {
        if (end()) this.slotFreed();
      },
    };
  }

  /**
   * Claim in batches: once a quarter of the slots are free (or all are), check again. Tasks that become
   * due meanwhile still wake us through NOTIFY.
   */
  private slotFreed(): void {
    if (this.ticking) {
      this.freedDuringTick = true;
      return;
    }
    if (this.idle) return;
    const free = this.freeSlots();
    if (free >= Math.max(1, Math.floor(this.options.concurrency / 4)) || free >= this.options.concurrency) this.wake();
  }

  private leases(): { taskId: string; runId: string }[] {
    return [...this.running.values()].map((r) => ({ taskId: r.task.id, runId: r.task.runId }));
  }

  /**
   * Tells the lease keeper which runs to extend, once for all the runs that started or ended in this
   * turn: a claim of 24 tasks sends one message instead of 24 copies of a growing list. The message goes
   * in a microtask queued before the first of those handlers' (see execute), so the keeper's thread has
   * every run of the claim before any of its handlers runs.
   */
  private leasesChanged(): void {
    if (this.leasesPending) return;
    this.leasesPending = true;
    queueMicrotask(() => {
      this.leasesPending = false;
      this.keeper.update(this.leases());
    });
  }

  /** Runs an attempt and records its end; whether that end applied (the run still held the task). */
  private async run(entry: Running): Promise<boolean> {
    const { task } = entry;
    const log = () => this.logger.child({ taskId: task.id, runId: task.runId, funcName: task.funcName, attempt: task.attempts });
    const runLogger = new RunLogger(log);
    const startedAt = this.databaseNow(entry);
    const started = performance.now();
    const outcome = await this.invoke(entry, runLogger);
    const durationMs = Math.round(performance.now() - started);
    entry.settled = true;
    if (!this.capped.any) this.slotFreed();
    if (outcome.kind === 'abandoned')
      runLogger.warn(
        `handler ignored its abort signal for ${this.options.abortGraceMs} ms and was abandoned; its result will be discarded`,
      );
    const run = { startedAt, durationMs, logs: runLogger.drain() };
    let completion = this.completionFor(entry, outcome, run);
    let result = await this.complete(completion);
    // updateTask edited the task while it ran: its next run (and retry policy) come from the edited settings.
    for (let i = 0; result === 'edited' && i < 10; i++) {
      await this.readEdits(entry);
      // The first send stored the run's log lines.
      completion = this.completionFor(entry, outcome, { startedAt: run.startedAt, durationMs: run.durationMs, logs: [] });
      result = await this.complete(completion);
    }
    const applied = result === 'applied';
    if (applied && !completion.abandoned) this.observe((o) => o.completed(task, { runStatus: completion.runStatus, durationMs }));
    if (!applied && entry.reason !== 'forced')
      log().warn('the run lost its lease while it ran (forced end or takeover); its outcome was discarded');
    return applied;
  }

  /** What an attempt's end does to its task; everything stored here went through toJson / toStorableText. */
  private completionFor(
    entry: Running,
    outcome: Outcome,
    run: { startedAt: Date; durationMs: number; logs: Completion['logs'] },
  ): Completion {
    const { task } = entry;
    const finishedUnasked = outcome.kind === 'ok' && entry.reason !== 'timeout';
    if ((entry.reason === 'shutdown' || entry.reason === 'lost') && !finishedUnasked) {
      return this.handBack(task, run.durationMs, run.logs, reasonText(entry.reason));
    }
    // What every ending of this attempt shares, first in the literal: fields written after a spread are
    // a slow path on Node 20's V8 (about 1 µs each: 20 µs per completion, see recurrence.ts).
    const settle = (end: AttemptEnd): Completion => ({
      taskId: task.id,
      runId: task.runId,
      workerId: this.workerId,
      durationMs: run.durationMs,
      logs: run.logs,
      abandoned: false,
      eventType: 'STATUS_CHANGED',
      revision: task.revision,
      ...end,
    });
    if (entry.reason === 'forced') {
      // forcedEnd has ended the task already; this only applies if it somehow has not, and stores the logs.
      return settle({
        revision: null,
        status: TaskStatus.FORCED_END,
        nextRunAt: null,
        occurrenceAt: null,
        attempts: task.attempts,
        runCountDelta: 0,
        lastError: null,
        runStatus: 'CANCELLED',
        result: null,
        error: 'forced end requested',
        errorStack: null,
        message: 'forced end: the running handler was aborted',
      });
    }
    let failure: { error: Error; runStatus: Completion['runStatus'] } | undefined;
    if (finishedUnasked) {
      const json = toJson((outcome as { value: unknown }).value, this.options.maxJsonBytes);
      if (json.ok) {
        const now = this.databaseNow(entry);
        const next = nextRunAfter(task, { scheduledFor: task.scheduledFor, runStartedAt: run.startedAt, now, runCount: task.runCount + 1 });
        return settle({
          status: next ? TaskStatus.SCHEDULED : TaskStatus.SUCCEEDED,
          nextRunAt: next,
          occurrenceAt: null,
          attempts: next ? 0 : task.attempts,
          runCountDelta: 1,
          lastError: null,
          runStatus: 'SUCCEEDED',
          result: json.value,
          error: null,
          errorStack: null,
          message: next ? `succeeded; next run ${next.toISOString()}` : 'succeeded',
        });
      }
      failure = { error: new Error(json.error), runStatus: 'FAILED' };
    } else if (entry.reason === 'timeout') {
      failure = { error: new Error(`timed out after ${this.timeoutOf(task)} ms`), runStatus: 'TIMED_OUT' };
    } else if (outcome.kind === 'died') {
      failure = { error: outcome.error, runStatus: outcome.error.status === 'TERMINATED' ? 'FAILED' : outcome.error.status };
    } else {
      failure = { error: outcome.kind === 'error' ? toError(outcome.error) : new Error('handler abandoned'), runStatus: 'FAILED' };
    }
    const message = toStorableText(failure.error.message, 8192);
    const retry = task.attempts < task.maxAttempts && !(outcome.kind === 'error' && isNonRetryable(outcome.error));
    const now = this.databaseNow(entry);
    const next = retry
      ? new Date(now.getTime() + retryDelayMs(task.retryBackoffMs, task.attempts))
      : nextRunAfter(task, { scheduledFor: task.scheduledFor, runStartedAt: run.startedAt, now, runCount: task.runCount + 1 });
    const status = retry ? TaskStatus.RETRYING : next ? TaskStatus.SCHEDULED : TaskStatus.FAILED;
    return settle({
      status,
      nextRunAt: next,
      // A retry belongs to the occurrence that failed: the schedule continues from that, not from the retry.
      occurrenceAt: retry ? task.scheduledFor : null,
      attempts: status === TaskStatus.SCHEDULED ? 0 : task.attempts,
      runCountDelta: retry ? 0 : 1,
      lastError: message,
      runStatus: failure.runStatus,
      result: null,
      error: message,
      errorStack: failure.error.stack ? toStorableText(failure.error.stack) : null,
      message: retry
        ? `attempt ${task.attempts} of ${task.maxAttempts} failed; retrying at ${next!.toISOString()}`
        : status === TaskStatus.SCHEDULED
          ? `failed after ${task.attempts} attempt(s); next occurrence ${next!.toISOString()}`
          : `failed after ${task.attempts} attempt(s)`,
    });
  }

  /**
   * Now by the database's clock, which decides when occurrences are due: the claim's time plus what
   * passed here since its answer came in (a little early, by the time that answer took to arrive). A
   * next occurrence counted from this process' clock was one already due when that clock was behind
   * (run twice) and skipped occurrences not yet due when it was ahead.
   */
  private databaseNow(entry: Running): Date {
    return new Date(entry.task.claimedAt.getTime() + (Date.now() - entry.claimedLocally));
  }

  /**
   * Gives a task back unfinished (shutdown, or a lease that could not be extended): due again at once, the
   * attempt not counted, its occurrence unchanged; the next run is recorded `recovered`.
   */
  private handBack(task: ClaimedTask, durationMs: number, logs: Completion['logs'], why: string): Completion {
    return {
      taskId: task.id,
      runId: task.runId,
      workerId: this.workerId,
      status: task.attempts > 1 ? TaskStatus.RETRYING : TaskStatus.SCHEDULED,
      nextRunAt: task.nextRunAt,
      occurrenceAt: task.attempts > 1 ? task.scheduledFor : null,
      attempts: task.attempts - 1,
      runCountDelta: 0,
      lastError: null,
      runStatus: 'ABANDONED',
      durationMs,
      result: null,
      error: `handed back by worker ${this.workerId}: ${why}`,
      errorStack: null,
      eventType: 'RECOVERED',
      message: `handed back by worker ${this.workerId} (${why}); due again now, not counted as an attempt`,
      abandoned: true,
      logs,
      // The same occurrence, due again: nothing here comes from the schedule an edit may have changed.
      revision: null,
    };
  }

  /** Reads what updateTask may have changed of a running task into its claimed copy (the run's own attempt stays). */
  private async readEdits(entry: Running): Promise<void> {
    const row = await this.db.prisma.task.findUnique({
      where: { id: entry.task.id },
      select: {
        repeatType: true,
        cronExpression: true,
        intervalSeconds: true,
        timezone: true,
        endTime: true,
        maxRuns: true,
        maxAttempts: true,
        retryBackoffMs: true,
        misfirePolicy: true,
        misfireToleranceMs: true,
        overlapPolicy: true,
        revision: true,
      },
    });
    if (row) entry.task = { ...entry.task, ...row };
  }

  /**
   * Queues a completion; one writer at a time flushes everything queued into a single statement, so
   * completions that finish while a batch is being written share the next commit.
   */
  private complete(completion: Completion): Promise<CompletionResult> {
    const result = new Promise<CompletionResult | Error>((done) => this.pending.push({ completion, done }));
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
    return result.then((r) => {
      if (r instanceof Error) throw r;
      return r;
    });
  }

  private async flush(): Promise<void> {
    // Runs that end in the same turn of the event loop (a claimed batch of quick handlers) share the
    // first statement too, not only the ones that end while it is being written.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.length) {
      const batch = this.pending.splice(0, 500);
      try {
        const results = await completeRuns(
          this.db.sql,
          batch.map((b) => b.completion),
        );
        for (const b of batch) b.done(results.get(b.completion.runId) ?? 'lost');
      } catch (error) {
        if (batch.length > 1)
          this.logger.warn({ err: error, completions: batch.length }, 'a batch of completions failed; applying them one by one');
        // One row must not poison the others: each is applied on its own.
        for (const b of batch) b.done(await this.completeAlone(b.completion).catch((e: Error) => e));
      }
    }
  }

  /**
   * One completion on its own, retried while the database is unreachable. If the database refuses it
   * (something toJson did not foresee), the attempt is recorded as failed without its result and logs,
   * so the task does not stay RUNNING until its lease runs out and is then run again.
   */
  private async completeAlone(completion: Completion): Promise<CompletionResult> {
    let lastError: unknown;
    for (let i = 1; i <= 5; i++) {
      try {
        return (await completeRuns(this.db.sql, [completion])).get(completion.runId) ?? 'lost';
      } catch (error) {
        lastError = error;
        try {
          const error2 = toStorableText(`the outcome could not be stored: ${(error as Error).message}`, 8192);
          const stripped: Completion = {
            ...completion,
            result: null,
            logs: [],
            error: error2,
            errorStack: null,
            lastError: error2,
            message: toStorableText(completion.message, 8192),
          };
          if (completion.runStatus === 'SUCCEEDED') Object.assign(stripped, { runStatus: 'FAILED' });
          return (await completeRuns(this.db.sql, [stripped])).get(completion.runId) ?? 'lost';
        } catch (again) {
          lastError = again;
          await new Promise((r) => setTimeout(r, 100 * 2 ** i));
        }
      }
    }
    throw lastError;
  }

  private timeoutOf(task: ClaimedTask): number | null {
    return task.timeoutMs ?? this.handlers.entry(task.funcName)?.info.timeoutMs ?? null;
  }

  /**
   * `ctx.assertLease()`: checks (and extends) the lease in the database. A run that already knows it lost
   * its lease, or finds out here, is aborted and the call throws LeaseLostError.
   */
  private async assertLease(entry: Running): Promise<void> {
    if (entry.reason) throw new LeaseLostError(`this run no longer holds its lease: ${reasonText(entry.reason)}`);
    const sentAt = Date.now();
    const held = await checkLease(this.db.sql, entry.task.id, entry.task.runId, this.options.leaseMs);
    if (!held) {
      this.abort(entry, 'lost', 'the run lost its lease: the task was force-ended or taken over by another instance');
      throw new LeaseLostError('this run no longer holds its lease (the task was force-ended, taken over, or the lease ran out)');
    }
    entry.leaseDeadline = Math.max(entry.leaseDeadline, sentAt + this.options.leaseMs);
  }

  /** Runs the handler through its task type; resolves when it settles or, once aborted, after the grace period. */
  private invoke(entry: Running, logger: RunLogger): Promise<Outcome> {
    const { task } = entry;
    const handler = this.handlers.entry(task.funcName);
    const type = this.taskTypes.get(task.taskType);
    if (!handler || !type) {
      const missing = !handler ? `handler ${task.funcName}` : `task type ${task.taskType}`;
      return Promise.resolve({ kind: 'error', error: new Error(`${missing} is not registered on worker ${this.workerId}`) });
    }
    const thread = task.memoryLimitMb != null || handler.info.isolation === 'thread' || type.options.isolation === 'thread';
    if (thread && !handler.module) {
      return Promise.resolve({
        kind: 'error',
        error: new Error(
          `handler ${task.funcName} is a function registered in-process; it cannot run in a worker thread (register it by module)`,
        ),
      });
    }
    const { taskSvcFor } = this.options;
    let taskSvc: HandlerContext['taskSvc'] | undefined;
    const ctx: HandlerContext = {
      get signal() {
        return signalOf(entry);
      },
      logger,
      task: {
        id: task.id,
        tenantId: task.tenantId,
        fullName: task.fullName,
        funcName: task.funcName,
        taskType: task.taskType,
        attempt: task.attempts,
        maxAttempts: task.maxAttempts,
        occurrence: task.runCount + 1,
        scheduledFor: task.scheduledFor,
      },
      run: { id: task.runId, recovered: task.recovered },
      fencingToken: `${task.runId}:${task.attempts}`,
      assertLease: () => this.assertLease(entry),
      // Bound when the handler first asks for it: most never do, and binding one per run cost each run's
      // start about 0.02 ms.
      get taskSvc() {
        taskSvc ??= taskSvcFor(task);
        return taskSvc;
      },
    };
    let fn: Handler;
    if (thread) {
      const kill = new AbortController();
      entry.kill = kill;
      const memoryLimitMb =
        task.memoryLimitMb ?? handler.info.memoryLimitMb ?? type.options.memoryLimitMb ?? this.options.threadMemoryLimitMb;
      fn = (args, c) =>
        this.threads.run({ url: handler.module!.url, exportName: handler.module!.exportName, args, memoryLimitMb, kill: kill.signal }, c);
    } else {
      fn = this.handlers.get(task.funcName)!;
    }
    const timeoutMs = this.timeoutOf(task);
    return new Promise<Outcome>((resolve) => {
      let timeout: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      const settle = (outcome: Outcome) => {
        entry.onAbort = undefined;
        clearTimeout(timeout);
        clearTimeout(grace);
        resolve(outcome);
      };
      // An in-process handler cannot be stopped, only abandoned; a thread is terminated instead (abort()).
      const onAbort = () => {
        if (!thread) grace = setTimeout(() => settle({ kind: 'abandoned' }), this.options.abortGraceMs);
      };
      if (entry.reason) onAbort();
      else entry.onAbort = onAbort;
      if (timeoutMs != null) timeout = setTimeout(() => this.abort(entry, 'timeout'), timeoutMs);
      Promise.resolve()
        .then(() => type.run({ handler: fn, args: task.argDict ?? {}, ctx }))
        .then(
          (value) => settle({ kind: 'ok', value }),
          (error: unknown) => settle(error instanceof ThreadDied ? { kind: 'died', error } : { kind: 'error', error }),
        );
    });
  }
}

/** The run's abort signal (Running.controller), made on first use; aborted already when the run was. */
function signalOf(entry: Running): AbortSignal {
  if (!entry.controller) {
    entry.controller = new AbortController();
    if (entry.abortError) entry.controller.abort(entry.abortError);
  }
  return entry.controller.signal;
}

function reasonText(reason: AbortReason): string {
  return {
    forced: 'the task was force-ended',
    timeout: 'the task timed out',
    shutdown: 'the worker is shutting down',
    lost: 'the worker lost the lease of this run',
  }[reason];
}

function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (typeof value === 'string') return new Error(value);
  const json = toJson(value, 8192, 'thrown value');
  return new Error(json.ok ? JSON.stringify(json.value) : json.error);
}

/** The next attempt after a failed firing: 1 s after the first failure, then twice the last delay, at most a minute. */
function backoffAfter(last: { delayMs: number } | undefined): { at: number; delayMs: number } {
  const delayMs = Math.min(60_000, Math.max(1000, 2 * (last?.delayMs ?? 0)));
  return { at: Date.now() + delayMs, delayMs };
}
