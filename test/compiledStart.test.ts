import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, post, root } from './support/chronographProcess.js';

/**
 * `npm start` runs dist/main.js, compiled by `npm run build` (scripts/build.mjs). This starts that
 * build on a new DATA_DIR (copied from the PGlite template when the build made one) with the example
 * app, which is TypeScript and imports ../../src/index.js: its handler is there, and the error class it
 * throws is the running one (a refused backup_path is INVALID_ARG_DICT, not an internal error).
 */
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-compiled-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('npm start (the compiled dist/main.js)', () => {
  it('starts a new PGlite DATA_DIR, loads the TypeScript app against the compiled modules, and restarts', async () => {
    const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: root, encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const port = await freePort();
    const run = async () => {
      const child = spawn(process.execPath, ['dist/main.js'], {
        cwd: root,
        env: {
          ...process.env,
          LOG_LEVEL: 'info',
          PORT: String(port),
          DATA_DIR: dataDir,
          APP_DIR: path.join(root, 'app'),
          BACKUP_DIR: path.join(dataDir, 'backups'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => output.includes('Chronograph is listening') && resolve());
        void exited.then((code) => reject(new Error(`exited with ${code}:\n${output}`)));
      });
      return { child, exited, output: () => output };
    };

    const first = await run();
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
