import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Who holds a data directory: enough to say so, and to tell a live holder from a dead one. */
interface Holder {
  pid: number;
  host: string;
  /** Linux: the boot the holder ran in and its start time in clock ticks, which tell a reused PID apart. */
  bootId: string | null;
  processStart: string | null;
  startedAt: string;
  /** Rewritten every HEARTBEAT_MS: the only sign of life a holder on another host can give. */
  heartbeatAt: string;
  nonce: string;
}

export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

const FILE = 'chronograph.lock';
const HEARTBEAT_MS = 10_000;
/** A holder on another host whose heartbeat is older than this is taken for dead. */
const FOREIGN_STALE_MS = 60_000;

/**
 * One process per PGlite data directory: PGlite is PostgreSQL inside one process, and two processes
 * writing the same files lose data. The lock is a file created exclusively (O_EXCL) holding the
 * holder's pid, host, boot id and process start time, like PostgreSQL's own postmaster.pid.
 *
 * A lock left behind by a killed process does not block a restart: on this host the holder is dead when
 * its pid is gone, or when the pid now belongs to another process (a different start time or boot: PID
 * reuse). A holder on another host (a shared volume) cannot be checked that way, so it rewrites its
 * heartbeat every 10 s and is taken for dead after 60 s without one. Taking a stale lock over renames
 * it away first (atomic), so of two processes racing for it one wins and the other is refused; a holder
 * that finds its lock file replaced anyway stops (onLost).
 *
 * Written here rather than with proper-lockfile, which decides staleness by mtime alone (a restart
 * right after a kill would wait) and cannot name the holder.
 */
export class DataDirLock {
  private timer?: NodeJS.Timeout;
  private beating = false;

  private constructor(
    private readonly file: string,
    private holder: Holder,
  ) {}

  static async acquire(dataDir: string, onLost: (why: string) => void): Promise<DataDirLock> {
    const file = path.join(path.resolve(dataDir), FILE);
    const me = currentHolder();
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await writeFile(file, JSON.stringify(me), { flag: 'wx' });
        const lock = new DataDirLock(file, me);
        lock.timer = setInterval(() => void lock.beat(onLost), HEARTBEAT_MS);
        lock.timer.unref();
        return lock;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const existing = await readHolder(file);
      if (existing === 'gone') continue;
      if (existing === 'unreadable') {
        // Being written by a process that is starting right now, or left half-written by a crash.
        if (Date.now() - (await mtime(file)) > 5_000) await takeOver(file, null);
        else await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const verdict = judge(existing);
      if (verdict.alive) throw new DataDirLockedError(lockedMessage(dataDir, existing, verdict.detail));
      await takeOver(file, existing.nonce);
    }
    throw new DataDirLockedError(`Could not lock DATA_DIR ${dataDir}: its lock file ${file} keeps changing (another process is starting?)`);
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    const current = await readHolder(this.file);
    if (typeof current === 'object' && current.nonce === this.holder.nonce) await unlink(this.file).catch(() => {});
  }

  /**
   * One heartbeat at a time: on a busy event loop the interval can fire again before the last one's file
   * operations finish, and two renames of the same temporary file would fail the second. A failed write
   * (a full disk, say) is tried again at the next beat; losing the lock is what the read detects.
   */
  private async beat(onLost: (why: string) => void) {
    if (this.beating) return;
    this.beating = true;
    try {
      await this.heartbeat(onLost);
    } catch {
      // tried again at the next beat
    } finally {
      this.beating = false;
    }
  }

  private async heartbeat(onLost: (why: string) => void) {
    const current = await readHolder(this.file);
    if (typeof current !== 'object' || current.nonce !== this.holder.nonce) {
      clearInterval(this.timer);
      onLost(`the lock file ${this.file} was removed or replaced by another process`);
      return;
    }
    this.holder = { ...this.holder, heartbeatAt: new Date().toISOString() };
    const temp = `${this.file}.${this.holder.nonce}.tmp`;
    await writeFile(temp, JSON.stringify(this.holder));
    await rename(temp, this.file);
  }
}

function currentHolder(): Holder {
  const now = new Date().toISOString();
  return {
    pid: process.pid,
    host: os.hostname(),
    bootId: bootId(),
    processStart: processStart(process.pid),
    startedAt: now,
    heartbeatAt: now,
    nonce: randomBytes(8).toString('hex'),
  };
}

function judge(holder: Holder): { alive: boolean; detail: string } {
  if (holder.host !== os.hostname()) {
    const ago = Date.now() - Date.parse(holder.heartbeatAt);
    return {
      alive: ago < FOREIGN_STALE_MS,
      detail: `last seen ${Math.round(ago / 1000)} s ago; a lock from another host is taken over after ${FOREIGN_STALE_MS / 1000} s without a heartbeat`,
    };
  }
  if (holder.bootId && holder.bootId !== bootId()) return { alive: false, detail: 'since rebooted' };
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return { alive: false, detail: 'process gone' };
  }
  const start = processStart(holder.pid);
  if (holder.processStart && start && start !== holder.processStart) return { alive: false, detail: 'pid reused by another process' };
  return { alive: true, detail: `running since ${holder.startedAt}` };
}

function lockedMessage(dataDir: string, holder: Holder, detail: string): string {
  return (
    `DATA_DIR ${dataDir} is in use by another Chronograph process: pid ${holder.pid} on host ${holder.host} (${detail}). ` +
    `The embedded database serves one process at a time; stop that one first, give this one another DATA_DIR, ` +
    `or use DATABASE_URL (PostgreSQL) to run several instances.`
  );
}

/** Moves a stale lock out of the way; only the process whose rename took the stale file goes on to create a new one. */
async function takeOver(file: string, staleNonce: string | null): Promise<void> {
  const aside = `${file}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = await readHolder(aside);
  if (staleNonce !== null && typeof moved === 'object' && moved.nonce !== staleNonce) {
    // We moved a fresh lock that a racing process had just taken: put it back (unless a third one was faster).
    await rename(aside, file).catch(() => {});
    return;
  }
  await unlink(aside).catch(() => {});
}

async function readHolder(file: string): Promise<Holder | 'gone' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const holder = JSON.parse(text) as Holder;
    return typeof holder.pid === 'number' && typeof holder.host === 'string' && typeof holder.nonce === 'string' ? holder : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

async function mtime(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.mtimeMs,
    () => 0,
  );
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks after boot); null where /proc does not exist. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
