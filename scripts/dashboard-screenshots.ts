// Produces the README's dashboard screenshots (docs/images/dashboard-*.png): a Chronograph in
// development mode (no credential, loopback only) on an in-memory PGlite, some tasks, templates and a
// low-code model created through the GraphQL API, then Debian's chromium on the dashboard.
//   npm run screenshots:dashboard
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const OUT = path.resolve(import.meta.dirname, '../docs/images');
mkdirSync(OUT, { recursive: true });

const app = await Chronograph.create({ config: loadConfig({ ...process.env, DATA_DIR: 'memory://', APP_DIR: 'app', LOG_LEVEL: 'warn' }) });
const { port } = await app.listen(0, '127.0.0.1');
const base = `http://127.0.0.1:${port}`;

async function gql<T = unknown>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!;
}

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();
const create = (inputs: Record<string, unknown>[]) =>
  gql<{ createTimerTasks: { id: string; fullName: string }[] }>(
    'mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id fullName } }',
    {
      inputs,
    },
  );

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector('[data-live=live]');

  // Tasks created while the page watches, so that the sparklines have something to show.
  const { createTimerTasks: tasks } = await create([
    ...Array.from({ length: 8 }, (_, i) => ({ fullName: 'tasks.Echo', argDict: { n: i }, startTime: inSeconds(1 + i / 2) })),
    {
      fullName: 'tasks.Echo',
      funcName: 'chronograph.fail',
      argDict: { message: 'upstream answered 502' },
      maxAttempts: 2,
      retryBackoffMs: 500,
      startTime: inSeconds(1),
    },
    { fullName: 'tasks.Echo', funcName: 'chronograph.sleep', argDict: { ms: 60_000 }, startTime: inSeconds(2) },
    { fullName: 'tasks.DataBackup', repeatType: 'CRON', cronExpression: '0 2 * * *', timezone: 'Europe/Paris' },
    { fullName: 'tasks.Echo', repeatType: 'INTERVAL', intervalSeconds: 900, argDict: { report: 'queue depth' } },
  ]);
  const backup = tasks.find((t) => t.fullName === 'tasks.DataBackup')!;
  await gql('mutation($id: ID!) { runTaskNow(taskId: $id) { id } }', { id: backup.id });
  const paused = (await create([{ fullName: 'tasks.Echo', startTime: inSeconds(86_400) }])).createTimerTasks[0]!;
  await gql('mutation($id: ID!) { pauseTask(taskId: $id) { id } }', { id: paused.id });

  // A low-code model whose records drive DATE_FIELD tasks.
  await gql(`mutation { saveModel(input: { name: "models.Contract", title: "Contracts", fields: [
    { name: "customer", type: TEXT }, { name: "status", type: TEXT }, { name: "expireDate", type: DATE }] }) { name } }`);
  await gql(`mutation { createTaskTemplate(input: { fullName: "tasks.ContractReminder", title: "Contract reminder", repeatType: DATE_FIELD,
    funcName: "chronograph.echo", argDict: { template: "expiry" }, timezone: "Europe/Paris",
    dateField: { model: "models.Contract", field: "expireDate", offset: { amount: 3, unit: "DAYS", direction: "BEFORE" }, timeOfDay: "09:00" } }) { fullName } }`);
  const customers = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli'];
  await gql('mutation($records: [JSON!]!) { importModelRecords(model: "models.Contract", records: $records) { count } }', {
    records: customers.map((customer, i) => ({
      customer,
      status: 'active',
      expireDate: new Date(Date.now() + (20 + i * 17) * 86_400_000).toISOString().slice(0, 10),
    })),
  });

  await new Promise((resolve) => setTimeout(resolve, 8_000));
  await page.reload();
  await page.waitForSelector('[data-live=live]');
  await page.waitForSelector('tr[data-task-id] [data-status=RUNNING]');
  await page.waitForSelector('.runstats');
  await page.screenshot({ path: path.join(OUT, 'dashboard-overview.png') });

  await page.goto(`${base}/dashboard#/task/${backup.id}`);
  await page.waitForSelector('table.runs [data-run-id]');
  await page.screenshot({ path: path.join(OUT, 'dashboard-task.png') });

  await page.goto(`${base}/dashboard#/records`);
  await page.waitForSelector('tr[data-record-id]');
  await page.screenshot({ path: path.join(OUT, 'dashboard-date-fields.png') });
  console.log(`wrote ${OUT}/dashboard-{overview,task,date-fields}.png`);
} finally {
  await browser.close();
  await app.stop();
}
