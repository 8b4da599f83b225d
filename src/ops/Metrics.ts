import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '../db/Database.js';
import type { TaskEventStream } from '../events/TaskEventStream.js';
import type { Logger } from '../logger.js';
import type { Scheduler } from '../scheduler/Scheduler.js';
import type { SchedulerObserver } from '../scheduler/SchedulerObserver.js';
import { MAX_LABEL_LENGTH } from '../tasks/validate.js';
import { countCreatedTasks, newestEventId, readQueueGauges } from './sql.js';

/** What the metrics read at scrape time. */
export interface MetricsSource {
  db: Database;
  scheduler: Scheduler;
  taskEvents: TaskEventStream;
  logger: Logger;
  /** GraphQL requests over HTTP holding an admission slot, and waiting for one (src/ops/AdmissionControl.ts). */
  httpRequests(): { active: number; queued: number };
}

/**
 * A task's queue as a label value. The API takes queue names of at most MAX_LABEL_LENGTH characters; a
 * longer one (stored before that limit, or written around the API) is cut there and marked with "…", so
 * that one such row cannot make every scrape megabytes long (a counter keeps each label value until the
 * instance restarts).
 */
export function queueLabel(queue: string): string {
  return queue.length <= MAX_LABEL_LENGTH ? queue : `${queue.slice(0, MAX_LABEL_LENGTH)}…`;
}

/**
 * Distinct queues an instance gives label values of their own. Any EDITOR can name queues, and a counter
 * keeps each label value until the instance restarts: past this many, the queues first seen later count
 * under the label value "(other)", so the number of series stays bounded.
 */
export const MAX_QUEUE_LABELS = 200;
export const OTHER_QUEUES = '(other)';

const RUN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const LATENESS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The Prometheus metrics of one instance (prom-client, one registry per instance so that several
 * instances in one process — tests — do not share counters).
 *
 * - The scheduler's counters and histograms are fed by `schedulerObserver` as it claims, recovers and
 *   completes; they count this instance's work, so `sum()` over instances gives the cluster's.
 * - What lives in the database (due backlog, oldest due age, running tasks, created tasks) is read at
 *   scrape time with a few indexed statements, so it is the cluster's view from any instance.
 * - Requests are observed by the HTTP listener and the GraphQL plugin (src/ops/requestListener.ts,
 *   src/ops/useRequestMetrics.ts).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly schedulerObserver: SchedulerObserver;
  private defaultsCollected = false;
  /** Events up to here have been counted into tasks_created. */
  private createdWatermark?: bigint;

  private readonly created = this.counter(
    'chronograph_tasks_created_total',
    'Tasks created in the cluster (any instance, any path) since this instance started; every instance reports the same count, so aggregate with max().',
    ['queue', 'source'],
  );
  private readonly claimed = this.counter('chronograph_tasks_claimed_total', 'Attempts this instance claimed.', ['queue']);
  private readonly completed = this.counter(
    'chronograph_tasks_completed_total',
    'Attempts this instance finished, by run status (SUCCEEDED, FAILED, TIMED_OUT, CANCELLED).',
    ['queue', 'status'],
  );
  private readonly recovered = this.counter(
    'chronograph_leases_recovered_total',
    "Attempts this instance ended because their worker's lease expired (the task retries after its backoff, or fails on its last attempt).",
    ['queue'],
  );
  private readonly runDuration = new Histogram({
    name: 'chronograph_task_run_duration_seconds',
    help: 'How long finished attempts ran on this instance.',
    labelNames: ['queue', 'status'],
    buckets: RUN_BUCKETS,
    registers: [this.registry],
  });
  private readonly lateness = new Histogram({
    name: 'chronograph_task_lateness_seconds',
    help: "Delay between a task's due time and its claim, by the database clock.",
    labelNames: ['queue'],
    buckets: LATENESS_BUCKETS,
    registers: [this.registry],
  });
  private readonly due = this.gauge('chronograph_tasks_due', 'Tasks due now and waiting to be claimed (cluster).', ['queue']);
  private readonly oldestDue = this.gauge(
    'chronograph_tasks_oldest_due_age_seconds',
    'Age of the oldest task waiting to be claimed (cluster).',
    ['queue'],
  );
  private readonly running = this.gauge('chronograph_tasks_running', 'Tasks RUNNING on any instance (cluster).', ['queue']);
  private readonly runningHere = this.gauge('chronograph_scheduler_running_handlers', 'Handlers running in this instance right now.', []);
  private readonly databaseUp = this.gauge('chronograph_database_up', '1 when the last scrape could read the database, else 0.', []);
  private readonly streamLag = this.gauge(
    'chronograph_event_stream_lag_events',
    "TaskEvents committed but not yet delivered to this instance's subscribers (0 while nobody subscribes).",
    [],
  );
  private readonly subscriptions = this.gauge(
    'chronograph_subscriptions',
    'Open taskStatusChanged and taskEventFeed subscriptions on this instance (live ones have caught up; the others are replaying).',
    ['state'],
  );
  private readonly httpDuration = new Histogram({
    name: 'chronograph_http_request_duration_seconds',
    help: 'HTTP requests by route, method and status code.',
    labelNames: ['route', 'method', 'status'],
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  private readonly graphqlDuration = new Histogram({
    name: 'chronograph_graphql_operation_duration_seconds',
    help: 'Execution time of GraphQL queries and mutations.',
    labelNames: ['type', 'transport'],
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  private readonly graphqlErrors = this.counter(
    'chronograph_graphql_errors_total',
    'GraphQL errors returned, by extensions.code (none when uncoded).',
    ['code', 'transport'],
  );

  private readonly httpRequests = this.gauge(
    'chronograph_http_requests',
    'GraphQL requests over HTTP on this instance: being worked on (active, at most MAX_CONCURRENT_REQUESTS) and waiting for a slot (queued).',
    ['state'],
  );
  private readonly overload = this.counter(
    'chronograph_http_overload_total',
    'Requests shed from the admission queue (503 SERVER_BUSY) and stalled answers dropped over MAX_UNSENT_BYTES.',
    ['action'],
  );

  constructor(private readonly source: MetricsSource) {
    this.schedulerObserver = {
      claimed: (tasks) => {
        for (const task of tasks) {
          this.claimed.inc({ queue: this.queue(task.queue) });
          const late = (new Date(task.claimedAt).getTime() - new Date(task.nextRunAt).getTime()) / 1000;
          this.lateness.observe({ queue: this.queue(task.queue) }, Math.max(0, late));
        }
      },
      recovered: (tasks) => {
        for (const task of tasks) this.recovered.inc({ queue: this.queue(task.queue) });
      },
      completed: (task, { runStatus, durationMs }) => {
        const queue = this.queue(task.queue);
        this.completed.inc({ queue, status: runStatus });
        this.runDuration.observe({ queue, status: runStatus }, durationMs / 1000);
      },
    };
  }

  /** Starts counting created tasks from the newest event now, so that the first scrape counts what came since start-up. */
  async start(): Promise<void> {
    this.createdWatermark = await newestEventId(this.source.db.prisma);
  }

  observeHttp(route: string, method: string, status: number, seconds: number): void {
    this.httpDuration.observe({ route, method, status: String(status) }, seconds);
  }

  /** Admission control (src/ops/AdmissionControl.ts): a request shed, or a stalled answer dropped. */
  observeOverload(action: 'shed' | 'evicted'): void {
    this.overload.inc({ action });
  }

  observeGraphql(type: string, transport: 'http' | 'ws', seconds: number): void {
    this.graphqlDuration.observe({ type, transport }, seconds);
  }

  observeGraphqlErrors(codes: readonly (string | undefined)[], transport: 'http' | 'ws'): void {
    for (const code of codes) this.graphqlErrors.inc({ code: code ?? 'none', transport });
  }

  /** The exposition text; database-backed values are read now, and left out (database_up 0) when that fails. */
  async render(): Promise<{ contentType: string; body: string }> {
    if (!this.defaultsCollected) {
      // Process metrics (CPU, memory, event loop lag, GC) from the first scrape on: their observers
      // would otherwise run in every instance created and never scraped, such as tests'.
      collectDefaultMetrics({ register: this.registry });
      this.defaultsCollected = true;
    }
    const { scheduler, taskEvents } = this.source;
    this.runningHere.set(scheduler.runningTaskIds().length);
    const requests = this.source.httpRequests();
    this.httpRequests.set({ state: 'active' }, requests.active);
    this.httpRequests.set({ state: 'queued' }, requests.queued);
    const stream = taskEvents.status();
    this.subscriptions.set({ state: 'live' }, stream.live);
    this.subscriptions.set({ state: 'replaying' }, stream.subscriptions - stream.live);
    await this.readDatabase(stream.listening ? BigInt(stream.floor) : undefined);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Queues given a label value of their own, in the order first seen (see MAX_QUEUE_LABELS). */
  private readonly labelledQueues = new Set<string>();

  private queue(queue: string): string {
    const label = queueLabel(queue);
    if (this.labelledQueues.has(label)) return label;
    if (this.labelledQueues.size >= MAX_QUEUE_LABELS) return OTHER_QUEUES;
    this.labelledQueues.add(label);
    return label;
  }

  private async readDatabase(streamFloor: bigint | undefined): Promise<void> {
    const prisma = this.source.db.prisma;
    try {
      const [queues, newest] = await Promise.all([readQueueGauges(prisma), newestEventId(prisma)]);
      this.due.reset();
      this.oldestDue.reset();
      this.running.reset();
      // Queues whose labels are the same (cut, see queueLabel; or beyond MAX_QUEUE_LABELS) add up; the oldest due age is the largest.
      const byLabel = new Map<string, { due: number; oldest: number; running: number }>();
      for (const q of queues) {
        const label = this.queue(q.queue);
        const sum = byLabel.get(label) ?? { due: 0, oldest: 0, running: 0 };
        byLabel.set(label, {
          due: sum.due + q.due,
          oldest: Math.max(sum.oldest, q.oldestDueSeconds ?? 0),
          running: sum.running + q.running,
        });
      }
      for (const [queue, q] of byLabel) {
        this.due.set({ queue }, q.due);
        this.oldestDue.set({ queue }, q.oldest);
        this.running.set({ queue }, q.running);
      }
      this.streamLag.set(streamFloor === undefined ? 0 : Number(newest > streamFloor ? newest - streamFloor : 0n));
      // Counted from the events table so that every way of creating tasks (API, handlers, date-field
      // hooks, low-code records, overlapping runs) is included, and only once it has committed.
      if (this.createdWatermark !== undefined) {
        for (const row of await countCreatedTasks(prisma, this.createdWatermark, newest)) {
          this.created.inc({ queue: this.queue(row.queue), source: row.source }, row.n);
        }
      }
      this.createdWatermark = newest;
      this.databaseUp.set(1);
    } catch (error) {
      this.source.logger.warn({ err: error }, 'metrics could not read the database');
      for (const gauge of [this.due, this.oldestDue, this.running]) gauge.reset();
      this.databaseUp.set(0);
    }
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
