import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirLock, DataDirLockedError } from '../src/db/DataDirLock.js';
import { type InstanceProcess, startInstance } from './support/instanceProcess.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-lock-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const lockFile = (dir: string) => path.join(dir, 'chronograph.lock');
const noop = () => {};

/** A process that lives until killed, to stand for a holder whose pid is alive. */
function sleeper() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  return child;
}

describe('one process per PGlite data directory (DataDirLock)', () => {
  it('refuses a second holder, naming the first, and admits the next one after release', async () => {
    const dir = tempDir();
    const first = await DataDirLock.acquire(dir, noop);
    const refused = await DataDirLock.acquire(dir, noop).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as Error).message).toContain(`pid ${process.pid} on host ${os.hostname()}`);
    await first.release();
    const second = await DataDirLock.acquire(dir, noop);
    await second.release();
  });

  it('takes over a lock whose holder died, and one whose pid now belongs to another process', async () => {
    const dir = tempDir();
    const dead = sleeper();
    const deadPid = dead.pid!;
    dead.kill('SIGKILL');
    await new Promise((r) => dead.on('exit', r));
    const holder = {
      pid: deadPid,
      host: os.hostname(),
      bootId: null,
      processStart: null,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      nonce: 'dead',
    };
    writeFileSync(lockFile(dir), JSON.stringify(holder));
    const lock = await DataDirLock.acquire(dir, noop);
    await lock.release();

    const alive = sleeper();
    try {
      // The pid is alive, but its start time is not the one recorded: the pid was reused.
      writeFileSync(lockFile(dir), JSON.stringify({ ...holder, pid: alive.pid, processStart: '1', nonce: 'reused' }));
      const reused = await DataDirLock.acquire(dir, noop);
      await reused.release();
      // Same pid and start time: a live holder, refused.
      const stat = readFileSync(`/proc/${alive.pid}/stat`, 'utf8');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      writeFileSync(lockFile(dir), JSON.stringify({ ...holder, pid: alive.pid, processStart: start, nonce: 'live' }));
      await expect(DataDirLock.acquire(dir, noop)).rejects.toThrow(`pid ${alive.pid}`);
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('trusts a holder on another host while its heartbeat is fresh, and takes the lock over once it is old', async () => {
    const dir = tempDir();
    const foreign = {
      pid: 1,
      host: 'elsewhere.example',
      bootId: null,
      processStart: null,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      nonce: 'far',
    };
    writeFileSync(lockFile(dir), JSON.stringify(foreign));
    await expect(DataDirLock.acquire(dir, noop)).rejects.toThrow(/pid 1 on host elsewhere\.example \(last seen \d+ s ago/);
    writeFileSync(lockFile(dir), JSON.stringify({ ...foreign, heartbeatAt: new Date(Date.now() - 120_000).toISOString() }));
    const lock = await DataDirLock.acquire(dir, noop);
    await lock.release();
  });
});

describe('npm start on a data directory in use', () => {
  const processes: InstanceProcess[] = [];
  afterAll(() => processes.forEach((p) => p.child.kill('SIGKILL')));

  it('refuses to start with a message naming the holder, and restarts right after the holder was killed', async () => {
    const dir = tempDir();
    const start = (id: string) => {
      const p = startInstance(id, { DATA_DIR: dir, DATABASE_URL: '', SCHEDULER_ENABLED: 'false' });
      processes.push(p);
      return p;
    };
    const first = start('first');
    await first.listening;
    const second = start('second');
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`is in use by another Chronograph process: pid ${first.child.pid} on host ${os.hostname()}`);
    first.child.kill('SIGKILL');
    await first.exited;
    const third = start('third');
    await third.listening;
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  }, 120_000);
});
