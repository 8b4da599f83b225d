import type { TaskEventFilter, TaskEventRef } from './TaskEventFilter.js';
import type { TaskEventStream } from './TaskEventStream.js';

export type StreamEndReason = 'SUBSCRIBER_TOO_SLOW' | 'SHUTTING_DOWN' | 'UNAUTHENTICATED' | 'CURSOR_EXPIRED';

/** What keeps a subscription allowed: its credential. `signal` aborts when it is revoked or expires. */
export interface SubscriptionLease {
  signal: AbortSignal;
  release(): void;
}

/**
 * The last item of a subscription that the server ends; `lastCursor` is where to resume: every event up
 * to it that the filter matches has been handed out, so it is as far as the subscription has examined the
 * stream, usually past its last matching event (see TaskEventSubscription.lastCursor).
 */
export interface StreamEnd {
  end: StreamEndReason;
  lastCursor: string | null;
  /** CURSOR_EXPIRED: events up to here were pruned while the subscription replayed them. */
  oldestCursor?: string;
}

/**
 * A feed's item without an event (taskEventFeed, `progressMs`): every event up to `progress` that the
 * filter matches has been handed out, so a client that keeps it resumes from there, past events the
 * filter passed over, instead of from its last matching event, which history retention may have pruned.
 */
export interface StreamProgress {
  progress: string;
}

export type StreamItem = TaskEventRef | StreamEnd | StreamProgress;

/** The ids that had committed when a starting stream read where to start, up to `newest` (see TaskEventStream.subscribe). */
export interface StreamOpening {
  newest: bigint;
  committed: ReadonlySet<bigint>;
}

export function isStreamEnd(item: StreamItem): item is StreamEnd {
  return 'end' in item;
}

export function isStreamProgress(item: StreamItem): item is StreamProgress {
  return 'progress' in item;
}

export function isTaskEvent(item: StreamItem): item is TaskEventRef {
  return 'id' in item;
}

type Phase = 'replay' | 'live' | 'ending' | 'done';

/** A live event waiting for the consumer; `through`: the events after it up to here did not match. */
interface Waiting {
  event: TaskEventRef;
  through: bigint;
}

const REPLAY_PAGE = 500;

/**
 * One subscriber's view of the TaskEventStream, as the async iterator GraphQL consumes.
 *
 * Resuming (`after` given): stored events after the cursor are read page by page, each page only up
 * to the stream's floor (where every id is final), as the consumer pulls them; when the replay has
 * reached the floor, the subscription joins the live stream in the same synchronous step, so the
 * first live event is the first id above the floor: no gap, no duplicate, however much is committed
 * meanwhile. Nothing is buffered during the replay, so a long history costs one page of memory.
 *
 * Live: events wait in a buffer of `bufferSize`; a consumer that falls further behind (a stalled
 * socket) is cut off with SUBSCRIBER_TOO_SLOW and the cursor of the last event it was given, instead
 * of slowing the stream or anyone else down.
 */
export class TaskEventSubscription implements AsyncIterableIterator<StreamItem> {
  private phase: Phase = 'replay';
  private page: TaskEventRef[] = [];
  /** Replay: events up to here have been read. Live: only ids above it are delivered. */
  private position: bigint;
  /**
   * Where to resume: every event up to here that the filter matches has been handed to the consumer.
   * It moves with each event handed out and, past it, with the events examined and not matched (read by
   * a replay page, offered live): for a narrow filter, the last matching event may be long gone to
   * history retention while nothing matching was missed, and resuming from it would be CURSOR_EXPIRED.
   * Events dropped from the buffer (SUBSCRIBER_TOO_SLOW) and those examined after them are not covered.
   */
  private lastCursor: bigint;
  private readonly buffer: Waiting[] = [];
  private waiter?: (result: IteratorResult<StreamItem>) => void;
  /** Why the server ends it; the end message's cursor is taken when it is handed out (see finish). */
  private endReason?: StreamEndReason;
  /** CURSOR_EXPIRED: the tenant's events were pruned through here. */
  private prunedThrough?: bigint;
  private removed = false;
  private lease?: SubscriptionLease;
  /** Progress items (see reportProgress): at most one per this many ms, only when lastCursor has moved. */
  private progressMs?: number;
  /** The cursor of the last item handed out: an event's id, or a progress item's cursor. */
  private sentCursor: bigint;
  /**
   * When the last item was handed out (or the subscription began), in performance.now() milliseconds:
   * a monotonic clock, so a wall clock stepped back (NTP, a resumed VM) does not hold progress items
   * back by as much as it stepped.
   */
  private sentAt = performance.now();
  private progressTimer?: NodeJS.Timeout;

  /**
   * `opening`: subscribed without `after` while the stream was starting, so live from a floor below
   * ids that had already committed; those are skipped (history, not "from now on").
   */
  constructor(
    private readonly stream: TaskEventStream,
    readonly filter: TaskEventFilter,
    after: bigint | undefined,
    private readonly bufferSize: number,
    lease?: SubscriptionLease,
    private opening?: StreamOpening,
  ) {
    this.position = after ?? stream.floor;
    this.lastCursor = this.position;
    this.sentCursor = this.position;
    this.hold(lease);
    if (after === undefined && this.phase === 'replay') this.goLive();
  }

  /** From now on the subscription ends (UNAUTHENTICATED) when `lease` does, and releases it when it ends. */
  hold(lease: SubscriptionLease | undefined): void {
    if (!lease) return;
    this.lease = lease;
    if (this.removed) {
      lease.release();
      return;
    }
    if (lease.signal.aborted) this.finish('UNAUTHENTICATED');
    else lease.signal.addEventListener('abort', this.onLeaseEnd, { once: true });
  }

  private readonly onLeaseEnd = () => this.finish('UNAUTHENTICATED');

  /**
   * From now on, while no matching event comes for `ms` and the subscription has examined events past
   * the last item it handed out (events the filter passed over, read in a replay or offered live), it
   * hands out a StreamProgress with lastCursor. An idle stream costs nothing: the timer is armed only
   * while the consumer waits and there is progress to report.
   */
  reportProgress(ms: number): void {
    this.progressMs = ms;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<StreamItem>> {
    while (this.phase === 'replay') {
      const replayed = this.page.shift();
      // The page covers the ids up to `position`: its last event handed out, the consumer has all of them.
      if (replayed) return this.deliver({ event: replayed, through: this.page.length === 0 ? this.position : replayed.id });
      if (this.position > this.lastCursor) this.lastCursor = this.position;
      // A long replay of events the filter passes over: its progress, as a live stream would report it.
      if (this.progressDue()) return this.progress();
      const upTo = this.stream.floor;
      if (this.position >= upTo) {
        this.goLive();
        break;
      }
      const page = await this.stream.replay(this.filter, this.position, upTo, REPLAY_PAGE);
      if (this.phase !== 'replay') break;
      // Read after the page: a pruning that took events from it committed before the page was read, so it
      // shows here. The subscription checked this once when it began; history retention may run while it
      // replays. Everything up to lastCursor (here: `position` before this page) was read and handed out.
      const pruned = await this.stream.prunedThrough(this.filter.tenantId);
      if (this.phase !== 'replay') break;
      if (pruned != null && pruned > this.lastCursor) {
        this.prunedThrough = pruned;
        this.finish('CURSOR_EXPIRED');
        break;
      }
      this.page = page;
      this.position = page.length === REPLAY_PAGE ? page[page.length - 1]!.id : upTo;
    }
    const buffered = this.buffer.shift();
    if (buffered) return this.deliver(buffered);
    if (this.phase === 'ending') {
      this.phase = 'done';
      return { value: this.endMessage(), done: false };
    }
    if (this.phase === 'done') {
      this.remove();
      return { value: undefined, done: true };
    }
    if (this.progressDue()) return this.progress();
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.armProgress();
    });
  }

  private progressDue(): boolean {
    return this.progressMs !== undefined && this.lastCursor > this.sentCursor && performance.now() - this.sentAt >= this.progressMs;
  }

  private progress(): IteratorResult<StreamItem> {
    this.sentCursor = this.lastCursor;
    this.sentAt = performance.now();
    return { value: { progress: this.lastCursor.toString() }, done: false };
  }

  /** While the consumer waits with progress to report: a timer that hands it out once it is due. */
  private armProgress(): void {
    if (this.progressMs === undefined || this.progressTimer || !this.waiter || this.lastCursor <= this.sentCursor) return;
    this.progressTimer = setTimeout(
      () => {
        this.progressTimer = undefined;
        if (this.waiter && this.progressDue()) this.wake(this.progress());
        else this.armProgress();
      },
      Math.max(0, Math.ceil(this.sentAt + this.progressMs - performance.now())),
    );
  }

  /** The consumer has gone (client unsubscribed, socket or request closed). */
  async return(): Promise<IteratorResult<StreamItem>> {
    this.phase = 'done';
    clearTimeout(this.progressTimer);
    this.buffer.length = 0;
    this.page = [];
    this.remove();
    this.wake({ value: undefined, done: true });
    return { value: undefined, done: true };
  }

  /** Called by the stream for every event above its floor, in id order, while live. */
  offer(event: TaskEventRef): void {
    if (event.id <= this.position) return;
    if (this.opening && event.id > this.opening.newest) this.opening = undefined;
    if (this.opening?.committed.has(event.id) || !this.filter.matches(event)) {
      // Examined: once what waits before it is handed out, the consumer has every match up to here.
      const last = this.buffer.at(-1);
      if (last) last.through = event.id;
      else {
        this.lastCursor = event.id;
        this.armProgress();
      }
      return;
    }
    if (this.waiter) {
      this.wake(this.deliver({ event, through: event.id }));
    } else if (this.buffer.length < this.bufferSize) {
      this.buffer.push({ event, through: event.id });
    } else {
      this.buffer.length = 0;
      this.finish('SUBSCRIBER_TOO_SLOW');
    }
  }

  /**
   * Ends the subscription: the consumer gets whatever is buffered, then a StreamEnd, then done. The
   * StreamEnd's `lastCursor` is taken when it is handed out, buffered events included (see lastCursor):
   * a client resuming from it gets each event once (it used to be the cursor when finish ran, before the
   * buffer was handed out, so those events came again on resuming).
   */
  finish(reason: StreamEndReason): void {
    if (this.phase === 'ending' || this.phase === 'done') return;
    this.stream.leaveLive(this);
    this.page = [];
    this.endReason = reason;
    this.phase = 'ending';
    if (this.waiter) {
      this.phase = 'done';
      this.wake({ value: this.endMessage(), done: false });
    }
  }

  private endMessage(): StreamEnd {
    return {
      end: this.endReason!,
      lastCursor: this.lastCursor.toString(),
      ...(this.prunedThrough !== undefined && { oldestCursor: this.prunedThrough.toString() }),
    };
  }

  private goLive(): void {
    if (this.stream.isClosed) {
      this.finish('SHUTTING_DOWN');
      return;
    }
    this.phase = 'live';
    this.stream.goLive(this);
  }

  private deliver({ event, through }: Waiting): IteratorResult<StreamItem> {
    this.lastCursor = through;
    this.sentCursor = event.id;
    this.sentAt = performance.now();
    return { value: event, done: false };
  }

  private wake(result: IteratorResult<StreamItem>): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    waiter?.(result);
  }

  private remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.lease?.signal.removeEventListener('abort', this.onLeaseEnd);
    this.lease?.release();
    this.stream.remove(this);
  }
}
