// The README's dashboard screenshots: `npx tsx scripts/dashboard-screenshots.ts` starts an instance on an
// in-memory PGlite with some work going on, opens the dashboard in Debian's chromium, and writes
// docs/images/dashboard-{tasks,task,date-fields}.png.
import path from 'node:path';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { launchIsolatedChromium } from '../test/support/chromium.js';

const OUT = path.resolve(import.meta.dirname, '../docs/images');
const KEY = 'screenshots-admin-key-0123456789abcdef';

async function main() {
  const config = loadConfig({ APP_DIR: 'app', LOG_LEVEL: 'warn', DATA_DIR: 'memory://', ADMIN_API_KEY: KEY, CONCURRENCY: '4' });
  const app = await Chronograph.create({
    config,
    setup(a) {
      a.handlers.register('demo.report', async (args: Record<string, unknown>, ctx) => {
        ctx.logger.info(`building report ${String(args.name)}`);
        await new Promise((r) => setTimeout(r, Number(args.ms ?? 800)));
        if (args.fail) throw new Error('the upstream API answered 503');
        ctx.logger.info('report sent');
        return { rows: 1280, name: args.name };
      });
    },
  });
  const { port } = await app.listen(0, '127.0.0.1');
  const browser = await launchIsolatedChromium();
  try {
    const templates = app.templateSvc.forTenant('default');
    await templates.create({
      fullName: 'tasks.Report',
      title: 'Daily report',
      funcName: 'demo.report',
      maxAttempts: 2,
      retryBackoffMs: 200,
    });
    await app.modelSvc.forTenant('default').saveModel({
      name: 'models.Contract',
      fields: [
        { name: 'expireDate', type: 'DATE' },
        { name: 'status', type: 'TEXT' },
      ],
    });
    await templates.create({
      fullName: 'tasks.ContractReminder',
      title: 'Contract reminder',
      repeatType: 'DATE_FIELD',
      funcName: 'chronograph.echo',
      dateField: {
        model: 'models.Contract',
        field: 'expireDate',
        offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
        timeOfDay: '09:00',
      },
    });
    const models = app.modelSvc.forTenant('default');
    for (const [date, status] of [
      ['2031-03-01', 'active'],
      ['2031-06-15', 'active'],
      ['2032-01-10', 'draft'],
    ] as const) {
      await models.createRecord('models.Contract', { expireDate: date, status });
    }
    const svc = app.taskSvc.forTenant('default');
    const now = Date.now();
    await svc.createTimerTask({
      fullName: 'tasks.Report',
      repeatType: 'CRON',
      cronExpression: '0 9 * * 1-5',
      timezone: 'Europe/Paris',
      argDict: { name: 'sales' },
    });
    await svc.createTimerTask({
      fullName: 'tasks.Report',
      repeatType: 'INTERVAL',
      intervalSeconds: 900,
      argDict: { name: 'stock', ms: 300 },
    });
    await svc.createTimerTask({
      fullName: 'tasks.Report',
      startTime: new Date(now + 86_400_000).toISOString(),
      argDict: { name: 'monthly' },
    });
    await svc.createTimerTask({
      fullName: 'tasks.Report',
      startTime: new Date(now).toISOString(),
      argDict: { name: 'broken', fail: true, ms: 100 },
    });

    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1400, height: 820 });
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.locator('input[name=apiKey]').fill(KEY);
    await page.getByRole('button', { name: 'Use key' }).click();
    for (let i = 0; i < 6; i++) {
      await svc.createTimerTask({
        fullName: 'tasks.Report',
        startTime: new Date(Date.now() + 500 + i * 400).toISOString(),
        argDict: { name: `batch-${i}`, ms: 1500 },
      });
    }
    await page.waitForTimeout(3500);
    await page.screenshot({ path: path.join(OUT, 'dashboard-tasks.png') });
    const interval = await app.db.prisma.task.findFirstOrThrow({ where: { intervalSeconds: 900 } });
    await page.goto(`http://127.0.0.1:${port}/dashboard/#/task/${interval.id}`);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(OUT, 'dashboard-task.png'), fullPage: true });
    await page.goto(`http://127.0.0.1:${port}/dashboard/#/models`);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(OUT, 'dashboard-date-fields.png') });
    console.log(`screenshots written to ${OUT}`);
  } finally {
    await browser.close();
    await app.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
