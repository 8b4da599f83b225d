import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  followStatusChanges,
  type GraphQLRequestError,
  getKey,
  gql,
  STATUS_EVENT,
  type StatusEvent,
  setKey,
  TASK_ROW,
  type TaskRow,
} from './api.js';
import './style.css';

const STATUSES = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'FORCED_END'] as const;
const SOURCES = ['API', 'TEMPLATE', 'DATE_FIELD'] as const;
const PAGE_SIZE = 20;
/** Minutes shown by the sparklines. */
const SPARK_MINUTES = 30;

type Stats = Record<string, number>;

interface Filters {
  status: string;
  fullName: string;
  funcName: string;
  source: string;
  from: string;
  to: string;
}

const NO_FILTERS: Filters = { status: '', fullName: '', funcName: '', source: '', from: '', to: '' };

function useHashRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.replace(/^#/, '') || '/';
}

function App() {
  const route = useHashRoute();
  const [key, setKeyState] = useState(getKey());
  const [me, setMe] = useState<{ actor: string; role: string; tenantId: string } | undefined>();
  const [authError, setAuthError] = useState<string | undefined>();
  const [events, setEvents] = useState<StatusEvent[]>([]);
  const [live, setLive] = useState<'live' | 'reconnecting' | 'off'>('off');

  useEffect(() => {
    setMe(undefined);
    setAuthError(undefined);
    gql<{ me: { actor: string; role: string; tenantId: string } }>('query DashboardMe { me { actor role tenantId } }')
      .then(({ me }) => setMe(me))
      .catch((error: Error) => setAuthError(error.message));
  }, [key]);

  useEffect(() => {
    if (!me) return;
    // The last half hour from history (taskEvents) feeds the sparklines; the subscription resumes right
    // after its newest event, so nothing falls between the two.
    let stop: (() => void) | undefined;
    let cancelled = false;
    gql<{ taskEvents: { edges: { node: StatusEvent }[] } }>(
      `query DashboardRecentEvents($from: DateTime) { taskEvents(filter: { from: $from }, last: 500) { edges { node { ${STATUS_EVENT} } } } }`,
      { from: new Date(Date.now() - SPARK_MINUTES * 60_000).toISOString() },
    )
      .then(({ taskEvents }) => taskEvents.edges.map((e) => e.node))
      .catch(() => [] as StatusEvent[])
      .then((history) => {
        if (cancelled) return;
        setEvents(history);
        stop = followStatusChanges(
          history.at(-1)?.cursor,
          (event) => setEvents((old) => [...old.slice(-999), event]),
          (state) => setLive(state),
        );
      });
    return () => {
      cancelled = true;
      stop?.();
    };
  }, [me, key]);

  const taskMatch = /^\/task\/(.+)$/.exec(route);
  return (
    <div class="layout">
      <header>
        <h1>
          <a href="#/">Chronograph</a>
        </h1>
        <nav>
          <a href="#/" class={route === '/' ? 'active' : ''}>
            Tasks
          </a>
          <a href="#/create" class={route === '/create' ? 'active' : ''}>
            Create
          </a>
          <a href="#/records" class={route === '/records' ? 'active' : ''}>
            Date fields
          </a>
          <a href="/graphql">GraphiQL</a>
        </nav>
        <KeyField
          value={key}
          onSave={(value) => {
            setKey(value);
            setKeyState(value);
          }}
        />
        <span class={`live ${live}`} data-live={live} title="taskStatusChanged over WebSocket">
          {live === 'live' ? '● live' : live === 'reconnecting' ? '○ reconnecting' : '○ offline'}
        </span>
      </header>
      {authError && (
        <p class="error" role="alert">
          {authError} — paste an API key above (not needed in development mode).
        </p>
      )}
      {me && (
        <main>
          <p class="who">
            {me.actor} · {me.role} · tenant {me.tenantId}
          </p>
          {taskMatch ? (
            <TaskPage id={decodeURIComponent(taskMatch[1]!)} events={events} />
          ) : route === '/create' ? (
            <CreatePage />
          ) : route === '/records' ? (
            <RecordsPage events={events} />
          ) : (
            <Overview events={events} />
          )}
        </main>
      )}
    </div>
  );
}

function KeyField({ value, onSave }: { value: string; onSave: (value: string) => void }) {
  const [draft, setDraft] = useState(value);
  return (
    <form
      class="key"
      onSubmit={(e) => {
        e.preventDefault();
        onSave(draft.trim());
      }}
    >
      <input
        type="password"
        name="apiKey"
        placeholder="API key"
        value={draft}
        onInput={(e) => setDraft(e.currentTarget.value)}
        autocomplete="off"
      />
      <button type="submit">Use key</button>
    </form>
  );
}

/** Counts by status, sparklines, and the filtered, paged task list, all following the live events. */
function Overview({ events }: { events: StatusEvent[] }) {
  const [stats, setStats] = useState<Stats | undefined>();
  const refreshStats = useCallback(() => {
    gql<{ taskStats: Stats }>(
      'query DashboardStats { taskStats { total scheduled running retrying paused succeeded failed cancelled forced_end } }',
    )
      .then(({ taskStats }) => setStats(taskStats))
      .catch(() => {});
  }, []);
  // Counts are read again after each burst of events (at most every 500 ms).
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => {
    if (!events.length || timer.current) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      refreshStats();
    }, 500);
  }, [events, refreshStats]);
  useEffect(() => {
    refreshStats();
    return () => clearTimeout(timer.current);
  }, [refreshStats]);

  return (
    <>
      <section class="stats" aria-label="Tasks by status">
        {stats &&
          ['total', ...STATUSES.map((s) => s.toLowerCase())].map((name) => (
            <div class={`stat ${name}`} data-stat={name} key={name}>
              <span class="count">{stats[name] ?? 0}</span>
              <span class="label">{name.replace('_', ' ')}</span>
            </div>
          ))}
      </section>
      <Sparklines events={events} />
      <RunStats events={events} />
      <TaskList events={events} />
    </>
  );
}

/** Throughput (runs ended per minute) and lateness (how late runs started) over the last minutes, from the live events. */
function Sparklines({ events }: { events: StatusEvent[] }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 10_000);
    return () => clearInterval(t);
  }, []);
  const { done, late } = useMemo(() => {
    const done = new Array<number>(SPARK_MINUTES).fill(0);
    const lateSum = new Array<number>(SPARK_MINUTES).fill(0);
    const lateN = new Array<number>(SPARK_MINUTES).fill(0);
    const lastDue = new Map<string, string>();
    for (const e of events) {
      const minute = SPARK_MINUTES - 1 - Math.floor((now - Date.parse(e.createdAt)) / 60_000);
      if (e.toStatus === 'RUNNING') {
        const due = lastDue.get(e.task.id);
        if (due && minute >= 0 && minute < SPARK_MINUTES) {
          lateSum[minute]! += Math.max(0, Date.parse(e.createdAt) - Date.parse(due));
          lateN[minute]!++;
        }
      }
      if (e.nextRunAt) lastDue.set(e.task.id, e.nextRunAt);
      if (minute < 0 || minute >= SPARK_MINUTES) continue;
      if (e.fromStatus === 'RUNNING' && e.toStatus !== 'RUNNING') done[minute]!++;
    }
    return { done, late: lateSum.map((sum, i) => (lateN[i] ? sum / lateN[i]! : 0)) };
  }, [events, now]);
  return (
    <section class="sparks">
      <Spark label="Runs ended / min" values={done} format={(v) => String(v)} />
      <Spark label="Mean start lateness (ms)" values={late} format={(v) => String(Math.round(v))} />
      <span class="hint">last {SPARK_MINUTES} minutes</span>
    </section>
  );
}

function Spark({ label, values, format }: { label: string; values: number[]; format: (v: number) => string }) {
  const max = Math.max(1, ...values);
  const w = 180;
  const h = 36;
  const points = values
    .map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`)
    .join(' ');
  return (
    <figure class="spark" data-spark={label}>
      <svg width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label}>
        <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
      <figcaption>
        {label}: <b>{format(values[values.length - 1] ?? 0)}</b> (max {format(Math.max(0, ...values))})
      </figcaption>
    </figure>
  );
}

interface RunStatsRow {
  key: string;
  counts: { status: string; count: number }[];
  p50DurationMs: number | null;
  p95DurationMs: number | null;
  failureRate: number | null;
}

/** Runs of the last 24 hours by handler (runStats), read again when runs end. */
function RunStats({ events }: { events: StatusEvent[] }) {
  const [rows, setRows] = useState<RunStatsRow[]>([]);
  const ended = useMemo(() => events.findLast((e) => e.fromStatus === 'RUNNING')?.cursor, [events]);
  useEffect(() => {
    gql<{ runStats: RunStatsRow[] }>(
      'query DashboardRunStats($from: DateTime) { runStats(groupBy: HANDLER, from: $from) { key counts { status count } p50DurationMs p95DurationMs failureRate } }',
      { from: new Date(Date.now() - 86_400_000).toISOString() },
    )
      .then(({ runStats }) => setRows(runStats))
      .catch(() => {});
  }, [ended]);
  if (!rows.length) return null;
  return (
    <table class="runstats">
      <thead>
        <tr>
          <th>Handler (runs, last 24 h)</th>
          <th>Runs</th>
          <th>p50</th>
          <th>p95</th>
          <th>Failure rate</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.key}>
            <td>{r.key}</td>
            <td>{r.counts.map((c) => `${c.status.toLowerCase()} ${c.count}`).join(' · ')}</td>
            <td>{r.p50DurationMs == null ? '' : `${Math.round(r.p50DurationMs)} ms`}</td>
            <td>{r.p95DurationMs == null ? '' : `${Math.round(r.p95DurationMs)} ms`}</td>
            <td>{r.failureRate == null ? '' : `${(r.failureRate * 100).toFixed(1)} %`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface TasksPage {
  tasks: { edges: { cursor: string; node: TaskRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; totalCount: number };
}

function TaskList({ events }: { events: StatusEvent[] }) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  /** Cursors of the pages before the current one (the first page has none). */
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<TasksPage['tasks'] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const after = cursors[cursors.length - 1] ?? null;

  const load = useCallback(() => {
    const filter = {
      ...(filters.status && { status: [filters.status] }),
      ...(filters.fullName && { fullName: filters.fullName }),
      ...(filters.funcName && { funcName: filters.funcName }),
      ...(filters.source && { source: filters.source }),
      ...(filters.from && { startTimeFrom: new Date(filters.from).toISOString() }),
      ...(filters.to && { startTimeTo: new Date(filters.to).toISOString() }),
    };
    gql<TasksPage>(
      `query DashboardTasks($filter: TaskFilter, $first: Int, $after: String) { tasks(filter: $filter, first: $first, after: $after) { edges { cursor node { ${TASK_ROW} } } pageInfo { hasNextPage endCursor } totalCount } }`,
      {
        filter,
        first: PAGE_SIZE,
        after,
      },
    )
      .then(({ tasks }) => {
        setPage(tasks);
        setError(undefined);
      })
      .catch((e: Error) => setError(e.message));
  }, [filters, after]);
  useEffect(load, [load]);

  // Live: each row takes its task's newest state from the events; a new task on the first page reloads it.
  const latest = useMemo(() => {
    const byTask = new Map<string, TaskRow>();
    for (const e of events) byTask.set(e.task.id, e.task);
    return byTask;
  }, [events]);
  const lastCreated = useMemo(() => events.findLast((e) => e.type === 'CREATED')?.cursor, [events]);
  useEffect(() => {
    if (lastCreated && after === null) load();
  }, [lastCreated]);

  const rows = page?.edges.map((edge) => {
    const fresh = latest.get(edge.node.id);
    return fresh && fresh.updatedAt >= edge.node.updatedAt ? fresh : edge.node;
  });
  const field = (name: keyof Filters) => ({
    name,
    value: draft[name],
    onInput: (e: Event) => setDraft({ ...draft, [name]: (e.currentTarget as HTMLInputElement).value }),
  });
  return (
    <section class="tasks">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
          setCursors([null]);
        }}
      >
        <select {...field('status')} aria-label="Status">
          <option value="">any status</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input {...field('fullName')} placeholder="template (fullName)" />
        <input {...field('funcName')} placeholder="handler (funcName)" />
        <select {...field('source')} aria-label="Source">
          <option value="">any source</option>
          {SOURCES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label>
          from <input type="datetime-local" {...field('from')} />
        </label>
        <label>
          to <input type="datetime-local" {...field('to')} />
        </label>
        <button type="submit">Filter</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th>Task</th>
            <th>Status</th>
            <th>Handler</th>
            <th>Source</th>
            <th>Repeat</th>
            <th>Next run</th>
            <th>Runs</th>
            <th>Last error</th>
          </tr>
        </thead>
        <tbody>
          {rows?.map((task) => (
            <tr key={task.id} data-task-id={task.id}>
              <td>
                <a href={`#/task/${encodeURIComponent(task.id)}`}>{task.fullName}</a>
                <div class="id">{task.id}</div>
              </td>
              <td>
                <span class={`badge ${task.status}`} data-status={task.status}>
                  {task.status}
                </span>
              </td>
              <td>{task.funcName}</td>
              <td>{task.source}</td>
              <td>{task.repeatType}</td>
              <td>{time(task.nextRunAt)}</td>
              <td>{task.runCount}</td>
              <td class="err">{task.lastError ?? ''}</td>
            </tr>
          ))}
          {rows?.length === 0 && (
            <tr>
              <td colSpan={8}>No tasks match.</td>
            </tr>
          )}
        </tbody>
      </table>
      <div class="pager">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Newer
        </button>
        <span data-total={page?.totalCount}>
          page {cursors.length} of {Math.max(1, Math.ceil((page?.totalCount ?? 0) / PAGE_SIZE))} · {page?.totalCount ?? 0} tasks
        </span>
        <button
          type="button"
          disabled={!page?.pageInfo.hasNextPage}
          onClick={() => page?.pageInfo.endCursor && setCursors([...cursors, page.pageInfo.endCursor])}
        >
          Older →
        </button>
      </div>
    </section>
  );
}

interface TaskDetail extends TaskRow {
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
  endTime: string | null;
  maxRuns: number | null;
  attempts: number;
  maxAttempts: number;
  priority: number;
  queue: string;
  argDict: unknown;
  createdAt: string;
  timeoutMs: number | null;
  upcomingRuns: { at: string; local: string }[];
}

interface Connection<T> {
  totalCount: number;
  edges: { node: T }[];
}

interface TaskHistory {
  task: TaskDetail | null;
  taskRuns: Connection<{
    id: string;
    attempt: number;
    status: string;
    startedAt: string;
    finishedAt: string | null;
    durationMs: number | null;
    result: unknown;
    error: string | null;
    workerId: string;
  }>;
  taskEvents: Connection<{
    id: string;
    createdAt: string;
    type: string;
    fromStatus: string | null;
    toStatus: string;
    message: string | null;
    actor: string | null;
  }>;
  runLogs: Connection<{ id: string; createdAt: string; level: string; message: string; run: { attempt: number } }>;
}

/** A task and its history: the newest runs, events and log lines (history connections, with their totals). */
const TASK_DETAIL = `query DashboardTask($id: ID!, $search: String) {
  task(id: $id) { ${TASK_ROW} cronExpression intervalSeconds timezone endTime maxRuns attempts maxAttempts priority queue argDict createdAt timeoutMs upcomingRuns(count: 5) { at local } }
  taskRuns(filter: { taskId: $id }, last: 20) { totalCount edges { node { id attempt status startedAt finishedAt durationMs result error workerId } } }
  taskEvents(filter: { taskId: $id }, last: 50) { totalCount edges { node { id createdAt type fromStatus toStatus message actor } } }
  runLogs(filter: { taskId: $id, search: $search }, last: 100) { totalCount edges { node { id createdAt level message run { attempt } } } }
}`;

const ACTIONS: Record<string, { label: string; mutation: string; when: string[] }> = {
  pause: {
    label: 'Pause',
    mutation: 'mutation DashboardPause($taskId: ID!) { pauseTask(taskId: $taskId) { id status } }',
    when: ['SCHEDULED', 'RETRYING'],
  },
  resume: {
    label: 'Resume',
    mutation: 'mutation DashboardResume($taskId: ID!) { resumeTask(taskId: $taskId) { id status } }',
    when: ['PAUSED'],
  },
  runNow: {
    label: 'Run now',
    mutation: 'mutation DashboardRunNow($taskId: ID!) { runTaskNow(taskId: $taskId) { id status } }',
    when: ['SCHEDULED', 'RETRYING', 'PAUSED'],
  },
  cancel: {
    label: 'Cancel',
    mutation: 'mutation DashboardCancel($taskId: ID!, $reason: String) { cancelTask(taskId: $taskId, reason: $reason) { id status } }',
    when: ['SCHEDULED', 'RETRYING', 'PAUSED'],
  },
  forceEnd: {
    label: 'Force end',
    mutation: 'mutation DashboardForceEnd($taskId: ID!, $reason: String) { forcedEnd(taskId: $taskId, reason: $reason) { id status } }',
    when: ['SCHEDULED', 'RETRYING', 'PAUSED', 'RUNNING'],
  },
};

function TaskPage({ id, events }: { id: string; events: StatusEvent[] }) {
  const [history, setHistory] = useState<TaskHistory | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [when, setWhen] = useState('');
  const [search, setSearch] = useState('');
  const [editing, setEditing] = useState(false);
  const load = useCallback(() => {
    gql<TaskHistory>(TASK_DETAIL, { id, search: search || null })
      .then(setHistory)
      .catch((e: Error) => setError(e.message));
  }, [id, search]);
  useEffect(load, [load]);
  // Reread the page when one of this task's changes arrives.
  const mine = useMemo(() => events.findLast((e) => e.task.id === id)?.cursor, [events, id]);
  useEffect(() => {
    if (mine) load();
  }, [mine]);

  const act = async (name: string, mutation: string, variables: Record<string, unknown>) => {
    setError(undefined);
    try {
      await gql(mutation, { taskId: id, ...variables });
      setNotice(`${name}: done`);
      load();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  if (history === undefined) return <p>{error ?? 'Loading…'}</p>;
  const { task, taskRuns, taskEvents, runLogs } = history;
  if (task === null) return <p class="error">No task {id}.</p>;
  const schedule =
    task.repeatType === 'CRON'
      ? `cron ${task.cronExpression} (${task.timezone})`
      : task.repeatType === 'INTERVAL'
        ? `every ${task.intervalSeconds} s`
        : `once at ${time(task.startTime)}`;
  return (
    <article class="task" data-task-page={task.id}>
      <h2>
        {task.fullName}{' '}
        <span class={`badge ${task.status}`} data-status={task.status}>
          {task.status}
        </span>
      </h2>
      <div class="actions">
        {Object.entries(ACTIONS)
          .filter(([, a]) => a.when.includes(task.status))
          .map(([name, a]) => (
            <button
              type="button"
              key={name}
              data-action={name}
              onClick={() => act(a.label, a.mutation, name === 'cancel' || name === 'forceEnd' ? { reason: 'from the dashboard' } : {})}
            >
              {a.label}
            </button>
          ))}
        {LIVE.includes(task.status) && (
          <button type="button" data-action="edit" onClick={() => setEditing(!editing)}>
            Edit
          </button>
        )}
        {['SCHEDULED', 'RETRYING', 'PAUSED'].includes(task.status) && (
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              if (when)
                void act(
                  'Reschedule',
                  'mutation DashboardReschedule($taskId: ID!, $startTime: String!) { rescheduleTask(taskId: $taskId, startTime: $startTime) { id status } }',
                  { startTime: new Date(when).toISOString() },
                );
            }}
          >
            <input
              type="datetime-local"
              name="startTime"
              value={when}
              onInput={(e) => setWhen(e.currentTarget.value)}
              aria-label="New start time"
            />
            <button type="submit" data-action="reschedule">
              Reschedule
            </button>
          </form>
        )}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {notice && <p class="notice">{notice}</p>}
      {editing && (
        <EditForm
          task={task}
          onDone={(message) => {
            setEditing(false);
            setNotice(message);
            load();
          }}
        />
      )}
      <dl class="facts">
        <dt>Id</dt>
        <dd>{task.id}</dd>
        <dt>Schedule</dt>
        <dd>{schedule}</dd>
        <dt>Handler</dt>
        <dd>{task.funcName}</dd>
        <dt>Source</dt>
        <dd>{task.source}</dd>
        <dt>Queue · priority</dt>
        <dd>
          {task.queue} · {task.priority}
        </dd>
        <dt>Attempts</dt>
        <dd>
          {task.attempts} of {task.maxAttempts}
        </dd>
        <dt>Runs</dt>
        <dd>
          {task.runCount}
          {task.maxRuns ? ` of ${task.maxRuns}` : ''}
        </dd>
        <dt>Ends</dt>
        <dd>{time(task.endTime) || 'never'}</dd>
        <dt>Arguments</dt>
        <dd>
          <code>{JSON.stringify(task.argDict)}</code>
        </dd>
      </dl>
      <h3>Upcoming runs</h3>
      {task.upcomingRuns.length ? (
        <ol class="upcoming">
          {task.upcomingRuns.map((r) => (
            <li key={r.at}>
              {time(r.at)}{' '}
              <span class="hint">
                ({r.local} {task.timezone})
              </span>
            </li>
          ))}
        </ol>
      ) : (
        <p class="hint">None.</p>
      )}
      <h3>
        Runs{' '}
        <span class="hint">
          newest {taskRuns.edges.length} of {taskRuns.totalCount}
        </span>
      </h3>
      <table class="runs">
        <thead>
          <tr>
            <th>#</th>
            <th>Status</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Worker</th>
            <th>Result / error</th>
          </tr>
        </thead>
        <tbody>
          {taskRuns.edges.map(({ node: r }) => (
            <tr key={r.id} data-run-id={r.id}>
              <td>{r.attempt}</td>
              <td>
                <span class={`badge ${r.status}`}>{r.status}</span>
              </td>
              <td>{time(r.startedAt)}</td>
              <td>{r.durationMs == null ? '' : `${r.durationMs} ms`}</td>
              <td>{r.workerId}</td>
              <td class={r.error ? 'err' : ''}>
                <code>{r.error ?? JSON.stringify(r.result)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>
        Logs{' '}
        <span class="hint">
          newest {runLogs.edges.length} of {runLogs.totalCount}
        </span>
      </h3>
      <input
        type="search"
        name="logSearch"
        placeholder="search the logs"
        value={search}
        onChange={(e) => setSearch(e.currentTarget.value)}
      />
      <div class="logs">
        {runLogs.edges.map(({ node: l }) => (
          <div key={l.id} class={`log ${l.level}`}>
            {time(l.createdAt)} #{l.run.attempt} {l.level} {l.message}
          </div>
        ))}
        {runLogs.edges.length === 0 && <p class="hint">No log lines.</p>}
      </div>
      <h3>
        Events{' '}
        <span class="hint">
          newest {taskEvents.edges.length} of {taskEvents.totalCount}
        </span>
      </h3>
      <table class="events">
        <thead>
          <tr>
            <th>When</th>
            <th>Type</th>
            <th>Change</th>
            <th>By</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {taskEvents.edges.map(({ node: e }) => (
            <tr key={e.id}>
              <td>{time(e.createdAt)}</td>
              <td>{e.type}</td>
              <td>
                {e.fromStatus ?? '—'} → {e.toStatus}
              </td>
              <td>{e.actor ?? 'scheduler'}</td>
              <td>{e.message ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}

const LIVE = ['SCHEDULED', 'RETRYING', 'PAUSED', 'RUNNING'];

/** The fields of TaskPatch the page edits, as text; only the ones the user changed are sent (updateTask). */
function EditForm({ task, onDone }: { task: TaskDetail; onDone: (message: string) => void }) {
  const initial = {
    cronExpression: task.cronExpression ?? '',
    intervalSeconds: task.intervalSeconds == null ? '' : String(task.intervalSeconds),
    timezone: task.timezone,
    funcName: task.funcName,
    argDict: JSON.stringify(task.argDict),
    priority: String(task.priority),
    queue: task.queue,
    maxAttempts: String(task.maxAttempts),
    timeoutMs: task.timeoutMs == null ? '' : String(task.timeoutMs),
  };
  const [draft, setDraft] = useState(initial);
  const [error, setError] = useState<string | undefined>();
  const numeric = new Set(['intervalSeconds', 'priority', 'maxAttempts', 'timeoutMs']);
  const shown = (Object.keys(initial) as (keyof typeof initial)[]).filter(
    (name) => (name !== 'cronExpression' || task.repeatType === 'CRON') && (name !== 'intervalSeconds' || task.repeatType === 'INTERVAL'),
  );
  return (
    <form
      class="edit"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        const patch: Record<string, unknown> = {};
        try {
          for (const name of shown) {
            if (draft[name] === initial[name]) continue;
            const text = draft[name].trim();
            patch[name] = name === 'argDict' ? JSON.parse(text) : numeric.has(name) ? (text === '' ? null : Number(text)) : text;
          }
        } catch {
          setError('argDict must be JSON');
          return;
        }
        if (!Object.keys(patch).length) return onDone('Nothing changed');
        try {
          await gql('mutation DashboardEdit($taskId: ID!, $patch: TaskPatch!) { updateTask(taskId: $taskId, patch: $patch) { id } }', {
            taskId: task.id,
            patch,
          });
          onDone(`Edited: ${Object.keys(patch).join(', ')}`);
        } catch (err) {
          const { message, field } = err as GraphQLRequestError;
          setError(field ? `${field}: ${message}` : message);
        }
      }}
    >
      {shown.map((name) => (
        <label key={name}>
          {name}
          <input name={name} value={draft[name]} onInput={(e) => setDraft({ ...draft, [name]: e.currentTarget.value })} />
        </label>
      ))}
      <button type="submit" data-action="save">
        Save
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

interface Template {
  fullName: string;
  title: string | null;
  funcName: string;
  repeatType: string;
  argDict: unknown;
}

function CreatePage() {
  const [templates, setTemplates] = useState<Template[]>([]);
  const [fullName, setFullName] = useState('');
  const [startTime, setStartTime] = useState('');
  const [args, setArgs] = useState('');
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    gql<{ taskTemplates: Template[] }>(
      'query DashboardTemplates { taskTemplates(query: "") { fullName title funcName repeatType argDict } }',
    )
      .then(({ taskTemplates }) => setTemplates(taskTemplates))
      .catch((e: Error) => setError(e.message));
  }, []);
  const chosen = templates.find((t) => t.fullName === fullName);
  return (
    <section class="create">
      <h2>Create a task from a template</h2>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          let argDict: unknown;
          try {
            argDict = args.trim() ? JSON.parse(args) : undefined;
          } catch {
            setError('Arguments must be JSON');
            return;
          }
          try {
            const { createTimerTask } = await gql<{ createTimerTask: { id: string } }>(
              'mutation DashboardCreate($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }',
              {
                input: {
                  fullName,
                  ...(argDict !== undefined && { argDict }),
                  ...(startTime && { startTime: new Date(startTime).toISOString() }),
                },
              },
            );
            location.hash = `#/task/${encodeURIComponent(createTimerTask.id)}`;
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      >
        <label>
          Template
          <select
            name="fullName"
            value={fullName}
            onChange={(e) => {
              setFullName(e.currentTarget.value);
              const t = templates.find((x) => x.fullName === e.currentTarget.value);
              setArgs(t ? JSON.stringify(t.argDict) : '');
            }}
          >
            <option value="">choose…</option>
            {templates.map((t) => (
              <option key={t.fullName} value={t.fullName}>
                {t.fullName}
                {t.title ? ` — ${t.title}` : ''}
              </option>
            ))}
          </select>
        </label>
        {chosen && (
          <p class="hint">
            {chosen.repeatType} · handler {chosen.funcName}
          </p>
        )}
        <label>
          Start (empty: the template's, or now){' '}
          <input type="datetime-local" name="startTime" value={startTime} onInput={(e) => setStartTime(e.currentTarget.value)} />
        </label>
        <label>
          Arguments (JSON) <textarea name="argDict" rows={4} value={args} onInput={(e) => setArgs(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={!fullName}>
          Create
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

interface Model {
  name: string;
  title: string | null;
  recordCount: number;
  fields: { name: string; type: string }[];
  dateFieldTemplates: { fullName: string }[];
}

interface RecordRow {
  id: string;
  data: Record<string, unknown>;
  tasks: TaskRow[];
}

/** A model's records, each with the tasks its date fields drive. */
function RecordsPage({ events }: { events: StatusEvent[] }) {
  const [models, setModels] = useState<Model[]>([]);
  const [model, setModel] = useState('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [records, setRecords] = useState<{ rows: RecordRow[]; hasNext: boolean; end: string | null } | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    gql<{ models: Model[] }>(
      'query DashboardModels { models { name title recordCount fields { name type } dateFieldTemplates { fullName } } }',
    )
      .then(({ models }) => {
        setModels(models);
        if (models[0]) setModel((m) => m || models[0]!.name);
      })
      .catch((e: Error) => setError(e.message));
  }, []);
  const after = cursors[cursors.length - 1] ?? null;
  const load = useCallback(() => {
    if (!model) return;
    gql<{ modelRecords: { edges: { node: RecordRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
      `query DashboardRecords($model: String!, $after: String) { modelRecords(model: $model, first: ${PAGE_SIZE}, after: $after) { edges { node { id data tasks { ${TASK_ROW} } } } pageInfo { hasNextPage endCursor } } }`,
      { model, after },
    )
      .then(({ modelRecords }) =>
        setRecords({
          rows: modelRecords.edges.map((e) => e.node),
          hasNext: modelRecords.pageInfo.hasNextPage,
          end: modelRecords.pageInfo.endCursor,
        }),
      )
      .catch((e: Error) => setError(e.message));
  }, [model, after]);
  useEffect(load, [load]);
  const dateFieldEvents = useMemo(() => events.findLast((e) => e.task.source === 'DATE_FIELD')?.cursor, [events]);
  useEffect(() => {
    if (dateFieldEvents) load();
  }, [dateFieldEvents]);
  const current = models.find((m) => m.name === model);
  const dateFields = current?.fields.filter((f) => f.type === 'DATE' || f.type === 'DATETIME') ?? [];
  return (
    <section class="records">
      <h2>Date fields</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {models.length === 0 ? (
        <p class="hint">No models yet (saveModel).</p>
      ) : (
        <label>
          Model{' '}
          <select
            name="model"
            value={model}
            onChange={(e) => {
              setModel(e.currentTarget.value);
              setCursors([null]);
            }}
          >
            {models.map((m) => (
              <option key={m.name} value={m.name}>
                {m.title ?? m.name} ({m.recordCount})
              </option>
            ))}
          </select>
        </label>
      )}
      {current && <p class="hint">templates: {current.dateFieldTemplates.map((t) => t.fullName).join(', ') || 'none'}</p>}
      {records && (
        <table>
          <thead>
            <tr>
              <th>Record</th>
              {dateFields.map((f) => (
                <th key={f.name}>{f.name}</th>
              ))}
              <th>Tasks</th>
            </tr>
          </thead>
          <tbody>
            {records.rows.map((r) => (
              <tr key={r.id} data-record-id={r.id}>
                <td class="id">{r.id}</td>
                {dateFields.map((f) => (
                  <td key={f.name}>{String(r.data[f.name] ?? '')}</td>
                ))}
                <td>
                  {r.tasks.map((t) => (
                    <div key={t.id}>
                      <a href={`#/task/${encodeURIComponent(t.id)}`}>{t.fullName}</a> <span class={`badge ${t.status}`}>{t.status}</span>{' '}
                      {time(t.nextRunAt)}
                    </div>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="pager">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Previous
        </button>
        <button type="button" disabled={!records?.hasNext} onClick={() => records?.end && setCursors([...cursors, records.end])}>
          Next →
        </button>
      </div>
    </section>
  );
}

function time(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

const root = document.getElementById('app')!;
root.replaceChildren(); // the "Loading…" placeholder
render(<App />, root);
