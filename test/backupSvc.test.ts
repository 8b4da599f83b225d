import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const CREATE = 'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }';
const now = () => new Date().toISOString();

/** The example app (./app) as shipped: its backup handler writes under BACKUP_DIR and nowhere else. */
describe.each(backends)('services.BackupSvc.backupDatabase (%s)', (backend) => {
  let t: TestApp;
  let scratch: string;
  let backupDir: string;
  beforeAll(async () => {
    scratch = mkdtempSync(path.join(os.tmpdir(), 'chronograph-backup-'));
    backupDir = path.join(scratch, 'backups');
    t = await createTestApp(backend, { env: { APP_DIR: 'app', BACKUP_DIR: backupDir } });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('writes the snapshot under BACKUP_DIR', async () => {
    const { id } = ok(
      await t.gql(CREATE, {
        input: { fullName: 'tasks.DataBackup', startTime: now(), argDict: { backup_path: 'nightly', compress: false } },
      }),
    ).createTimerTask;
    const done = await t.app.taskSvc.waitForTask(id);
    expect(done.status).toBe('SUCCEEDED');
    expect(readdirSync(path.join(backupDir, 'nightly'))).toEqual([expect.stringMatching(/^main_db-.*\.json$/)]);
  });

  it.each([['../outside'], ['nightly/../../outside'], ['/etc'], [path.join(os.tmpdir(), 'elsewhere')]])(
    'refuses backup_path %s with INVALID_ARG_DICT and creates no task',
    async (backupPath) => {
      const before = await t.app.db.prisma.task.count();
      const result = await t.gql(CREATE, {
        input: { fullName: 'tasks.DataBackup', startTime: now(), argDict: { backup_path: backupPath } },
      });
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_ARG_DICT', field: 'argDict.backup_path' });
      expect(await t.app.db.prisma.task.count()).toBe(before);
    },
  );

  it('refuses a database name that is not a plain name', async () => {
    const result = await t.gql(CREATE, { input: { fullName: 'tasks.DataBackup', startTime: now(), argDict: { database: '../x' } } });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_ARG_DICT', field: 'argDict.database' });
  });

  it('fails the run, writing nothing, when a folder under BACKUP_DIR is a link that leads out', async () => {
    const outside = path.join(scratch, 'outside');
    mkdirSync(outside, { recursive: true });
    mkdirSync(backupDir, { recursive: true });
    symlinkSync(outside, path.join(backupDir, 'escape'));
    const { id } = ok(
      await t.gql(CREATE, {
        input: { fullName: 'tasks.DataBackup', startTime: now(), argDict: { backup_path: 'escape' }, maxAttempts: 1 },
      }),
    ).createTimerTask;
    const done = await t.app.taskSvc.waitForTask(id);
    expect(done.status).toBe('FAILED');
    expect(done.lastError).toMatch(/leads out of BACKUP_DIR/);
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(path.join(backupDir, 'escape'))).toBe(true);
  });
});
