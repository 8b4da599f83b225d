import { createWriteStream } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { type AppModule, ChronographError } from '../../src/index.js';

/**
 * The example app's handler, named as in the seed: `services.BackupSvc.backupDatabase` writes a JSON
 * snapshot of this Chronograph's templates and tasks (of the task's tenant) to
 * `<BACKUP_DIR>/<backup_path>/<database>-<time>.json[.gz]`. Replace or extend `app/` with your own handlers.
 *
 * It writes only under BACKUP_DIR: `backup_path` is a folder inside it, and one that leads out of it
 * (`../..`, an absolute path elsewhere, a symbolic link pointing out) is refused with INVALID_ARG_DICT,
 * when the task is created and again when it runs.
 */
const register: AppModule = (app) => {
  const base = path.resolve(app.config.BACKUP_DIR);
  app.handlers.register(
    'services.BackupSvc.backupDatabase',
    async (args, ctx) => {
      const { database, dir } = backupTarget(base, args);
      const compress = args.compress === true;
      const tenantId = ctx.task.tenantId;
      const [templates, tasks] = await Promise.all([
        app.db.prisma.taskTemplate.findMany({ where: { tenantId } }),
        // The task list's where (every status named): task has no index led by tenant_id, only (status, tenant_id).
        app.db.prisma.task.findMany({ where: app.taskSvc.forTenant(tenantId).taskWhere() }),
      ]);
      await mkdir(dir, { recursive: true });
      // The folder exists now: where it really is, after symbolic links, must still be under BACKUP_DIR.
      await mkdir(base, { recursive: true });
      if (!inside(await realpath(base), await realpath(dir))) throw escapes(String(args.backup_path));
      const file = path.join(dir, `${database}-${new Date().toISOString().replace(/[:.]/g, '-')}.json${compress ? '.gz' : ''}`);
      const body = JSON.stringify({ database, tenantId, templates, tasks }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
      const source = Readable.from([body]);
      if (compress) await pipeline(source, createGzip(), createWriteStream(file), { signal: ctx.signal });
      else await pipeline(source, createWriteStream(file), { signal: ctx.signal });
      ctx.logger.info({ file, templates: templates.length, tasks: tasks.length }, 'backup written');
      return { file, templates: templates.length, tasks: tasks.length };
    },
    {
      description: "Writes a JSON snapshot of the tenant's templates and tasks to argDict.backup_path, a folder under BACKUP_DIR.",
      checkArgs: (args) => void backupTarget(base, args),
    },
  );
};

/** The database name and the folder to write to, or INVALID_ARG_DICT naming the argument at fault. */
function backupTarget(base: string, args: Record<string, unknown>): { database: string; dir: string } {
  const database = args.database ?? 'chronograph';
  if (typeof database !== 'string' || !/^[\w.-]{1,100}$/.test(database)) {
    throw new ChronographError('INVALID_ARG_DICT', 'argDict.database must be a plain name such as main_db (letters, digits, . - _)', {
      field: 'argDict.database',
    });
  }
  const folder = args.backup_path ?? '';
  if (typeof folder !== 'string')
    throw new ChronographError('INVALID_ARG_DICT', 'argDict.backup_path must be a folder name', { field: 'argDict.backup_path' });
  const dir = path.resolve(base, folder);
  if (!inside(base, dir)) throw escapes(folder);
  return { database, dir };
}

function inside(base: string, target: string): boolean {
  const relative = path.relative(base, target);
  return relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function escapes(folder: string): ChronographError {
  return new ChronographError(
    'INVALID_ARG_DICT',
    `argDict.backup_path ${JSON.stringify(folder)} leads out of BACKUP_DIR; backups are written only under it`,
    {
      field: 'argDict.backup_path',
    },
  );
}

export default register;
