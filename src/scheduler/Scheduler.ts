import { TaskStatus } from '../generated/prisma/client.js';
import type { HandlerContext, HandlerRegistry } from '../handlers/HandlerRegistry.js';
import { isNonRetryable } from '../handlers/NonRetryableError.js';
import type { Database } from '../db/Database.js';
import type { Logger } from '../logger.js';
import { CANCEL_CHANNEL, WAKE_CHANNEL } from '../tasks/statusMachine.js';
import { assertJson } from '../tasks/validate.js';
import type { TaskTypeRegistry } from '../tasks/TaskTypeRegistry.js';
import { nextRunAfter, retryDelayMs } from './recurrence.js';
import { RunLogger } from './RunLogger.js';
import { claimTasks, completeRuns, extendLeases, msUntilNextDue, recoverExpiredTasks, releaseLeases, type ClaimedTask, type Completion } from './sql.js';
import { fireOverlappingTasks } from './fireOverlappingTasks.js';
import { skipMisfiredTasks } from './skipMisfiredTasks.js';
import type { SchedulerObserver } from './SchedulerObserver.js';

export interface SchedulerOptions {
  workerId: string;
  /** Handlers running at once in this process. */
  concurrency: number;
  /** Per-queue limits in this process, e.g. { emails: 2 }. */
  queueConcurrency: Record<string, number>;
  leaseMs: number;
  /** How long an aborted handler may take to stop before it is abandoned. */
  abortGraceMs: number;
  /** Longest sleep between checks even when nothing is due (a safety net for lost notifications). */
  maxSleepMs: number;
  /** Largest handler result (as JSON) that is stored; a larger or unstorable one fails the attempt. */
  maxJsonBytes: number;
  /** Told about claims, recoveries and completions (metrics). */
  observer?: SchedulerObserver;
  /** The TaskSvc a handler gets in its context: bound to its task's tenant, acting as the task. */
  taskSvcFor: (task: { id: string; tenantId: string }) => HandlerContext['taskSvc'];
}

type AbortReason = 'forced' | 'timeout' | 'shutdown' | 'lost';

interface Running {
  task: ClaimedTask;
  controller: AbortController;
  reason?: AbortReason;
  done: Promise<void>;
}

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'error'; error: unknown } | { kind: 'abandoned' };

/**
 * Runs due tasks. It sleeps until the next task is due (by the database's clock) and is woken early by
 * NOTIFY on `chronograph_wake` — sent on commit whenever a task becomes due sooner — so a task due now
 * starts within milliseconds without polling. Claims are batched and SKIP LOCKED, so any number of
 * instances share one database; each run holds a lease its heartbeat extends, and tasks whose lease ran
 * out are recovered by whoever sees them first.
 *
 * The loop never throws: database errors are logged and retried after a pause.
 */
export class Scheduler {
  private readonly running = new Map<string, Running>();
  private timer?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private ticking = false;
  private beating = false;
  private again = false;
  private stopped = true;
  private unlisten: (() => Promise<void>)[] = [];
  private readonly pending: { completion: Completion; done: (applied: boolean | Error) => void }[] = [];
  private flushing?: Promise<void>;

  constructor(
    private readonly db: Database,
    private readonly handlers: HandlerRegistry,
    private readonly taskTypes: TaskTypeRegistry,
    private readonly logger: Logger,
    private readonly options: SchedulerOptions,
  ) {}

  get workerId(): string {
    return this.options.workerId;
  }

  /** Task ids running in this process right now. */
  runningTaskIds(): string[] {
    return [...this.running.keys()];
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.unlisten.push(await this.db.listen(WAKE_CHANNEL, () => this.wake()));
    this.unlisten.push(await this.db.listen(CANCEL_CHANNEL, (taskId) => this.abort(taskId, 'forced')));
    const beat = Math.max(50, Math.floor(this.options.leaseMs / 3));
    this.heartbeat = setInterval(() => void this.beat(), beat);
    this.logger.info({ worker: this.workerId, concurrency: this.options.concurrency, leaseMs: this.options.leaseMs }, 'scheduler started');
    this.wake();
  }

  /** Asks for a check of due tasks soon; calls during a check coalesce into one more check. */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), 0);
  }

  /** Aborts a task running here (forced end from any instance arrives through CANCEL_CHANNEL). */
  abort(taskId: string, reason: AbortReason): boolean {
    const entry = this.running.get(taskId);
    if (!entry || entry.reason) return false;
    entry.reason = reason;
    entry.controller.abort(new Error(reasonText(reason)));
    return true;
  }

  /**
   * Stops claiming, gives running handlers up to `graceMs` to finish, then aborts the rest and releases
   * their leases so another instance recovers them right away.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    for (const unlisten of this.unlisten.splice(0)) await unlisten().catch(() => {});
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([all().then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
    clearTimeout(timer);
    if (!finished) {
      const ids = [...this.running.keys()];
      for (const id of ids) this.abort(id, 'shutdown');
      await all();
      this.logger.warn({ tasks: ids.length }, 'released the leases of tasks still running at shutdown');
    }
    // Wait for an in-flight tick so nothing touches the database after stop() resolves.
    while (this.ticking) await new Promise((r) => setTimeout(r, 5));
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

  private fullQueues(): string[] {
    const counts = new Map<string, number>();
    for (const r of this.running.values()) counts.set(r.task.queue, (counts.get(r.task.queue) ?? 0) + 1);
    return Object.entries(this.options.queueConcurrency)
      .filter(([queue, limit]) => (counts.get(queue) ?? 0) >= limit)
      .map(([queue]) => queue);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    this.ticking = true;
    let delay: number;
    try {
      await this.fireOverlapping();
      for (;;) {
        const free = this.options.concurrency - this.running.size;
        if (free <= 0 || this.stopped) break;
        // Per-queue limits apply to the whole batch, so claim one at a time while any queue is limited.
        const limit = Object.keys(this.options.queueConcurrency).length ? 1 : free;
        const claimed = await claimTasks(this.db.prisma, this.workerId, limit, this.options.leaseMs, this.fullQueues());
        if (claimed.length) this.observe((o) => o.claimed(claimed));
        for (const task of claimed) this.execute(task);
        if (claimed.length < limit) break;
      }
      const ms = this.running.size >= this.options.concurrency ? null : await msUntilNextDue(this.db.prisma, this.fullQueues());
      // Something due that we could not claim (locked by another instance mid-claim): look again shortly.
      delay = ms == null ? this.options.maxSleepMs : Math.min(this.options.maxSleepMs, Math.max(ms <= 0 ? 20 : ms, 0));
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'scheduler check failed; retrying');
      delay = 1000;
    } finally {
      this.ticking = false;
    }
    if (this.stopped) return;
    if (this.again) {
      this.again = false;
      delay = 0;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  /** A failure here (one bad row) must not stop ordinary tasks from being claimed, so it is contained. */
  private async fireOverlapping(): Promise<void> {
    try {
      while ((await fireOverlappingTasks(this.db.prisma, 100)) === 100 && !this.stopped);
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'could not fire ALLOW-overlap tasks');
    }
  }

  /** Lease heartbeat, forced-end and lost-lease detection, crash recovery, misfire skipping. */
  private async beat(): Promise<void> {
    if (this.stopped || this.beating) return; // a slow database must not pile up heartbeats
    this.beating = true;
    try {
      const ids = [...this.running.keys()];
      const held = await extendLeases(this.db.prisma, this.workerId, ids, this.options.leaseMs);
      const still = new Map(held.map((h) => [h.id, h.cancelRequested]));
      for (const id of ids) {
        if (!still.has(id)) this.abort(id, 'lost');
        else if (still.get(id)) this.abort(id, 'forced');
      }
      const free = this.options.concurrency - this.running.size;
      if (free > 0 && !this.stopped) {
        const recovered = await recoverExpiredTasks(this.db.prisma, this.workerId, free, this.options.leaseMs);
        if (recovered.length) this.observe((o) => o.recovered(recovered));
        for (const task of recovered) {
          this.logger.warn({ taskId: task.id, attempt: task.attempts }, 'recovered a task whose worker lost its lease');
          this.execute(task);
        }
      }
      if (!this.stopped && (await skipMisfiredTasks(this.db.prisma, 100)) > 0) this.wake();
    } catch (error) {
      if (!this.stopped) this.logger.error({ err: error }, 'scheduler heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  private execute(task: ClaimedTask): void {
    const controller = new AbortController();
    const entry: Running = { task, controller, done: Promise.resolve() };
    this.running.set(task.id, entry);
    entry.done = this.run(entry)
      .catch((error) => this.logger.error({ err: error, taskId: task.id }, 'could not record the end of a run; its lease will expire and it will be recovered'))
      .finally(() => {
        this.running.delete(task.id);
        // Claim in batches: wait until a quarter of the slots are free (or all are) before claiming again.
        // Tasks that become due meanwhile still wake us through NOTIFY.
        const free = this.options.concurrency - this.running.size;
        if (free >= Math.max(1, Math.floor(this.options.concurrency / 4)) || this.running.size === 0) this.wake();
      });
    if (task.cancelRequested) this.abort(task.id, 'forced');
  }

  private async run(entry: Running): Promise<void> {
    const { task } = entry;
    const log = this.logger.child({ taskId: task.id, runId: task.runId, funcName: task.funcName, attempt: task.attempts });
    const runLogger = new RunLogger(log);
    const startedAt = new Date();
    const started = performance.now();
    const outcome = storable(await this.invoke(entry, runLogger), this.options.maxJsonBytes);
    const durationMs = Math.round(performance.now() - started);
    if (outcome.kind === 'abandoned') runLogger.warn(`handler ignored its abort signal for ${this.options.abortGraceMs} ms and was abandoned; its result will be discarded`);

    const base = { taskId: task.id, runId: task.runId, workerId: this.workerId, durationMs, logs: runLogger.drain(), result: null, error: null, errorStack: null };
    let completion: Completion;
    if (entry.reason === 'shutdown' || entry.reason === 'lost') {
      await releaseLeases(this.db.prisma, this.workerId, [task.id]);
      log.warn({ reason: entry.reason }, 'gave up a running task');
      return;
    }
    if (entry.reason === 'forced') {
      completion = {
        ...base,
        status: TaskStatus.FORCED_END,
        nextRunAt: null,
        attempts: task.attempts,
        runCountDelta: 0,
        lastError: null,
        runStatus: 'CANCELLED',
        error: 'forced end requested',
        message: 'forced end: the running handler was aborted',
      };
    } else if (outcome.kind === 'ok' && entry.reason !== 'timeout') {
      const now = new Date();
      const next = nextRunAfter({ ...task, scheduledFor: task.nextRunAt, runStartedAt: startedAt, now, runCount: task.runCount + 1 });
      completion = {
        ...base,
        status: next ? TaskStatus.SCHEDULED : TaskStatus.SUCCEEDED,
        nextRunAt: next,
        attempts: next ? 0 : task.attempts,
        runCountDelta: 1,
        lastError: null,
        runStatus: 'SUCCEEDED',
        result: outcome.value ?? null,
        message: next ? `succeeded; next run ${next.toISOString()}` : 'succeeded',
      };
    } else {
      const timedOut = entry.reason === 'timeout';
      const error = timedOut ? new Error(`timed out after ${task.timeoutMs} ms`) : outcome.kind === 'error' ? toError(outcome.error) : new Error('handler abandoned');
      const retry = task.attempts < task.maxAttempts && !(outcome.kind === 'error' && isNonRetryable(outcome.error));
      const now = new Date();
      const next = retry
        ? new Date(now.getTime() + retryDelayMs(task.retryBackoffMs, task.attempts))
        : nextRunAfter({ ...task, scheduledFor: task.nextRunAt, runStartedAt: startedAt, now, runCount: task.runCount + 1 });
      const status = retry ? TaskStatus.RETRYING : next ? TaskStatus.SCHEDULED : TaskStatus.FAILED;
      completion = {
        ...base,
        status,
        nextRunAt: next,
        attempts: status === TaskStatus.SCHEDULED ? 0 : task.attempts,
        runCountDelta: retry ? 0 : 1,
        lastError: error.message,
        runStatus: timedOut ? 'TIMED_OUT' : 'FAILED',
        error: error.message,
        errorStack: error.stack ?? null,
        message: retry
          ? `attempt ${task.attempts} of ${task.maxAttempts} failed; retrying at ${next!.toISOString()}`
          : status === TaskStatus.SCHEDULED
            ? `failed after ${task.attempts} attempt(s); next occurrence ${next!.toISOString()}`
            : `failed after ${task.attempts} attempt(s)`,
      };
    }
    const applied = await this.complete(completion);
    if (applied) this.observe((o) => o.completed(task, { runStatus: completion.runStatus, durationMs }));
    if (!applied) log.warn('the task was taken from this worker while it ran (forced end or lease expiry); its result was discarded');
  }

  /**
   * Queues a completion; one writer at a time flushes everything queued into a single statement, so
   * completions that finish while a batch is being written share the next commit.
   */
  private complete(completion: Completion): Promise<boolean> {
    const result = new Promise<boolean | Error>((done) => this.pending.push({ completion, done }));
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
    return result.then((r) => {
      if (r instanceof Error) throw r;
      return r;
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending.splice(0, 500);
      try {
        const applied = await withRetries(() => completeRuns(this.db.prisma, batch.map((b) => b.completion)));
        for (const b of batch) b.done(applied.has(b.completion.taskId));
      } catch (error) {
        for (const b of batch) b.done(error as Error);
      }
    }
  }

  /** Runs the handler through its task type; resolves when it settles or, once aborted, after the grace period. */
  private invoke(entry: Running, logger: RunLogger): Promise<Outcome> {
    const { task, controller } = entry;
    const handler = this.handlers.get(task.funcName);
    const type = this.taskTypes.get(task.taskType);
    if (!handler || !type) {
      const missing = !handler ? `handler ${task.funcName}` : `task type ${task.taskType}`;
      return Promise.resolve({ kind: 'error', error: new Error(`${missing} is not registered on worker ${this.workerId}`) });
    }
    const ctx: HandlerContext = {
      signal: controller.signal,
      logger,
      task: {
        id: task.id,
        tenantId: task.tenantId,
        fullName: task.fullName,
        funcName: task.funcName,
        taskType: task.taskType,
        attempt: task.attempts,
        maxAttempts: task.maxAttempts,
        scheduledFor: task.nextRunAt,
      },
      run: { id: task.runId, recovered: task.recovered },
      taskSvc: this.options.taskSvcFor(task),
    };
    return new Promise<Outcome>((resolve) => {
      let timeout: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      const settle = (outcome: Outcome) => {
        clearTimeout(timeout);
        clearTimeout(grace);
        resolve(outcome);
      };
      const onAbort = () => {
        grace = setTimeout(() => settle({ kind: 'abandoned' }), this.options.abortGraceMs);
      };
      if (controller.signal.aborted) onAbort();
      else controller.signal.addEventListener('abort', onAbort, { once: true });
      if (task.timeoutMs != null) timeout = setTimeout(() => this.abort(task.id, 'timeout'), task.timeoutMs);
      Promise.resolve()
        .then(() => type.run({ handler, args: task.argDict ?? {}, ctx }))
        .then(
          (value) => settle({ kind: 'ok', value }),
          (error: unknown) => settle({ kind: 'error', error }),
        );
    });
  }
}

/** A result that cannot be stored (too large, too deep, NUL characters) fails the attempt instead. */
function storable(outcome: Outcome, maxBytes: number): Outcome {
  if (outcome.kind !== 'ok' || outcome.value == null) return outcome;
  try {
    assertJson(outcome.value, 'result', { maxBytes });
    return outcome;
  } catch (error) {
    return { kind: 'error', error };
  }
}

function reasonText(reason: AbortReason): string {
  return { forced: 'the task was force-ended', timeout: 'the task timed out', shutdown: 'the worker is shutting down', lost: 'the worker lost its lease' }[reason];
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(typeof value === 'string' ? value : JSON.stringify(value));
}

/** Completion writes are retried briefly: a run's outcome is worth a few attempts before the lease decides. */
async function withRetries<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= attempts) throw error;
      await new Promise((r) => setTimeout(r, 100 * 2 ** i));
    }
  }
}
