// `npm run bench -- coldPath`: why a due-now create over HTTP costs what it does on this machine (issue 12,
// goal 2). The same work is timed run back to back (hot) and after a pause, as each job of `compare
// latency` runs (15 ms apart, and idle while its statement is in the database). On a small VM the pause
// can cost far more than the work: what the step reads is no longer in the processor's caches, so its
// time grows with the code and data it touches, not with the work it does. A busy pause (spinning on the
// clock, never yielding the processor) tells whether sleeping is what costs, or time alone.
//
// Three steps, in-process, no network and no database:
// - `chronograph execute`: graphql-js executing the createTimerTask mutation of `compare latency` on
//   Chronograph's schema (Pothos: scope auth, Prisma plugin), up to the resolver's call of TaskSvc (here a
//   function that only notes the time);
// - `bare graphql-js execute`: the same document on a schema of the same shape written in SDL, no plugins;
// - `JSON round trip`: JSON.stringify and JSON.parse of a task-sized object, a control that touches little code.
// Prints the median (µs) of BENCH_COLD_N runs (default 300) after each pause, and its ratio to the hot median.
import { setTimeout as sleep } from 'node:timers/promises';
import { buildSchema, execute, type GraphQLSchema, parse } from 'graphql';
import { schema as chronographSchema } from '../src/graphql/schema/index.js';

const N = Number(process.env.BENCH_COLD_N ?? 300);
/** Pauses before each run: idle (the process sleeps on a timer, as between jobs) or busy (it spins on the clock, never yielding the processor). */
const PAUSES: { ms: number; busy: boolean; label: string }[] = [
  { ms: 0, busy: false, label: 'hot' },
  { ms: 2, busy: false, label: '2 ms idle' },
  { ms: 15, busy: false, label: '15 ms idle' },
  { ms: 15, busy: true, label: '15 ms busy' },
];

const bareSchema = buildSchema(`
  scalar JSON
  scalar DateTime
  input TimerTaskInput { fullName: String! funcName: String startTime: DateTime argDict: JSON }
  type Task { id: ID! }
  type Query { ok: Boolean }
  type Mutation { createTimerTask(input: TimerTaskInput!): Task! }
`);
const document = parse(
  'mutation($args: JSON!) { createTimerTask(input: { fullName: "bench.Noop", funcName: "bench.latency", startTime: "2000-01-01T00:00:00Z", argDict: $args }) { id } }',
);
const task = { id: '01a24f19-2e23-71df-b365-10bdfe033863', tenantId: 'default', fullName: 'bench.Noop', status: 'RUNNING' };

/** One timed run: resolves with its µs. */
type Step = (i: number) => Promise<number>;

function executeUpToResolver(schema: GraphQLSchema, bare: boolean): Step {
  return async (i) => {
    let reached = 0;
    const createTimerTask = async () => {
      reached = performance.now();
      return task;
    };
    const contextValue = { identity: { role: 'ADMIN', actor: null }, tenantId: 'default', taskSvc: { createTimerTask } };
    const t0 = performance.now();
    const result = await execute({
      schema,
      document,
      rootValue: bare ? { createTimerTask } : undefined,
      variableValues: { args: { i } },
      contextValue,
    });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return (reached - t0) * 1000;
  };
}

const jsonRoundTrip: Step = async (i) => {
  const t0 = performance.now();
  const copy = JSON.parse(JSON.stringify({ ...task, argDict: { i }, createdAt: new Date(0) })) as { argDict: { i: number } };
  if (copy.argDict.i !== i) throw new Error('JSON round trip changed the object');
  return (performance.now() - t0) * 1000;
};

const steps: [string, Step][] = [
  ['chronograph execute', executeUpToResolver(chronographSchema, false)],
  ['bare graphql-js execute', executeUpToResolver(bareSchema, true)],
  ['JSON round trip', jsonRoundTrip],
];

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

console.log(`Median µs of ${N} runs after each pause; in brackets, ÷ the hot median`);
console.log(`${'step'.padEnd(26)}${PAUSES.map((p) => p.label.padStart(18)).join('')}`);
for (const [name, step] of steps) {
  // Warm-up: compiled and in the caches before the hot run.
  for (let i = 0; i < 2_000; i++) await step(i);
  const medians: number[] = [];
  for (const pause of PAUSES) {
    const samples: number[] = [];
    for (let i = 0; i < N; i++) {
      if (pause.busy) {
        const until = performance.now() + pause.ms;
        while (performance.now() < until);
      } else if (pause.ms > 0) await sleep(pause.ms);
      samples.push(await step(i));
    }
    medians.push(median(samples));
  }
  console.log(`${name.padEnd(26)}${medians.map((m) => `${m.toFixed(1)} (${(m / medians[0]!).toFixed(1)}×)`.padStart(18)).join('')}`);
}
