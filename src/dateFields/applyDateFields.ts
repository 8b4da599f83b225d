import { ChronographError, conflict } from '../errors.js';
import type { Task, TaskTemplate } from '../generated/prisma/client.js';
import { MisfirePolicy, type Prisma, RepeatType, TaskEventType, TaskSource, TaskStatus } from '../generated/prisma/client.js';
import { HELD, insertNewTasks, type NewTaskRow, prismaRunner, TaskIds } from '../tasks/bulkInsert.js';
import { transition } from '../tasks/statusMachine.js';
import { wake } from '../tasks/TaskSvc.js';
import { QuotaGuard } from '../tenants/QuotaGuard.js';
import { nextOccurrence } from '../time/schedule.js';
import { matchesCondition, readPath, stableStringify } from './condition.js';
import { finishedDateFieldRuns, lockDateFieldRecords, lockLiveDateFieldTasks, lockWaitingOccurrences } from './dateFieldSql.js';
import { type DateFieldConfig, scheduleFor } from './dateRule.js';

/** A DATE_FIELD template with its parsed configuration. */
export interface PreparedTemplate {
  template: TaskTemplate;
  config: DateFieldConfig;
}

/** One record as the layer sees it: its data after the write, or null when it was deleted. */
export interface RecordChange {
  rowId: string;
  data: Record<string, unknown> | null;
  /** How errors name the record's fields, e.g. `rowObj.postData` or `records[3]`. */
  prefix?: string;
}

export type DateFieldAction = 'CREATED' | 'RESCHEDULED' | 'CANCELLED' | 'UNCHANGED' | 'SKIPPED';

export interface DateFieldChange {
  templateId: string;
  fullName: string;
  rowId: string;
  action: DateFieldAction;
  taskId: string | null;
  reason: string;
}

export interface DateFieldCounts {
  created: number;
  rescheduled: number;
  cancelled: number;
  unchanged: number;
  skipped: number;
}

export interface DateFieldResult extends DateFieldCounts {
  /** One entry per (template, record), when asked for (`collect`). */
  changes: DateFieldChange[];
}

export const emptyResult = (): DateFieldResult => ({ created: 0, rescheduled: 0, cancelled: 0, unchanged: 0, skipped: 0, changes: [] });

export function addCounts(into: DateFieldResult, from: DateFieldCounts & { changes?: DateFieldChange[] }): DateFieldResult {
  into.created += from.created;
  into.rescheduled += from.rescheduled;
  into.cancelled += from.cancelled;
  into.unchanged += from.unchanged;
  into.skipped += from.skipped;
  if (from.changes) into.changes.push(...from.changes);
  return into;
}

export interface ApplyOptions {
  tenantId: string;
  now: Date;
  /** The records are new (ids never seen): skip looking for their existing tasks. Bulk imports. */
  fresh?: boolean;
  /**
   * The caller holds the records' model lock exclusively (a batch of more than RECORD_LOCKS_MAX records,
   * deleteModel): no other writer of the model's records is under way, so no record locks are taken.
   */
  modelLocked?: boolean;
  /** Return one DateFieldChange per (template, record); off for bulk work, where counts are enough. */
  collect?: boolean;
  /** TaskEvent.actor of the changes (the API caller); null for the scheduler's own work. */
  actor?: string | null;
}

/** A date-field task as `plan` decides it: the insert's row (NewTaskRow) before it gets its id. */
export type TaskRow = Omit<NewTaskRow, 'id'> & {
  nextRunAt: Date;
  templateId: string;
  sourceModel: string;
  sourceRowId: string;
  sourceField: string;
};
/** `note`: what DST decided about the first run's wall-clock time, for the change's reason and the task's event. */
type Desired = { kind: 'task'; row: TaskRow; note: string | null } | { kind: 'none'; reason: string; skipped: boolean };

/** Fields a date-field task takes from its template and record; a difference in any of them updates the task. */
const COMPARED = [
  'fullName',
  'taskType',
  'funcName',
  'argDict',
  'repeatType',
  'cronExpression',
  'intervalSeconds',
  'timezone',
  'startTime',
  'endTime',
  'maxRuns',
  'priority',
  'queue',
  'maxAttempts',
  'timeoutMs',
  'memoryLimitMb',
  'misfirePolicy',
  'misfireToleranceMs',
  'overlapPolicy',
  'retryBackoffMs',
  'sourceModel',
  'sourceField',
] as const satisfies readonly (keyof Task & keyof TaskRow)[];

/** What deciding about a live task needs: the compared fields, and what a transition needs. */
const LIVE_FIELDS = [...COMPARED, 'id', 'tenantId', 'status', 'templateId', 'sourceRowId', 'runCount', 'nextRunAt'] as const;
type LiveTask = Pick<Task, (typeof LIVE_FIELDS)[number]>;

const COUNTED_AS: Record<DateFieldAction, keyof DateFieldCounts> = {
  CREATED: 'created',
  RESCHEDULED: 'rescheduled',
  CANCELLED: 'cancelled',
  UNCHANGED: 'unchanged',
  SKIPPED: 'skipped',
};

const RECORDS_PER_CHUNK = 1000;
const INSERT_BATCH = 2000;

/**
 * The model-event layer: makes the date-field tasks of `changes` × `templates` what the records say,
 * inside the caller's transaction. Per (template, record):
 *
 * - a record with a date (matching the condition) has exactly one live task; a new one is created;
 * - a live task whose computed schedule or template-given fields differ is updated in place (same id,
 *   RESCHEDULED event); one that already matches is left alone, so replays are no-ops;
 * - no date, no match, or a deleted record: the live task is CANCELLED (kept in history);
 * - a record date whose task has already finished (SUCCEEDED, FAILED, FORCED_END) is not run again: not
 *   when the record is saved again with that date, and not when the template's offset, timeOfDay or time
 *   zone changes (which moves the first run, not the date). A date that ran fires once; a new date is a
 *   new occurrence.
 *
 * A RUNNING task is left to finish its run; the next hook or reconcile applies any change to it.
 * Everything is computed before the first write, so bad record data throws with nothing written.
 */
export async function applyDateFields(
  tx: Prisma.TransactionClient,
  templates: PreparedTemplate[],
  changes: RecordChange[],
  options: ApplyOptions,
): Promise<DateFieldResult> {
  const result = emptyResult();
  if (templates.length === 0 || changes.length === 0) return result;
  // A record named twice in one batch counts once, as its last version.
  const latest = [...new Map(changes.map((c) => [c.rowId, c])).values()];
  const plans = latest.map((change) => templates.map((t) => ({ change, template: t, desired: plan(t, change, options) })));
  // Locks, in the order every path takes them (LOCK ORDER in DateFieldSvc.ts), all before the first
  // chunk: a batch that took the quota lock in a later chunk, after an earlier chunk's record locks,
  // deadlocked with a hook that holds the quota lock and waits for one of those records.
  // The tenant's quotas hold for tasks created from records too (QuotaGuard); over a limit, the caller's
  // whole transaction rolls back, record write included. Its lock (tenants with count quotas only) is
  // taken when anything may be created.
  const quota = plans.some((row) => row.some((p) => p.desired.kind === 'task')) ? await QuotaGuard.of(tx, options.tenantId) : undefined;
  await quota?.beforeCreate();
  // Then the records' locks, every record of the batch in one statement: hooks of one record take turns.
  // Without them, saves and deletes of one record racing each other could make a hook lose the insert
  // race round after round (a winner's task cancelled by a delete before the loser looks again) and fail
  // with CONFLICT. New records (fresh) have no one to take turns with, nor has a batch that holds the
  // model lock exclusively (modelLocked).
  if (!options.fresh && !options.modelLocked) {
    for (const model of new Set(templates.map((t) => t.config.sourceModel)))
      await lockDateFieldRecords(
        tx,
        options.tenantId,
        model,
        latest.map((c) => c.rowId),
      );
  }
  let woke = false;
  for (let i = 0; i < plans.length; i += RECORDS_PER_CHUNK) {
    const chunk = plans.slice(i, i + RECORDS_PER_CHUNK).flat();
    const outcome = await applyChunk(tx, chunk, quota, options);
    addCounts(result, outcome);
    // A created task wakes the schedulers with its insert (insertNewTasks); a rescheduled one here.
    if (!woke && outcome.rescheduled) {
      await wake(tx);
      woke = true;
    }
  }
  return result;
}

interface Pair {
  change: RecordChange;
  template: PreparedTemplate;
  desired: Desired;
}

async function applyChunk(
  tx: Prisma.TransactionClient,
  pairs: Pair[],
  quota: QuotaGuard | undefined,
  options: ApplyOptions,
): Promise<DateFieldResult> {
  const result = emptyResult();
  const record = (pair: Pair, action: DateFieldAction, taskId: string | null, reason: string) => {
    result[COUNTED_AS[action]] += 1;
    if (options.collect) {
      const { template } = pair.template;
      result.changes.push({ templateId: template.id, fullName: template.fullName, rowId: pair.change.rowId, action, taskId, reason });
    }
  };

  let pending = pairs;
  // Creating can still lose a race to a writer that does not take those locks (an import of the same
  // new ids); the pairs that lost are decided again against the task the winner created.
  for (let round = 0; pending.length > 0; round++) {
    if (round === 3) throw conflict(`Date-field tasks of ${pending.length} record(s) kept changing concurrently; retry`);
    const live = options.fresh && round === 0 ? new Map<string, LiveTask>() : await loadLive(tx, pending, options.tenantId);
    const needHistory = pending.filter((p) => p.desired.kind === 'task' && !live.has(pairKey(p)));
    const finished = options.fresh && round === 0 ? new Set<string>() : await loadFinished(tx, needHistory, options.tenantId);

    const toCreate: { pair: Pair; row: TaskRow; note: string | null }[] = [];
    /** ALLOW-overlap tasks cancelled here, with why: their occurrences that have not started go with them. */
    const cancelledParents = new Map<string, string>();
    for (const pair of pending) {
      const { desired } = pair;
      const task = live.get(pairKey(pair));
      if (task) {
        if (task.status === TaskStatus.RUNNING) {
          record(pair, 'UNCHANGED', task.id, 'running now; the change applies at the next hook or reconcile');
        } else if (desired.kind === 'none') {
          await transition(tx, {
            task,
            to: TaskStatus.CANCELLED,
            data: { nextRunAt: null },
            message: desired.reason,
            actor: options.actor,
          });
          if (task.overlapPolicy === 'ALLOW' && task.repeatType !== RepeatType.ONCE) cancelledParents.set(task.id, desired.reason);
          record(pair, 'CANCELLED', task.id, desired.reason);
        } else {
          const differs = COMPARED.filter((f) => !sameValue(task[f], desired.row[f]));
          if (differs.length === 0) {
            record(pair, 'UNCHANGED', task.id, 'already scheduled as the record says');
          } else {
            const moved = !sameRecordDate(taskRecordDate(task), recordDate(desired.row), dateOnly(pair));
            const reason = await reschedule(tx, task, desired.row, differs, desired.note, moved, options);
            record(pair, 'RESCHEDULED', task.id, reason);
          }
        }
      } else if (desired.kind === 'none') {
        record(pair, desired.skipped ? 'SKIPPED' : 'UNCHANGED', null, desired.reason);
      } else if (finishedKeys(pair, desired.row).some((key) => finished.has(key))) {
        record(pair, 'UNCHANGED', null, `its task for ${pair.template.config.sourceField} ${recordDate(desired.row)} has already finished`);
      } else {
        toCreate.push({ pair, row: desired.row, note: desired.note });
      }
    }

    await cancelWaitingOccurrences(tx, options.tenantId, cancelledParents, options.actor ?? null);

    const lost: Pair[] = [];
    for (const { row } of toCreate) quota!.checkArgDict(row.argDict);
    for (let i = 0; i < toCreate.length; i += INSERT_BATCH) {
      const batch = toCreate.slice(i, i + INSERT_BATCH);
      const ids = new TaskIds(batch.length);
      const rows = batch.map((b) => Object.assign({}, b.row, { id: ids.next() })); // not { ...b.row, id }: slow on Node 20 (recurrence.ts)
      // The CREATED event says where the task comes from, and what DST decided about its first run, if anything.
      const messages = new Map(
        batch.map(({ row, note }, k) => [
          rows[k]!.id,
          `created from ${row.sourceModel} ${row.sourceRowId} (${row.sourceField})${note ? `; ${note}` : ''}`,
        ]),
      );
      // With their CREATED events. ON CONFLICT DO NOTHING: a row whose (template, record) a concurrent
      // hook's task already holds (task_date_field_live_key) is skipped, after waiting for that
      // transaction, and gets no event; it is planned again with that task in the next round.
      const { skipped } = await insertNewTasks(prismaRunner(tx), rows, messages, options.actor ?? null, HELD);
      const inserted = rows.filter((row) => !skipped.has(row.id));
      await quota!.created(inserted.length);
      const byPair = new Map(inserted.map((t) => [`${t.templateId}\u0000${t.sourceRowId}`, t.id]));
      for (const { pair, row, note } of batch) {
        const id = byPair.get(pairKey(pair));
        if (id) record(pair, 'CREATED', id, `first run ${row.startTime.toISOString()}${note ? `; ${note}` : ''}`);
        else lost.push(pair);
      }
    }
    pending = lost;
  }
  return result;
}

async function loadLive(tx: Prisma.TransactionClient, pairs: Pair[], tenantId: string): Promise<Map<string, LiveTask>> {
  if (pairs.length === 0) return new Map();
  const templateIds = [...new Set(pairs.map((p) => p.template.template.id))];
  const rowIds = [...new Set(pairs.map((p) => p.change.rowId))];
  const tasks = (await lockLiveDateFieldTasks(tx, tenantId, templateIds, rowIds, LIVE_FIELDS)) as LiveTask[];
  return new Map(tasks.map((t) => [`${t.templateId}\u0000${t.sourceRowId}`, t]));
}

async function loadFinished(tx: Prisma.TransactionClient, pairs: Pair[], tenantId: string): Promise<Set<string>> {
  const keys = new Set<string>();
  const byModel = new Map<string, Pair[]>();
  for (const p of pairs) byModel.set(p.template.config.sourceModel, [...(byModel.get(p.template.config.sourceModel) ?? []), p]);
  for (const [model, group] of byModel) {
    const templateIds = [...new Set(group.map((p) => p.template.template.id))];
    const rowIds = [...new Set(group.map((p) => p.change.rowId))];
    for (const run of await finishedDateFieldRuns(tx, tenantId, model, templateIds, rowIds)) {
      const pair = `${run.templateId}\u0000${run.rowId}\u0000`;
      // A task without a record date (none should be) is matched by its first run, as before.
      for (const key of run.date === null ? [`start:${run.startTime.getTime()}`] : dateKeys(run.date)) keys.add(pair + key);
    }
  }
  return keys;
}

/** The record's date of a planned task (argDict.source.date, ISO 8601 in its zone). */
function recordDate(row: TaskRow): string {
  return (row.argDict as { source: { date: string } }).source.date;
}

/** The record date a live task was planned for (argDict.source.date); null for a task without one. */
function taskRecordDate(task: LiveTask): string | null {
  const date = (task.argDict as { source?: { date?: unknown } } | null)?.source?.date;
  return typeof date === 'string' ? date : null;
}

/**
 * Whether the pair's record holds a date without a time (`2030-03-10`, as a low-code DATE field stores
 * it): only such a value is the same date when it is read in another zone (the template's time zone or
 * the record's zone field changed), its instant moving with the zone.
 */
function dateOnly(pair: Pair): boolean {
  const value = pair.change.data ? readPath(pair.change.data, pair.template.config.sourceField) : undefined;
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value.trim());
}

/** The wall-clock part of an ISO 8601 date (its offset removed). */
function localPart(iso: string): string {
  return /^(.*?)(?:Z|[+-]\d\d:?\d\d)$/.exec(iso)?.[1] ?? iso;
}

/**
 * A record date is the same date when it is the same instant or, for a date-only record value (such as
 * 2030-03-10, read in another zone after a time-zone change), the same wall-clock date and time. For a
 * value with a time, the same wall-clock time is not enough: 01:30 EDT and 01:30 EST (the repeated hour
 * of a fall-back), or 09:00 in another zone, are other instants, other dates.
 */
function sameRecordDate(a: string | null, b: string, isDateOnly: boolean): boolean {
  if (a === null) return false;
  const at = Date.parse(a);
  if (!Number.isNaN(at) && at === Date.parse(b)) return true;
  return isDateOnly && localPart(a) === localPart(b);
}

/**
 * The keys under which a finished task of a record date is stored (loadFinished): its instant, and its
 * wall-clock date and time for a date that may have been date-only (midnight); a pair looks up the
 * wall-clock key only when its own record value is date-only (finishedKeys), as sameRecordDate says.
 */
function dateKeys(iso: string): string[] {
  const at = Date.parse(iso);
  const local = localPart(iso);
  return [...(Number.isNaN(at) ? [] : [`at:${at}`]), ...(/T00:00(?::00(?:\.0+)?)?$/.test(local) ? [`local:${local}`] : [])];
}

/** The keys under which a finished task of this pair's record date would be found (loadFinished). */
function finishedKeys(pair: Pair, row: TaskRow): string[] {
  const prefix = `${pair.template.template.id}\u0000${pair.change.rowId}\u0000`;
  const keys = dateKeys(recordDate(row)).filter((key) => dateOnly(pair) || !key.startsWith('local:'));
  return [...keys, `start:${row.startTime.getTime()}`].map((key) => prefix + key);
}

/** Fields that make up a task's schedule after its first run. */
const SCHEDULE = new Set<string>(['repeatType', 'cronExpression', 'intervalSeconds', 'timezone', 'endTime', 'maxRuns']);

/**
 * Updates a live task (not RUNNING) to the record's current schedule: same id, a RESCHEDULED event.
 *
 * - A new record date (sameRecordDate: another instant, or another wall-clock date for a date-only value)
 *   starts a new series, as a new schedule does in updateTask: its next run is the new first run, earlier
 *   runs no longer count, and a retry pending for the old occurrence is dropped (attempts 0, no last
 *   error, no occurrence being retried, no abandoned last run; RETRYING becomes SCHEDULED, PAUSED stays
 *   PAUSED).
 * - The same date with a new first run (the template's offset, time of day or zone moved it), as the
 *   finished-date check sees it (a date fires once): a task that has not run yet first runs at the new
 *   time; one that has runs next at the new schedule's first occurrence from now; a RETRYING one keeps
 *   retrying its occurrence, attempts and all.
 * - A new repeat (cron expression, interval, zone, end, maxRuns) with the same first run: a task that
 *   has not run yet still first runs at its start time; one that has runs next at the new schedule's
 *   first occurrence from now (none left: a waiting task has SUCCEEDED, a paused one keeps its time). A
 *   RETRYING task finishes retrying its occurrence first; the new schedule applies after it.
 */
async function reschedule(
  tx: Prisma.TransactionClient,
  task: LiveTask,
  row: TaskRow,
  differs: string[],
  note: string | null,
  /** The record's date itself changed (not only the template's offset, time of day or zone): sameRecordDate. */
  dateMoved: boolean,
  options: ApplyOptions,
): Promise<string> {
  const data: Prisma.TaskUncheckedUpdateManyInput = {};
  for (const field of COMPARED) (data as Record<string, unknown>)[field] = row[field];
  let to: TaskStatus = task.status;
  let reason: string;
  const firstRunMoved = differs.includes('startTime');
  if (firstRunMoved && dateMoved) {
    // A new occurrence: nothing of the old one's runs counts, an abandoned last run included (left set,
    // the new date's run was recorded as a recovery and skipMisfiredTasks passed the task over).
    Object.assign(data, {
      nextRunAt: row.nextRunAt,
      runCount: 0,
      attempts: 0,
      lastError: null,
      occurrenceAt: null,
      lastRunAbandoned: false,
    });
    if (task.status === TaskStatus.RETRYING) to = TaskStatus.SCHEDULED;
    reason = `${task.sourceField} changed: first run moved to ${row.startTime.toISOString()}${note ? `; ${note}` : ''}`;
  } else if (firstRunMoved && task.runCount === 0 && task.status !== TaskStatus.RETRYING) {
    // The template's timing moved the first run of the same date, which has not run yet: it runs then.
    data.nextRunAt = row.nextRunAt;
    reason = `template changed (${differs.join(', ')}): first run moved to ${row.startTime.toISOString()}${note ? `; ${note}` : ''}`;
  } else {
    // The same date (the template's timing or repeat changed): a RETRYING task finishes retrying its
    // occurrence, with its attempts; one that has run follows the new schedule from now.
    reason = `template changed (${differs.join(', ')})`;
    if ((firstRunMoved || differs.some((f) => SCHEDULE.has(f))) && task.runCount > 0 && task.status !== TaskStatus.RETRYING) {
      const now = options.now;
      const exhausted = row.maxRuns != null && task.runCount >= row.maxRuns;
      // At or after now, on the new schedule's grid from the first run (an INTERVAL's anchor).
      let next = exhausted ? null : nextOccurrence(row, new Date(now.getTime() - 1), row.startTime);
      if (next && row.endTime && next > row.endTime) next = null;
      if (next) {
        data.nextRunAt = next;
        reason += `; next run ${next.toISOString()}`;
      } else if (task.status === TaskStatus.SCHEDULED) {
        data.nextRunAt = null;
        to = TaskStatus.SUCCEEDED;
        reason += '; its new schedule has no further run';
      }
    }
  }
  // applyDateFields wakes the schedulers (once) when it has rescheduled a task.
  const type = to === TaskStatus.SUCCEEDED ? undefined : TaskEventType.RESCHEDULED;
  await transition(tx, { task, to, type, data, message: reason, actor: options.actor ?? null });
  return reason;
}

/** What the task of one (template, record) should be, or why there is none. Pure: it writes nothing. */
function plan({ template, config }: PreparedTemplate, change: RecordChange, options: ApplyOptions): Desired {
  if (!template.enabled) return { kind: 'none', reason: `template ${template.fullName} is disabled`, skipped: false };
  if (change.data === null) return { kind: 'none', reason: 'record deleted', skipped: false };
  const prefix = change.prefix ?? 'record';
  const schedule = scheduleFor(config, template.timezone, change.data, prefix);
  if (!schedule) return { kind: 'none', reason: `${config.sourceField} is empty`, skipped: false };
  if (!matchesCondition(config.dateRule.condition, change.data))
    return { kind: 'none', reason: 'record does not match the condition', skipped: false };
  if (!template.funcName)
    throw new ChronographError('CONFLICT', `Task template ${template.fullName} names no handler (funcName)`, { field: 'funcName' });

  const repeatType = template.cronExpression ? RepeatType.CRON : template.intervalSeconds ? RepeatType.INTERVAL : RepeatType.ONCE;
  const { startTime, endTime } = schedule;
  const now = options.now.getTime();
  if (endTime && (endTime <= startTime || endTime.getTime() <= now)) {
    return { kind: 'none', reason: `its schedule ends ${endTime.toISOString()}, before it could run`, skipped: true };
  }
  // A first run already in the past follows the template's misfire policy, as the scheduler does for
  // any late task: RUN_ONCE and RUN_ALL keep the past time, so the scheduler runs it at once (and a
  // repeating task catches up as its policy says); SKIP beyond the tolerance has nothing to run for a
  // one-off task, so none is created (creating one only for the scheduler to cancel it would recreate
  // it at every save). A repeating SKIP task is created and the scheduler moves it to its next occurrence.
  if (
    repeatType === RepeatType.ONCE &&
    template.misfirePolicy === MisfirePolicy.SKIP &&
    startTime.getTime() < now - template.misfireToleranceMs
  ) {
    return { kind: 'none', reason: `its time ${startTime.toISOString()} has passed (misfire policy SKIP)`, skipped: true };
  }
  const row: TaskRow = {
    tenantId: template.tenantId,
    templateId: template.id,
    fullName: template.fullName,
    taskType: template.taskType,
    funcName: template.funcName,
    argDict: {
      ...(template.argDict as Record<string, unknown>),
      source: { model: config.sourceModel, id: change.rowId, field: config.sourceField, date: schedule.date },
    },
    repeatType,
    cronExpression: template.cronExpression,
    intervalSeconds: repeatType === RepeatType.INTERVAL ? template.intervalSeconds : null,
    timezone: schedule.timezone,
    startTime,
    endTime: repeatType === RepeatType.ONCE ? null : endTime,
    maxRuns: repeatType === RepeatType.ONCE ? null : config.dateRule.maxRuns,
    nextRunAt: startTime,
    status: TaskStatus.SCHEDULED,
    priority: template.priority,
    queue: template.queue,
    maxAttempts: template.maxAttempts,
    timeoutMs: template.timeoutMs,
    memoryLimitMb: template.memoryLimitMb,
    misfirePolicy: template.misfirePolicy,
    misfireToleranceMs: template.misfireToleranceMs,
    overlapPolicy: template.overlapPolicy,
    retryBackoffMs: template.retryBackoffMs,
    source: TaskSource.DATE_FIELD,
    sourceModel: config.sourceModel,
    sourceRowId: change.rowId,
    sourceField: config.sourceField,
    uniqueKey: null,
    parentId: null,
    bindingId: null,
  };
  return { kind: 'task', row, note: schedule.note };
}

function pairKey(pair: Pair): string {
  return `${pair.template.template.id}\u0000${pair.change.rowId}`;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (typeof a === 'object' || typeof b === 'object') return stableStringify(a ?? null) === stableStringify(b ?? null);
  return (a ?? null) === (b ?? null);
}

/**
 * Cancels the occurrences (an ALLOW-overlap task's children) of these cancelled parents that have not
 * started, each with its event; `why` gives each parent's reason. A running occurrence finishes its run.
 */
export async function cancelWaitingOccurrences(
  tx: Prisma.TransactionClient,
  tenantId: string,
  why: ReadonlyMap<string, string>,
  actor: string | null,
): Promise<void> {
  for (const occurrence of await lockWaitingOccurrences(tx, tenantId, [...why.keys()])) {
    await transition(tx, {
      task: occurrence,
      to: TaskStatus.CANCELLED,
      data: { nextRunAt: null },
      message: `${why.get(occurrence.parentId)} (an occurrence of ${occurrence.parentId})`,
      actor,
    });
  }
}
