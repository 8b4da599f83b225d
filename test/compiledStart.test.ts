import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, post, root, startCommand } from './support/chronographProcess.js';

/**
 * `npm start` runs dist/main.js, compiled by `npm run build` (scripts/build.mjs). This starts that
 * build on a new DATA_DIR (copied from the PGlite template when the build made one) with the example
 * app, which is TypeScript and imports ../../src/index.js: its handler is there, and the error class it
 * throws is the running one (a refused backup_path is INVALID_ARG_DICT, not an internal error).
 */
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-compiled-'));
/** Every server started here: a test that fails half way must not leave one running after the run. */
const children = new Set<ReturnType<typeof spawn>>();
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts dist/main.js with `npm start`'s node options and resolves once it listens. */
async function startCompiled(options: { port: number; dataDir: string; appDir: string; logLevel: string; nodeEnv?: string }) {
  const child = spawn(process.execPath, startCommand(), {
    cwd: root,
    env: {
      ...process.env,
      NODE_ENV: options.nodeEnv ?? process.env.NODE_ENV,
      LOG_LEVEL: options.logLevel,
      PORT: String(options.port),
      DATA_DIR: options.dataDir,
      APP_DIR: options.appDir,
      BACKUP_DIR: path.join(options.dataDir, 'backups'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => output.includes('Chronograph is listening') && resolve());
    void exited.then((code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
  return { child, exited, output: () => output };
}

/** The "Chronograph is listening" log line of a process's output. */
function listening(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.includes('Chronograph is listening'));
  return line ? (JSON.parse(line) as Record<string, unknown>) : {};
}

describe('npm start (the compiled dist/main.js)', () => {
  it('starts a new PGlite DATA_DIR, loads the TypeScript app against the compiled modules, and restarts', async () => {
    const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: root, encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const port = await freePort();
    // NODE_ENV unset (empty), as `npm start` usually runs: the production server.
    const run = () => startCompiled({ port, dataDir, appDir: path.join(root, 'app'), logLevel: 'info', nodeEnv: '' });

    const first = await run();
    expect(listening(first.output())).toMatchObject({ nodeEnv: 'production' });
    if (existsSync(path.join(root, 'dist', 'pglite-template.json'))) {
      expect(first.output()).toContain('copied from the initialised template');
    }
    const handlers = await post(port, '{ handlers { name } }');
    expect(handlers.data.handlers.map((h: { name: string }) => h.name)).toContain('services.BackupSvc.backupDatabase');
    const refused = await post(
      port,
      `mutation { createTimerTask(input: { fullName: "tasks.DataBackup", startTime: "2099-01-01 10:00:00", argDict: { backup_path: "../out" } }) { id } }`,
    );
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_ARG_DICT' });
    const created = await post(
      port,
      `mutation { createTimerTask(input: { fullName: "tasks.DataBackup", startTime: "2099-01-01 10:00:00", argDict: { database: "main_db" } }) { id } }`,
    );
    expect(created.errors).toBeUndefined();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await run();
    expect(second.output()).not.toContain('new PGlite data directory');
    const task = await post(port, `query($id: ID!) { task(id: $id) { status } }`, { id: created.data.createTimerTask.id });
    expect(task.data.task).toEqual({ status: 'SCHEDULED' });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(readdirSync(dataDir)).toContain('PG_VERSION');
  }, 180_000);
});

describe('npm start with an app in TypeScript (src/boot/compileApp.ts)', () => {
  it('loads its compiled modules, which share their imports, keep import.meta.url and are compiled again when the app changes', async () => {
    // Inside the repository (test-artifacts/ is ignored by git), so that the app imports ../../../src/index.js.
    mkdirSync(path.join(root, 'test-artifacts'), { recursive: true }); // absent in a fresh clone
    const appDir = mkdtempSync(path.join(root, 'test-artifacts', 'compiled-app-'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-compiled-app-'));
    try {
      mkdirSync(path.join(appDir, 'handlers'), { recursive: true });
      mkdirSync(path.join(appDir, 'lib'));
      writeFileSync(path.join(appDir, 'lib', 'counter.ts'), 'export const registered: string[] = [];\n');
      const handler = (name: string) =>
        [
          `import { type AppModule, ChronographError } from '../../../src/index.js';`,
          `import { registered } from '../lib/counter.js';`,
          `const register: AppModule = (app) => {`,
          `  registered.push('${name}');`,
          '  const file = import.meta.url.split("/").slice(-2).join("_").replace(".", "_");',
          // The running ChronographError, not a second copy: what getElement throws is an instance of the imported class.
          `  let same = 'copy';`,
          `  try { app.getElement('no.such.element'); } catch (error) { if (error instanceof ChronographError) same = 'running'; }`,
          `  app.handlers.register(\`app.${name}.\${registered.join('_')}.\${file}.\${same}\`, (args) => args);`,
          '};',
          'export default register;',
        ].join('\n');
      writeFileSync(path.join(appDir, 'handlers', 'a.ts'), handler('a'));
      writeFileSync(path.join(appDir, 'handlers', 'b.ts'), handler('b'));
      const port = await freePort();
      const start = async () => {
        const { child, exited, output } = await startCompiled({ port, dataDir: dir, appDir, logLevel: 'debug' });
        const { data } = await post(port, '{ handlers { name } }');
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(output()).not.toContain('through tsx');
        return (data.handlers as { name: string }[]).map((h) => h.name).filter((n) => n.startsWith('app.'));
      };
      // One module instance of lib/counter.ts for both handler modules; import.meta.url names the source file.
      expect(await start()).toEqual(['app.a.a.handlers_a_ts.running', 'app.b.a_b.handlers_b_ts.running']);
      const [first] = readdirSync(path.join(appDir, 'node_modules', '.chronograph'));
      writeFileSync(path.join(appDir, 'lib', 'counter.ts'), "export const registered: string[] = ['changed'];\n");
      expect(await start()).toEqual(['app.a.changed_a.handlers_a_ts.running', 'app.b.changed_a_b.handlers_b_ts.running']);
      // Compiled again into a new directory; the copy of the earlier contents is gone.
      expect(readdirSync(path.join(appDir, 'node_modules', '.chronograph'))).not.toContain(first);
    } finally {
      rmSync(appDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('the bundled build (scripts/build.mjs)', () => {
  it('finds what lies beside its modules and starts its threads: GraphiQL, the dashboard, metrics, a large body, a thread handler', async () => {
    mkdirSync(path.join(root, 'test-artifacts'), { recursive: true });
    const appDir = mkdtempSync(path.join(root, 'test-artifacts', 'bundled-app-'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-bundled-'));
    try {
      mkdirSync(path.join(appDir, 'handlers'), { recursive: true });
      mkdirSync(path.join(appDir, 'workers'));
      mkdirSync(path.join(appDir, 'templates'));
      writeFileSync(
        path.join(appDir, 'handlers', 'double.ts'),
        [
          `import type { AppModule } from '../../../src/index.js';`,
          'const register: AppModule = (app) => {',
          `  app.handlers.register('app.double', { module: new URL('../workers/double.ts', import.meta.url), export: 'double' });`,
          '};',
          'export default register;',
        ].join('\n'),
      );
      writeFileSync(
        path.join(appDir, 'workers', 'double.ts'),
        [
          `import { isMainThread } from 'node:worker_threads';`,
          'export async function double(args: { n: number }) {',
          '  return { doubled: args.n * 2, inThread: !isMainThread };',
          '}',
        ].join('\n'),
      );
      writeFileSync(
        path.join(appDir, 'templates', 'double.json'),
        JSON.stringify({ fullName: 'tasks.Double', title: 'Double', funcName: 'app.double' }),
      );
      const port = await freePort();
      const { child, exited, output } = await startCompiled({ port, dataDir: dir, appDir, logLevel: 'info', nodeEnv: 'development' });
      try {
        // A NODE_ENV that is set is kept.
        expect(listening(output())).toMatchObject({ nodeEnv: 'development' });
        const base = `http://127.0.0.1:${port}`;
        // GraphiQL: the page, and an asset read from the installed package and from graphql/graphiql-client.js.
        const page = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
        expect(page.status).toBe(200);
        const html = await page.text();
        const client = /src="(\/graphiql\/[0-9a-f]{16}\/chronograph-graphiql\.js)"/.exec(html)?.[1];
        expect(client, html).toBeDefined();
        const asset = await fetch(`${base}${client}`);
        expect(asset.status).toBe(200);
        expect(await asset.text()).toContain('connectionParams');
        // The dashboard, from dashboard/dist.
        const dashboard = await fetch(`${base}/dashboard/`);
        expect(dashboard.status).toBe(200);
        expect(dashboard.headers.get('content-type')).toContain('text/html');
        // Metrics (prom-client, bundled).
        const metrics = await fetch(`${base}/metrics`);
        expect(metrics.status).toBe(200);
        expect(await metrics.text()).toContain('chronograph_');
        // A body over LARGE_BODY_BYTES is parsed in its own thread (jsonBodyWorker.js).
        const large = await post(port, 'query($pad: String!) { __type(name: $pad) { name } }', { pad: 'x'.repeat(400 * 1024) });
        expect(large).toEqual({ data: { __type: null } });
        // A thread handler runs in a pooled thread (handlers/threadWorker.js through piscina) and loads the app's module there.
        const created = await post(
          port,
          `mutation { createTimerTask(input: { fullName: "tasks.Double", startTime: "${new Date().toISOString()}", argDict: { n: 21 } }) { id } }`,
        );
        expect(created.errors).toBeUndefined();
        let task: { status: string; runs: { status: string; result: unknown }[] } | undefined;
        for (let i = 0; i < 300 && task?.status !== 'SUCCEEDED'; i++) {
          const { data } = await post(port, 'query($id: ID!) { task(id: $id) { status runs { status result } } }', {
            id: created.data.createTimerTask.id,
          });
          task = data.task;
          if (task?.status === 'FAILED') break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(task, output()).toEqual({ status: 'SUCCEEDED', runs: [{ status: 'SUCCEEDED', result: { doubled: 42, inThread: true } }] });
      } finally {
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
      }
    } finally {
      rmSync(appDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
