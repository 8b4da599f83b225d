import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import fs from 'node:fs';
let syncs = 0;
class DurableNodeFS extends NodeFS {
  async init(pg, opts) {
    const r = await super.init(pg, opts);
    if (process.env.PATCH) r.emscriptenOpts.preRun = [...r.emscriptenOpts.preRun, (mod) => {
      mod.FS.filesystems.NODEFS.stream_ops.fsync = (stream) => { if (stream.nfd !== undefined) { fs.fsyncSync(stream.nfd); syncs++; } return 0; };
    }];
    return r;
  }
}
const dir = '/tmp/fsprobe2'; fs.rmSync(dir, { recursive: true, force: true });
try {
const db = await PGlite.create({ fs: new DurableNodeFS(dir), startParams: [...PGlite.defaultStartParams, ...(process.env.GUC ? ['-c', 'fsync=on', '-c', 'wal_sync_method=fsync'] : [])] });
console.log((await db.query("select name, setting from pg_settings where name in ('fsync','wal_sync_method','synchronous_commit')")).rows, 'syncs after start', syncs);
await db.query('create table t (id int)');
let s0 = syncs; const t0 = performance.now();
for (let i = 0; i < 200; i++) await db.query('insert into t values ($1)', [i]);
console.log('200 commits:', syncs - s0, 'fsyncs', ((performance.now() - t0) / 200).toFixed(3), 'ms/commit');
await db.close();
} catch (e) { console.log(e, e.stack); }
