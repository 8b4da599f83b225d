import type { Database } from '../db/Database.js';
import { ChronographError } from '../errors.js';
import type { Logger } from '../logger.js';
import { TASK_EVENT_CHANNEL } from '../tasks/statusMachine.js';
import { readEventsAfter } from './readEventsAfter.js';
import { readMatchingEvents } from './readMatchingEvents.js';
import { readStreamStart } from './readStreamStart.js';
import type { TaskEventFilter, TaskEventRef } from './TaskEventFilter.js';
import { type SubscriptionLease, TaskEventSubscription } from './TaskEventSubscription.js';

export interface TaskEventStreamOptions {
  /** Events one subscriber may have waiting; one more ends it with SUBSCRIBER_TOO_SLOW. */
  bufferSize: number;
  /** Events read per round; a full round is followed at once by the next. */
  batchSize?: number;
}

/** Where the stream stands; for logs, health checks and tests. */
export interface TaskEventStreamStatus {
  listening: boolean;
  /** Every event id up to here is delivered, or will never exist. */
  floor: string;
  /** Set while delivery waits for transactions that may still commit ids at or below `upTo`. */
  waiting?: { upTo: string; writers: number; settled: boolean };
  /** Subscriptions receiving live events (not counting those still replaying). */
  live: number;
  /** Every open subscription, replaying or live. */
  subscriptions: number;
  /** Since start: subscription executions of an event run, and results of one reused for another subscriber (executeShared). */
  executions: { run: number; reused: number };
}

/** Ids at or below `upTo` not seen yet may belong to one of `writers` (open transactions). */
interface Gap {
  upTo: bigint;
  writers: Set<string>;
  /** All of `writers` were gone after the last read: the next read shows every id that will ever commit. */
  settled: boolean;
  since: number;
  warned?: boolean;
}

/** A starting stream until it has passed every id committed before it started (see start). */
interface Opening {
  /** The newest id committed when the stream started. */
  newest: bigint;
  /** The ids above the start floor that had committed when the stream started: not "from now on". */
  committed: ReadonlySet<bigint>;
  /** Resolves once the stream has passed `newest`; rejects when the instance shuts down first. */
  ready: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

const MIN_POLL_MS = 2;
const MAX_POLL_MS = 250;
const SLOW_GAP_MS = 10_000;
const SHARED_READS = 2048;

/**
 * The live half of `Subscription.taskStatusChanged`: one per instance, shared by all of its
 * subscribers. It LISTENs to the TaskEvent channel (a NOTIFY only says "something committed"; rows
 * are re-read, so payloads stay small and a lost notification costs nothing) and hands each event,
 * in id order, to the subscribers of its tenant. Any instance's commits reach every instance, because
 * each one reads the shared table.
 *
 * Why id order, and how it is kept without losing events: ids come from a sequence when a row is
 * inserted, but transactions commit in their own order, so id 9 may become visible after id 10. A
 * stream that delivered 10 and moved on would never deliver 9, and a client resuming `after: 10`
 * would never read it. Instead the stream keeps a `floor` below which every id is either delivered
 * or certain never to exist, and re-reads `id > floor` on each notification:
 * - it delivers consecutive ids and stops at the first hole;
 * - the same statement lists the transactions holding ROW EXCLUSIVE on task_event (see
 *   readEventsAfter): whoever drew a missing id is one of them, since INSERT locks the table before
 *   it draws the id and keeps the lock until it ends;
 * - once none of those transactions is left, a later read shows every missing id that committed;
 *   ids still missing then were rolled back (or deleted with their task) and are skipped.
 * Holes that commit are closed by the commit's own NOTIFY; holes that roll back send none, so while a
 * hole is open the stream also polls, with backoff. Nothing waits on a clock: an open transaction
 * that wrote an event holds delivery of newer ones until it ends (a slow hole is logged).
 * Alternatives: a commit-ordered key (pg_current_xact_id() stored per row, read below the snapshot
 * xmin) needs a column and waits for every long transaction in the cluster, not only those writing
 * events; a fixed "wait N ms for holes" loses events whenever a transaction outlasts N.
 *
 * Because every id at or below the floor is final, a resuming subscriber replays stored events up
 * to the floor and then receives live ones above it, with neither gap nor duplicate at the seam
 * (TaskEventSubscription). Per-task order follows from id order: a task's events are written by
 * transactions that serialize on the task's row.
 *
 * The stream runs only while someone subscribes: the first subscriber starts it, the last one
 * leaving stops it (UNLISTEN, timers cleared).
 */
export class TaskEventStream {
  private floorId = 0n;
  private gap?: Gap;
  private listening = false;
  private generation = 0;
  private unlisten?: () => Promise<void>;
  private round?: Promise<void>;
  private again = false;
  private pollTimer?: NodeJS.Timeout;
  private pollDelay = MIN_POLL_MS;
  private opening?: Opening;
  private readonly live = new Map<string, Set<TaskEventSubscription>>();
  private readonly subscriptions = new Set<TaskEventSubscription>();
  private users = 0;
  private started?: Promise<void>;
  private lifecycle: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly batchSize: number;
  private readonly reads = new Map<string, Promise<unknown>>();
  private readonly executions = new Map<string, Promise<unknown>>();
  private readonly executionCounts = { run: 0, reused: 0 };

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
    private readonly options: TaskEventStreamOptions,
  ) {
    this.batchSize = options.batchSize ?? 1000;
  }

  /**
   * A subscription to `filter`'s events: stored ones after `after` first, then live ones; without
   * `after`, those that commit from now on. Resolves once the stream is listening. When `lease`'s
   * signal aborts (its credential was revoked or expired) it ends with UNAUTHENTICATED; the lease is
   * released when the subscription ends. With `progressMs`, it also hands out progress items (see
   * TaskEventSubscription.reportProgress).
   */
  async subscribe(filter: TaskEventFilter, after?: bigint, lease?: SubscriptionLease, progressMs?: number): Promise<TaskEventSubscription> {
    await this.acquire();
    const opening = this.opening;
    if (opening && after === undefined) {
      // The stream has just started below a hole (a transaction that wrote an event may still be open)
      // and is catching up. Live at once, from its floor: an event committing meanwhile commits after
      // this subscription was asked for, so it is "from now on" and is delivered; the ids that had
      // committed when the stream started are history and skipped. (Joining only once the stream had
      // caught up lost such an event: the stream read it while nobody was live yet.)
      const subscription = new TaskEventSubscription(this, filter, undefined, this.options.bufferSize, undefined, opening);
      if (progressMs !== undefined) subscription.reportProgress(progressMs);
      this.subscriptions.add(subscription);
      try {
        await opening.ready;
      } catch (error) {
        await subscription.return();
        throw error;
      }
      subscription.hold(lease);
      return subscription;
    }
    if (opening) {
      // A replay reads stored events up to the floor: it waits until that is past what had committed.
      try {
        await opening.ready;
      } catch (error) {
        this.release();
        throw error;
      }
    }
    const subscription = new TaskEventSubscription(this, filter, after, this.options.bufferSize);
    if (progressMs !== undefined) subscription.reportProgress(progressMs);
    this.subscriptions.add(subscription);
    subscription.hold(lease);
    return subscription;
  }

  status(): TaskEventStreamStatus {
    let live = 0;
    for (const subs of this.live.values()) live += subs.size;
    const gap = this.gap;
    return {
      listening: this.listening,
      floor: this.floorId.toString(),
      ...(gap && { waiting: { upTo: gap.upTo.toString(), writers: gap.writers.size, settled: gap.settled } }),
      live,
      subscriptions: this.subscriptions.size,
      executions: { ...this.executionCounts },
    };
  }

  /** Ends every subscription with SHUTTING_DOWN (each can resume elsewhere) and stops listening. */
  async close(): Promise<void> {
    this.closed = true;
    for (const subscription of this.subscriptions) subscription.finish('SHUTTING_DOWN');
    this.opening?.reject(shuttingDown());
    this.opening = undefined;
    this.started = undefined;
    this.lifecycle = this.lifecycle.then(() => this.stop());
    await this.lifecycle;
  }

  // ---- used by TaskEventSubscription ----

  /** Every event id up to here is delivered or will never exist; replays read up to it. */
  get floor(): bigint {
    return this.floorId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** From now on `subscription` is offered every event above the floor (synchronous: no event can slip between). */
  goLive(subscription: TaskEventSubscription): void {
    const tenantId = subscription.filter.tenantId;
    let subs = this.live.get(tenantId);
    if (!subs) this.live.set(tenantId, (subs = new Set()));
    subs.add(subscription);
  }

  /** Stops offering events to `subscription`. */
  leaveLive(subscription: TaskEventSubscription): void {
    const subs = this.live.get(subscription.filter.tenantId);
    subs?.delete(subscription);
    if (subs?.size === 0) this.live.delete(subscription.filter.tenantId);
  }

  /** `subscription` has ended; the stream stops when nobody is left. */
  remove(subscription: TaskEventSubscription): void {
    this.leaveLive(subscription);
    if (this.subscriptions.delete(subscription)) this.release();
  }

  /**
   * Reads an event for delivery once per selection, however many subscribers receive it: the
   * subscribers of one event resolve the same row, so a thousand of them cost one query, not a
   * thousand. Recent reads are kept (LRU) for subscribers that resolve it a little later.
   */
  readShared<T>(id: bigint, selection: unknown, read: () => Promise<T>): Promise<T> {
    const key = `${id}:${JSON.stringify(selection)}`;
    let result = this.reads.get(key) as Promise<T> | undefined;
    if (!result) {
      // Shared by every subscriber of the event: `read` must not use the handles of the request that
      // started it (a subscriber disconnecting must not cancel the others' read).
      result = read();
      this.reads.set(key, result);
      result.catch(() => this.reads.delete(key));
      if (this.reads.size > SHARED_READS) this.reads.delete(this.reads.keys().next().value!);
    }
    return result;
  }

  /**
   * Executes a subscription document over event `id` once per execution key (see
   * useSharedSubscriptions), however many subscribers it goes to; recent results are kept (LRU) for
   * subscribers that get to the event a little later. A result with errors is not kept: whoever asks
   * after it has been answered executes again.
   */
  executeShared<T extends { errors?: readonly unknown[] }>(id: bigint, key: string, execute: () => Promise<T> | T): Promise<T> {
    const cacheKey = `${id}\n${key}`;
    let result = this.executions.get(cacheKey) as Promise<T> | undefined;
    if (result) {
      this.executionCounts.reused++;
    } else {
      this.executionCounts.run++;
      result = Promise.resolve().then(execute);
      this.executions.set(cacheKey, result);
      const forget = () => {
        if (this.executions.get(cacheKey) === result) this.executions.delete(cacheKey);
      };
      result.then((value) => value.errors?.length && forget(), forget);
      if (this.executions.size > SHARED_READS) this.executions.delete(this.executions.keys().next().value!);
    }
    return result;
  }

  replay(filter: TaskEventFilter, after: bigint, upTo: bigint, limit: number): Promise<TaskEventRef[]> {
    return readMatchingEvents(this.db.prisma, filter, after, upTo, limit);
  }

  /**
   * The highest event id handed out so far, in any tenant (the id sequence's last value: it never goes
   * back, even when the newest events are pruned, and it counts events whose transactions are still
   * open). A cursor above it was never given by this database. Read with pg_sequence_last_value, which
   * needs USAGE on the sequence (as inserting events does), not SELECT. It is null while the sequence
   * has handed nothing out since it was created or reset (setval(seq, max + 1, false) after a restore):
   * then the newest event that exists.
   */
  async newestEventId(): Promise<bigint> {
    const [row] = await this.db.prisma.$queryRaw<{ id: bigint }[]>`
      SELECT COALESCE(pg_sequence_last_value('task_event_id_seq'::regclass), (SELECT max(id) FROM task_event), 0)::bigint AS id`;
    return row ? BigInt(row.id) : 0n;
  }

  /** The tenant's events up to this id were pruned (history retention); null when none were. */
  async prunedThrough(tenantId: string): Promise<bigint | null> {
    const row = await this.db.prisma.tenant.findUnique({ where: { id: tenantId }, select: { eventsPrunedThrough: true } });
    return row?.eventsPrunedThrough ?? null;
  }

  // ---- lifecycle: start with the first subscriber, stop after the last ----

  private async acquire(): Promise<void> {
    if (this.closed) throw shuttingDown();
    this.users++;
    if (!this.started) {
      const started = this.lifecycle.then(() => this.start());
      this.started = started;
      this.lifecycle = started.catch(() => {});
    }
    try {
      await this.started;
    } catch (error) {
      this.release();
      throw error;
    }
  }

  private release(): void {
    this.users--;
    if (this.users > 0 || !this.started) return;
    this.started = undefined;
    this.lifecycle = this.lifecycle.then(() => this.stop());
  }

  private async start(): Promise<void> {
    if (this.closed) throw shuttingDown();
    const generation = ++this.generation;
    // LISTEN before reading where to start: whatever commits after the read is then announced.
    this.unlisten = await this.db.listen(TASK_EVENT_CHANNEL, () => {
      if (generation === this.generation) this.requestRound();
    });
    const start = await readStreamStart(this.db.prisma);
    this.floorId = start.floor;
    this.gap = undefined;
    this.pollDelay = MIN_POLL_MS;
    this.listening = true;
    this.logger.debug({ floor: start.floor.toString(), newest: start.newest.toString() }, 'task event stream started');
    // Until the floor has passed every id committed before now, the stream is opening: a subscriber
    // without `after` is live from the floor at once, skipping the ids that had committed (so "live
    // from now" neither replays old events nor misses one that was in flight and commits meanwhile);
    // one with `after` waits, since its replay reads stored events up to the floor. Both are answered
    // once the stream is past them (see subscribe).
    if (start.floor < start.newest) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const ready = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      ready.catch(() => {}); // nobody may be waiting when the stream stops before it was ready
      this.opening = { newest: start.newest, committed: new Set(start.committed), ready, resolve, reject };
    }
    this.requestRound();
  }

  private async stop(): Promise<void> {
    this.generation++;
    this.listening = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.gap = undefined;
    this.opening?.reject(shuttingDown());
    this.opening = undefined;
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch((error: unknown) => this.logger.warn({ err: error }, 'UNLISTEN failed'));
    await this.round;
    this.logger.debug('task event stream stopped');
  }

  /** Ready once past the newest event seen at start, or once nothing committed is left unread (it may have been deleted since). */
  private checkReady(caughtUp = false): void {
    const opening = this.opening;
    if (opening && (caughtUp || this.floorId >= opening.newest)) {
      this.opening = undefined;
      opening.resolve();
    }
  }

  // ---- rounds: read id > floor, deliver in order, settle holes ----

  private requestRound(): void {
    if (!this.listening) return;
    if (this.round) {
      this.again = true;
      return;
    }
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.round = this.runRounds(this.generation).finally(() => {
      this.round = undefined;
    });
  }

  /** Never throws: a failed read is logged and retried by the poll. */
  private async runRounds(generation: number): Promise<void> {
    try {
      let more = true;
      while (more && generation === this.generation) {
        this.again = false;
        const { events, writers } = await readEventsAfter(this.db.sql, this.floorId, this.batchSize);
        if (generation !== this.generation) return;
        const blocked = this.advance(events, new Set(writers));
        this.checkReady(!blocked && events.length < this.batchSize);
        if (blocked) {
          this.schedulePoll();
          more = this.again;
        } else {
          this.pollDelay = MIN_POLL_MS;
          more = this.again || events.length === this.batchSize;
        }
      }
    } catch (error) {
      if (generation !== this.generation) return;
      this.logger.warn({ err: error }, 'reading task events failed; retrying');
      this.schedulePoll();
    }
  }

  private schedulePoll(): void {
    if (this.pollTimer || !this.listening) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.requestRound();
    }, this.pollDelay);
    this.pollDelay = Math.min(this.pollDelay * 2, MAX_POLL_MS);
  }

  /**
   * Delivers `events` (id > floor, ascending) up to the first hole that may still fill; returns true
   * when it stopped at one. `writers` were read in the same statement, after the snapshot.
   */
  private advance(events: TaskEventRef[], writers: Set<string>): boolean {
    // Decided by an earlier read: ids up to here that are still missing never commit.
    const settledUpTo = this.gap?.settled ? this.gap.upTo : undefined;
    for (const event of events) {
      if (event.id !== this.floorId + 1n && !(settledUpTo !== undefined && event.id - 1n <= settledUpTo)) {
        if (settledUpTo !== undefined && settledUpTo > this.floorId) this.floorId = settledUpTo;
        this.observeGap(writers, events[events.length - 1]!.id);
        return true;
      }
      this.floorId = event.id;
      this.publish(event);
    }
    if (settledUpTo !== undefined && events.length < this.batchSize && settledUpTo > this.floorId) this.floorId = settledUpTo;
    if (this.gap && this.floorId >= this.gap.upTo) this.gap = undefined;
    return false;
  }

  private observeGap(writers: Set<string>, newestSeen: bigint): void {
    const gap = this.gap;
    if (gap && this.floorId < gap.upTo) {
      // Still the hole first seen earlier: it settles once none of its writers is left.
      if (!gap.settled && ![...gap.writers].some((w) => writers.has(w))) gap.settled = true;
      if (!gap.warned && Date.now() - gap.since > SLOW_GAP_MS) {
        gap.warned = true;
        this.logger.warn(
          { floor: this.floorId.toString(), upTo: gap.upTo.toString(), writers: [...gap.writers] },
          'task event delivery is waiting for a transaction that wrote an event and is still open',
        );
      }
      return;
    }
    // A new hole. Every missing id below the newest one seen was drawn before this read's snapshot,
    // so its transaction is among `writers`; none at all means the next read is final.
    this.gap = { upTo: newestSeen, writers, settled: writers.size === 0, since: Date.now() };
  }

  private publish(event: TaskEventRef): void {
    const subs = this.live.get(event.tenantId);
    if (!subs) return;
    for (const subscription of subs) subscription.offer(event);
  }
}

function shuttingDown(): ChronographError {
  return new ChronographError(
    'SHUTTING_DOWN',
    'This Chronograph instance is shutting down; subscribe again (with after: your last cursor) to resume',
  );
}
