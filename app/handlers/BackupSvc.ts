import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { AppModule } from '../../src/index.js';

/**
 * The example app's handler, named as in the seed: `services.BackupSvc.backupDatabase` writes a JSON
 * snapshot of this Chronograph's templates and tasks (of the task's tenant) to
 * `<backup_path>/<database>-<time>.json[.gz]`. Replace or extend `app/` with your own handlers.
 */
const register: AppModule = (app) => {
  app.handlers.register(
    'services.BackupSvc.backupDatabase',
    async (args, ctx) => {
      const database = String(args.database ?? 'chronograph');
      const dir = path.resolve(String(args.backup_path ?? './data/backups'));
      const compress = args.compress === true;
      if (!/^[\w.-]+$/.test(database)) throw new Error('argDict.database must be a plain name');
      const tenantId = ctx.task.tenantId;
      const [templates, tasks] = await Promise.all([
        app.db.prisma.taskTemplate.findMany({ where: { tenantId } }),
        app.db.prisma.task.findMany({ where: { tenantId } }),
      ]);
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, `${database}-${new Date().toISOString().replace(/[:.]/g, '-')}.json${compress ? '.gz' : ''}`);
      const body = JSON.stringify({ database, tenantId, templates, tasks }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
      const source = Readable.from([body]);
      if (compress) await pipeline(source, createGzip(), createWriteStream(file), { signal: ctx.signal });
      else await pipeline(source, createWriteStream(file), { signal: ctx.signal });
      ctx.logger.info({ file, templates: templates.length, tasks: tasks.length }, 'backup written');
      return { file, templates: templates.length, tasks: tasks.length };
    },
    { description: 'Writes a JSON snapshot of the tenant\'s templates and tasks to argDict.backup_path.' },
  );
};

export default register;
