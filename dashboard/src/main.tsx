import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, followChanges, getKey, gql, isAuthFailure, mayPassLater, retryDelay, type StatusChange, setKey } from './api';
import './style.css';

const STATUSES = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED'] as const;
const SOURCES = ['API', 'DATE_FIELD', 'TEMPLATE'] as const;
const PAGE = 20;

// ---------------------------------------------------------------- small helpers

function useHashRoute(): string {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)}Z`;
}

function Status({ value }: { value: string }) {
  return <span class={`status status-${value.toLowerCase()}`}>{value}</span>;
}

function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  return <p class="error">{error instanceof ApiError || error instanceof Error ? error.message : String(error)}</p>;
}

/** Live changes shared by the views: one subscription per page, resumed across reconnects. */
type Listener = (change: StatusChange) => void;
const listeners = new Set<Listener>();
let streamState = 'connecting';
const stateListeners = new Set<(state: string) => void>();
let stopStream: (() => void) | undefined;

/** Makes every view read its data again (useReadAgain): a new key, or a stream that got its start late. */
const READ_AGAIN = 'chronograph:read-again';

/**
 * Starts the live stream after the newest event that exists now, read before the views load their data:
 * whatever changes after their reads arrives through the stream, and nothing falls in between. Resolves
 * true when it got that start point and is still the latest start.
 *
 * When the newest event cannot be read for another reason than the key (SERVER_BUSY, a 5xx, the network),
 * the stream starts live from when it subscribes meanwhile (a change between the views' reads and the
 * subscription could be missed), and the read is tried again with the views' backoff; once it passes, the
 * stream starts again after that event and the views read again.
 */
let streamStarts = 0;
let streamRetry: ReturnType<typeof setTimeout> | undefined;
async function startStream(attempt = 0): Promise<boolean> {
  stopStream?.();
  stopStream = undefined;
  clearTimeout(streamRetry);
  const mine = ++streamStarts;
  let after: string | undefined;
  let failure: unknown;
  try {
    const d = await gql('{ taskEvents(last: 1) { edges { node { cursor } } } }');
    after = d.taskEvents.edges[0]?.node.cursor ?? '0';
  } catch (error) {
    after = undefined; // no (valid) key yet: the stream will be refused until one is given
    failure = error;
  }
  if (mine !== streamStarts) return false;
  stopStream = followChanges(
    (change) => {
      for (const l of listeners) l(change);
    },
    (state) => {
      streamState = state;
      for (const l of stateListeners) l(state);
    },
    after,
  );
  if (after === undefined && mayPassLater(failure)) {
    streamRetry = setTimeout(
      () => {
        if (mine !== streamStarts) return;
        void startStream(attempt + 1).then((started) => {
          if (started) dispatchEvent(new Event(READ_AGAIN));
        });
      },
      retryDelay(attempt, failure),
    );
  }
  return after !== undefined;
}

function useChanges(listener: Listener) {
  const ref = useRef(listener);
  ref.current = listener;
  useEffect(() => {
    const l: Listener = (c) => ref.current(c);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
}

function useStreamState(): string {
  const [state, setState] = useState(streamState);
  useEffect(() => {
    stateListeners.add(setState);
    return () => {
      stateListeners.delete(setState);
    };
  }, []);
  return state;
}

/** Runs `fn` at most once per `ms`, after the calls: a call while one is pending runs it once more after. */
function useThrottled(fn: () => void, ms: number): () => void {
  const timer = useRef<number | undefined>(undefined);
  const again = useRef(false);
  const ref = useRef(fn);
  ref.current = fn;
  const schedule = useCallback(() => {
    if (timer.current !== undefined) {
      again.current = true;
      return;
    }
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      ref.current();
      if (again.current) {
        again.current = false;
        schedule();
      }
    }, ms);
  }, [ms]);
  return schedule;
}

// ---------------------------------------------------------------- header: key and connection

function Header() {
  const state = useStreamState();
  const [key, setKeyText] = useState(getKey());
  const [me, setMe] = useState<{ tenantId: string; role: string; actor: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  // The keyless read at page load may answer after the one made with the key just given.
  const read = useRead();
  const load = useCallback(() => {
    read(
      () => gql('{ me { tenantId role actor } }'),
      (d) => {
        setMe(d.me);
        setError(null);
      },
      (e) => {
        setMe(null);
        setError(e);
      },
    );
  }, [read]);
  useEffect(load, [load]);
  return (
    <header>
      <a href="#/" class="brand">
        Chronograph
      </a>
      <nav>
        <a href="#/">Tasks</a>
        <a href="#/models">Date fields</a>
        <a href="/graphql">GraphiQL</a>
      </nav>
      <form
        class="key"
        onSubmit={(e) => {
          e.preventDefault();
          // What the field holds now, not the last render's copy of it.
          const given = (e.currentTarget as HTMLFormElement).apiKey.value as string;
          setKeyText(given);
          setKey(given.trim());
          // The views read again once the stream knows where it starts (no change falls in between).
          void startStream().then(() => {
            load();
            dispatchEvent(new Event(READ_AGAIN));
          });
        }}
      >
        <input
          type="password"
          placeholder="API key"
          value={key}
          onInput={(e) => setKeyText((e.target as HTMLInputElement).value)}
          name="apiKey"
        />
        <button type="submit">Use key</button>
      </form>
      <span class="who" data-testid="who">
        {me ? `${me.role} · ${me.tenantId}` : isAuthFailure(error) ? 'not signed in' : '…'}
      </span>
      {error && !isAuthFailure(error) ? (
        <span class="who who-error" data-testid="who-error">
          {error instanceof Error ? error.message : String(error)}
          {mayPassLater(error) ? ' (trying again)' : ''}
        </span>
      ) : null}
      <span class={`stream stream-${state}`} data-testid="stream">
        {state}
      </span>
    </header>
  );
}

/**
 * For the reads a view shows: `read(fetch, done, failed)` runs `fetch` and settles only if it is still the
 * latest read started through it (an older one, made without the key just given or with other filters,
 * never overwrites it). A failed read is reported to `failed`, so the view shows the error; one that may
 * pass later (SERVER_BUSY, an unexpected error, a 5xx, a network error: mayPassLater) is tried again after a backoff (0.5 s
 * doubling to 15 s, with jitter; see retryDelay) until it succeeds, a newer read replaces it or the view
 * goes. Others are not: a refused identity (a new key reads again), or an answer the server would give
 * again (a bad id in the address, a validation error).
 */
function useRead(): <T>(fetch: () => Promise<T>, done: (value: T) => void, failed: (error: unknown) => void) => void {
  const latest = useRef(0);
  const timer = useRef<number | undefined>(undefined);
  useEffect(
    () => () => {
      latest.current++;
      clearTimeout(timer.current);
    },
    [],
  );
  return useCallback(<T,>(fetch: () => Promise<T>, done: (value: T) => void, failed: (error: unknown) => void) => {
    const mine = ++latest.current;
    clearTimeout(timer.current);
    const attempt = (n: number) => {
      fetch().then(
        (value) => {
          if (mine === latest.current) done(value);
        },
        (error) => {
          if (mine !== latest.current) return;
          failed(error);
          if (!mayPassLater(error)) return;
          timer.current = window.setTimeout(
            () => {
              if (mine === latest.current) attempt(n + 1);
            },
            retryDelay(n, error),
          );
        },
      );
    };
    attempt(0);
  }, []);
}

/**
 * A number that changes when the views are to read again (READ_AGAIN): the key changed (everything is
 * read again under the new identity), or the stream got its start point late.
 */
function useReadAgain(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const on = () => setVersion((v) => v + 1);
    addEventListener(READ_AGAIN, on);
    return () => removeEventListener(READ_AGAIN, on);
  }, []);
  return version;
}

// ---------------------------------------------------------------- overview: counts and sparklines

interface Bucket {
  at: number;
  done: number;
  lateSum: number;
  lateN: number;
}
const BUCKET_MS = 5000;
const BUCKETS = 60;

function Sparkline({ values, label, unit }: { values: number[]; label: string; unit: string }) {
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * 200},${40 - (v / max) * 38}`).join(' ');
  const last = values.at(-1) ?? 0;
  return (
    <figure class="spark">
      <svg viewBox="0 0 200 40" preserveAspectRatio="none" aria-label={label}>
        <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
      <figcaption>
        {label}: <b>{Math.round(last * 10) / 10}</b> {unit}
      </figcaption>
    </figure>
  );
}

function Overview() {
  const [stats, setStats] = useState<Record<string, number> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const buckets = useRef<Bucket[]>([]);
  const [, setTick] = useState(0);
  const version = useReadAgain();
  const read = useRead();
  const load = useCallback(() => {
    read(
      () => gql(`{ taskStats { total ${STATUSES.map((s) => s.toLowerCase()).join(' ')} } }`),
      (d) => {
        setStats(d.taskStats);
        setError(null);
      },
      setError,
    );
  }, [read]);
  const reload = useThrottled(load, 500);
  useEffect(load, [load, version]);
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), BUCKET_MS);
    return () => clearInterval(timer);
  }, []);
  useChanges((change) => {
    reload();
    const now = Date.now();
    const at = now - (now % BUCKET_MS);
    let bucket = buckets.current.at(-1);
    if (!bucket || bucket.at !== at) {
      bucket = { at, done: 0, lateSum: 0, lateN: 0 };
      buckets.current = [...buckets.current, bucket].slice(-BUCKETS);
    }
    if (['SUCCEEDED', 'FAILED'].includes(change.toStatus) || (change.fromStatus === 'RUNNING' && change.toStatus === 'SCHEDULED'))
      bucket.done++;
    if (change.toStatus === 'RUNNING' && change.nextRunAt) {
      bucket.lateSum += Math.max(0, new Date(change.createdAt).getTime() - new Date(change.nextRunAt).getTime());
      bucket.lateN++;
    }
  });
  const now = Date.now() - (Date.now() % BUCKET_MS);
  const series = Array.from({ length: BUCKETS }, (_, i) => buckets.current.find((b) => b.at === now - (BUCKETS - 1 - i) * BUCKET_MS));
  return (
    <section class="overview">
      <ErrorLine error={error} />
      <div class="counts" data-testid="counts">
        <div class="count">
          <span>total</span>
          <b>{stats?.total ?? '—'}</b>
        </div>
        {STATUSES.map((s) => (
          <div class={`count count-${s.toLowerCase()}`} key={s}>
            <span>{s.toLowerCase().replace('_', ' ')}</span>
            <b data-status={s}>{stats?.[s.toLowerCase()] ?? '—'}</b>
          </div>
        ))}
      </div>
      <div class="sparks">
        <Sparkline values={series.map((b) => (b ? b.done / (BUCKET_MS / 1000) : 0))} label="runs finished" unit="per second" />
        <Sparkline values={series.map((b) => (b?.lateN ? b.lateSum / b.lateN : 0))} label="start lateness" unit="ms" />
      </div>
    </section>
  );
}

// ---------------------------------------------------------------- task list

interface TaskRow {
  id: string;
  fullName: string;
  funcName: string;
  status: string;
  source: string;
  nextRunAt: string | null;
  startTime: string | null;
  repeatType: string;
}

interface Filters {
  status: string;
  fullName: string;
  funcName: string;
  source: string;
  from: string;
  to: string;
}

const TASKS = `query Tasks($first: Int, $after: String, $filter: TaskFilter) {
  tasks(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { node { id fullName funcName status source nextRunAt startTime repeatType } }
    pageInfo { hasNextPage endCursor }
  }
}`;

function filterInput(f: Filters) {
  return {
    ...(f.status && { status: [f.status] }),
    ...(f.fullName && { fullName: f.fullName }),
    ...(f.funcName && { funcName: f.funcName }),
    ...(f.source && { source: f.source }),
    ...(f.from && { startTimeFrom: new Date(f.from).toISOString() }),
    ...(f.to && { startTimeTo: new Date(f.to).toISOString() }),
  };
}

async function act(mutation: string, id: string, extra = '') {
  await gql(`mutation($id: ID!) { ${mutation}(taskId: $id${extra}) { id status } }`, { id });
}

function TaskActions({ task, onDone }: { task: { id: string; status: string }; onDone: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const run = (fn: () => Promise<unknown>) => () =>
    fn()
      .then(() => {
        setError(null);
        onDone();
      })
      .catch(setError);
  const waiting = ['SCHEDULED', 'RETRYING'].includes(task.status);
  const live = ['SCHEDULED', 'RETRYING', 'PAUSED', 'RUNNING'].includes(task.status);
  return (
    <span class="actions">
      {waiting && (
        <button type="button" onClick={run(() => act('pauseTask', task.id))}>
          Pause
        </button>
      )}
      {task.status === 'PAUSED' && (
        <button type="button" onClick={run(() => act('resumeTask', task.id))}>
          Resume
        </button>
      )}
      {(waiting || task.status === 'PAUSED') && (
        <button type="button" onClick={run(() => act('runTaskNow', task.id))}>
          Run now
        </button>
      )}
      {(waiting || task.status === 'PAUSED') && (
        <button type="button" onClick={run(() => act('cancelTask', task.id))}>
          Cancel
        </button>
      )}
      {live && (
        <button type="button" class="danger" onClick={run(() => act('forcedEnd', task.id))}>
          Force end
        </button>
      )}
      <ErrorLine error={error} />
    </span>
  );
}

function TaskList() {
  const [filters, setFilters] = useState<Filters>({ status: '', fullName: '', funcName: '', source: '', from: '', to: '' });
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const [rows, setRows] = useState<TaskRow[]>([]);
  const [info, setInfo] = useState<{ total: number; next: string | null }>({ total: 0, next: null });
  const [error, setError] = useState<unknown>(null);
  const version = useReadAgain();
  const after = pages.at(-1) ?? null;
  const read = useRead();
  const load = useCallback(() => {
    read(
      () => gql(TASKS, { first: PAGE, after, filter: filterInput(filters) }),
      (d) => {
        setRows(d.tasks.edges.map((e: { node: TaskRow }) => e.node));
        setInfo({ total: d.tasks.totalCount, next: d.tasks.pageInfo.hasNextPage ? d.tasks.pageInfo.endCursor : null });
        setError(null);
      },
      setError,
    );
  }, [read, after, filters]);
  const reload = useThrottled(load, 700);
  useEffect(load, [load, version]);
  useChanges((change) => {
    const row = rows.find((r) => r.id === change.task.id);
    if (row) {
      setRows((current) =>
        current.map((r) => (r.id === change.task.id ? { ...r, status: change.toStatus, nextRunAt: change.task.nextRunAt } : r)),
      );
    } else if (change.type === 'CREATED' && after === null) {
      reload(); // a new task: on the first page, newest first
    }
  });
  const set = (name: keyof Filters) => (e: Event) => {
    setPages([null]);
    setFilters({ ...filters, [name]: (e.target as HTMLInputElement).value });
  };
  return (
    <section class="tasks">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <select value={filters.status} onChange={set('status')} name="status" aria-label="status">
          <option value="">any status</option>
          {STATUSES.map((s) => (
            <option value={s} key={s}>
              {s}
            </option>
          ))}
        </select>
        <input placeholder="template (fullName)" value={filters.fullName} onChange={set('fullName')} name="fullName" />
        <input placeholder="handler (funcName)" value={filters.funcName} onChange={set('funcName')} name="funcName" />
        <select value={filters.source} onChange={set('source')} name="source" aria-label="source">
          <option value="">any source</option>
          {SOURCES.map((s) => (
            <option value={s} key={s}>
              {s}
            </option>
          ))}
        </select>
        <label>
          start from <input type="datetime-local" value={filters.from} onChange={set('from')} name="from" />
        </label>
        <label>
          to <input type="datetime-local" value={filters.to} onChange={set('to')} name="to" />
        </label>
      </form>
      <ErrorLine error={error} />
      <table>
        <thead>
          <tr>
            <th>task</th>
            <th>template</th>
            <th>handler</th>
            <th>status</th>
            <th>next run</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id} data-task={t.id}>
              <td>
                <a href={`#/task/${t.id}`}>{t.id.slice(0, 8)}…</a> <small>{t.repeatType.toLowerCase()}</small>
              </td>
              <td>{t.fullName}</td>
              <td>
                <code>{t.funcName}</code>
              </td>
              <td data-testid="status">
                <Status value={t.status} />
              </td>
              <td>{when(t.nextRunAt)}</td>
              <td>
                <TaskActions task={t} onDone={load} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        <span>
          {info.total} task{info.total === 1 ? '' : 's'}
        </span>
        <button type="button" disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>
          Previous
        </button>
        <button type="button" disabled={!info.next} onClick={() => setPages([...pages, info.next])}>
          Next
        </button>
      </div>
    </section>
  );
}

// ---------------------------------------------------------------- create from a template

function CreateTask() {
  const [templates, setTemplates] = useState<{ fullName: string; title: string }[]>([]);
  const [form, setForm] = useState({ fullName: '', startTime: '', argDict: '' });
  // What the last creation said (its id, or its error), and the templates read's error: apart, so that a
  // read that passes clears only its own error.
  const [message, setMessage] = useState<unknown>(null);
  const [readError, setReadError] = useState<unknown>(null);
  const version = useReadAgain();
  const read = useRead();
  useEffect(() => {
    read(
      () => gql('{ taskTemplates { fullName title } }'),
      (d) => {
        setTemplates(d.taskTemplates);
        setReadError(null);
      },
      setReadError,
    );
  }, [read, version]);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const input: Record<string, unknown> = {
        fullName: form.fullName,
        startTime: form.startTime ? new Date(form.startTime).toISOString() : new Date().toISOString(),
      };
      if (form.argDict.trim()) input.argDict = JSON.parse(form.argDict);
      const d = await gql('mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }', { input });
      setMessage(`created ${d.createTimerTask.id}`);
    } catch (error) {
      setMessage(error);
    }
  };
  return (
    <details class="create">
      <summary>Create a task from a template</summary>
      <form onSubmit={submit}>
        <select
          required
          value={form.fullName}
          onChange={(e) => setForm({ ...form, fullName: (e.target as HTMLSelectElement).value })}
          name="template"
        >
          <option value="">template…</option>
          {templates.map((t) => (
            <option value={t.fullName} key={t.fullName}>
              {t.fullName} — {t.title}
            </option>
          ))}
        </select>
        <label>
          start{' '}
          <input
            type="datetime-local"
            value={form.startTime}
            onChange={(e) => setForm({ ...form, startTime: (e.target as HTMLInputElement).value })}
          />
        </label>
        <input
          placeholder='argDict, e.g. {"path": "/tmp"}'
          value={form.argDict}
          onInput={(e) => setForm({ ...form, argDict: (e.target as HTMLInputElement).value })}
        />
        <button type="submit">Create</button>
      </form>
      {typeof message === 'string' ? <p class="ok">{message}</p> : <ErrorLine error={message} />}
      <ErrorLine error={readError} />
    </details>
  );
}

// ---------------------------------------------------------------- a task's page

const TASK = `query Task($id: ID!) {
  task(id: $id) {
    id fullName funcName taskType status source repeatType cronExpression intervalSeconds timezone startTime endTime maxRuns runCount
    nextRunAt priority queue maxAttempts argDict lastError
    upcomingRuns(count: 5) { at local offset note }
  }
  taskRuns(last: 20, filter: { taskId: $id }) { totalCount edges { node { id attempt status workerId startedAt durationMs result error } } }
  runLogs(last: 50, filter: { taskId: $id }) { totalCount edges { node { id level message createdAt run { attempt } } } }
  taskEvents(last: 50, filter: { taskId: $id }) { totalCount edges { node { cursor type fromStatus toStatus message actor createdAt } } }
}`;

function TaskPage({ id }: { id: string }) {
  // biome-ignore lint/suspicious/noExplicitAny: the shape is TASK's.
  const [data, setData] = useState<any>(null);
  const [error, setError] = useState<unknown>(null);
  const version = useReadAgain();
  const read = useRead();
  const load = useCallback(() => {
    read(
      () => gql(TASK, { id }),
      (d) => {
        setData(d);
        setError(null);
      },
      setError,
    );
  }, [read, id]);
  const reload = useThrottled(load, 300);
  useEffect(load, [load, version]);
  useChanges((change) => {
    if (change.task.id === id) reload();
  });
  const task = data?.task;
  if (!task) return <section>{error ? <ErrorLine error={error} /> : data ? <p>No task {id} in this tenant.</p> : <p>Loading…</p>}</section>;
  const schedule =
    task.repeatType === 'CRON'
      ? `cron ${task.cronExpression} (${task.timezone})`
      : task.repeatType === 'INTERVAL'
        ? `every ${task.intervalSeconds} s`
        : `once at ${when(task.startTime)}`;
  return (
    <section class="task-page">
      <h2>
        {task.fullName} <Status value={task.status} />
      </h2>
      <p>
        <code>{task.id}</code> · handler <code>{task.funcName}</code> · {task.source.toLowerCase()} · priority {task.priority} · queue{' '}
        {task.queue}
      </p>
      <TaskActions task={task} onDone={load} />
      <ErrorLine error={error} />
      <div class="grid">
        <div>
          <h3>Schedule</h3>
          <p>
            {schedule}
            {task.endTime && `, until ${when(task.endTime)}`}
            {task.maxRuns != null && `, ${task.maxRuns} runs at most`} · {task.runCount} run(s) done · next {when(task.nextRunAt)}
          </p>
          <h3>Upcoming runs</h3>
          <ul data-testid="upcoming">
            {(task.upcomingRuns ?? []).map((r: { at: string; local: string; offset: string; note: string | null }) => (
              <li key={r.at}>
                {r.local} ({r.offset}){r.note && <small> — {r.note}</small>}
              </li>
            ))}
            {task.upcomingRuns?.length === 0 && <li>none</li>}
          </ul>
          <h3>Arguments</h3>
          <pre>{JSON.stringify(task.argDict, null, 2)}</pre>
          <Reschedule id={task.id} onDone={load} />
          <EditTask task={task} onDone={load} />
        </div>
        <div>
          <h3>Runs ({data.taskRuns.totalCount})</h3>
          <table data-testid="runs">
            <tbody>
              {data.taskRuns.edges.map(
                ({
                  node: r,
                }: {
                  node: {
                    id: string;
                    attempt: number;
                    status: string;
                    startedAt: string;
                    durationMs: number | null;
                    result: unknown;
                    error: string | null;
                  };
                }) => (
                  <tr key={r.id}>
                    <td>#{r.attempt}</td>
                    <td>
                      <Status value={r.status} />
                    </td>
                    <td>{when(r.startedAt)}</td>
                    <td>{r.durationMs != null ? `${r.durationMs} ms` : '…'}</td>
                    <td>
                      <code>{r.error ?? JSON.stringify(r.result)}</code>
                    </td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
          <h3>Logs ({data.runLogs.totalCount})</h3>
          <pre class="logs">
            {data.runLogs.edges
              .map(
                ({ node: l }: { node: { createdAt: string; level: string; message: string; run: { attempt: number } } }) =>
                  `${when(l.createdAt)} #${l.run.attempt} ${l.level.padEnd(5)} ${l.message}`,
              )
              .join('\n') || 'none'}
          </pre>
          <h3>Events ({data.taskEvents.totalCount})</h3>
          <ol class="events" data-testid="events">
            {data.taskEvents.edges.map(
              ({
                node: e,
              }: {
                node: {
                  cursor: string;
                  type: string;
                  fromStatus: string | null;
                  toStatus: string;
                  message: string | null;
                  actor: string | null;
                  createdAt: string;
                };
              }) => (
                <li key={e.cursor}>
                  {when(e.createdAt)} {e.fromStatus ?? '∅'} → <Status value={e.toStatus} /> <small>{e.type}</small> {e.message}
                  {e.actor && <small> · {e.actor}</small>}
                </li>
              ),
            )}
          </ol>
        </div>
      </div>
    </section>
  );
}

function Reschedule({ id, onDone }: { id: string; onDone: () => void }) {
  const [at, setAt] = useState('');
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        gql('mutation($id: ID!, $at: String!) { rescheduleTask(taskId: $id, startTime: $at) { id } }', {
          id,
          at: new Date(at).toISOString(),
        })
          .then(() => {
            setError(null);
            onDone();
          })
          .catch(setError);
      }}
    >
      <label>
        reschedule to <input type="datetime-local" required value={at} onChange={(e) => setAt((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit">Reschedule</button>
      <ErrorLine error={error} />
    </form>
  );
}

// biome-ignore lint/suspicious/noExplicitAny: the task as TASK reads it.
function EditTask({ task, onDone }: { task: any; onDone: () => void }) {
  const initial = useMemo(
    () => ({
      cronExpression: task.cronExpression ?? '',
      intervalSeconds: task.intervalSeconds?.toString() ?? '',
      timezone: task.timezone ?? '',
      priority: String(task.priority),
      argDict: JSON.stringify(task.argDict),
    }),
    [task],
  );
  const [form, setForm] = useState(initial);
  const [message, setMessage] = useState<unknown>(null);
  useEffect(() => setForm(initial), [initial]);
  const field = (name: keyof typeof form) => ({
    value: form[name],
    name,
    onInput: (e: Event) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value }),
  });
  const submit = async (e: Event) => {
    e.preventDefault();
    const patch: Record<string, unknown> = {};
    if (form.cronExpression !== initial.cronExpression) patch.cronExpression = form.cronExpression;
    if (form.intervalSeconds !== initial.intervalSeconds) patch.intervalSeconds = Number(form.intervalSeconds);
    if (form.timezone !== initial.timezone) patch.timezone = form.timezone;
    if (form.priority !== initial.priority) patch.priority = Number(form.priority);
    try {
      if (form.argDict !== initial.argDict) patch.argDict = JSON.parse(form.argDict);
      await gql('mutation($id: ID!, $patch: TaskPatch!) { updateTask(taskId: $id, patch: $patch) { id } }', { id: task.id, patch });
      setMessage('saved');
      onDone();
    } catch (error) {
      setMessage(error);
    }
  };
  if (!['SCHEDULED', 'RETRYING', 'PAUSED', 'RUNNING'].includes(task.status)) return null;
  return (
    <details class="edit">
      <summary>Edit</summary>
      <form onSubmit={submit}>
        {task.repeatType === 'CRON' && (
          <label>
            cron <input {...field('cronExpression')} />
          </label>
        )}
        {task.repeatType === 'INTERVAL' && (
          <label>
            every (s) <input type="number" {...field('intervalSeconds')} />
          </label>
        )}
        <label>
          timezone <input {...field('timezone')} />
        </label>
        <label>
          priority <input type="number" {...field('priority')} />
        </label>
        <label>
          argDict <input {...field('argDict')} />
        </label>
        <button type="submit">Save</button>
      </form>
      {typeof message === 'string' ? <p class="ok">{message}</p> : <ErrorLine error={message} />}
    </details>
  );
}

// ---------------------------------------------------------------- date fields: records and their tasks

function Models() {
  const [models, setModels] = useState<{ name: string; title: string | null; recordCount: number }[]>([]);
  const [model, setModel] = useState('');
  // biome-ignore lint/suspicious/noExplicitAny: modelRecords' shape.
  const [records, setRecords] = useState<any[]>([]);
  const [error, setError] = useState<unknown>(null);
  const version = useReadAgain();
  const [recordsError, setRecordsError] = useState<unknown>(null);
  const readModels = useRead();
  const readRecords = useRead();
  useEffect(() => {
    readModels(
      () => gql('{ models { name title recordCount } }'),
      (d) => {
        setModels(d.models);
        setError(null);
        if (!model && d.models[0]) setModel(d.models[0].name);
      },
      setError,
    );
  }, [readModels, version]);
  const load = useCallback(() => {
    if (!model) return;
    readRecords(
      () =>
        gql(
          'query($model: String!) { modelRecords(model: $model, first: 50) { totalCount edges { node { id data tasks { id fullName status nextRunAt } } } } }',
          { model },
        ),
      (d) => {
        setRecords(d.modelRecords.edges.map((e: { node: unknown }) => e.node));
        setRecordsError(null);
      },
      setRecordsError,
    );
  }, [readRecords, model]);
  const reload = useThrottled(load, 700);
  useEffect(load, [load, version]);
  useChanges(reload);
  return (
    <section class="models">
      <label>
        model{' '}
        <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
          {models.map((m) => (
            <option value={m.name} key={m.name}>
              {m.name} ({m.recordCount})
            </option>
          ))}
        </select>
      </label>
      <ErrorLine error={error} />
      <ErrorLine error={recordsError} />
      {models.length === 0 && <p>No low-code models in this tenant yet (saveModel creates one).</p>}
      <table>
        <thead>
          <tr>
            <th>record</th>
            <th>data</th>
            <th>tasks</th>
          </tr>
        </thead>
        <tbody>
          {records.map((r) => (
            <tr key={r.id}>
              <td>
                <code>{r.id.slice(0, 8)}…</code>
              </td>
              <td>
                <code>{JSON.stringify(r.data)}</code>
              </td>
              <td>
                {r.tasks.map((t: { id: string; fullName: string; status: string; nextRunAt: string | null }) => (
                  <div key={t.id}>
                    <a href={`#/task/${t.id}`}>{t.fullName}</a> <Status value={t.status} /> {when(t.nextRunAt)}
                  </div>
                ))}
                {r.tasks.length === 0 && '—'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

// ---------------------------------------------------------------- the page

function App() {
  const route = useHashRoute();
  const task = /^#\/task\/([0-9a-f-]{36})$/i.exec(route)?.[1];
  return (
    <>
      <Header />
      <main>
        {task ? (
          <TaskPage id={task} key={task} />
        ) : route === '#/models' ? (
          <Models />
        ) : (
          <>
            <Overview />
            <CreateTask />
            <TaskList />
          </>
        )}
      </main>
    </>
  );
}

void startStream().then(() => render(<App />, document.getElementById('app')!));
