import fs from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';

/**
 * PGlite starts PostgreSQL with fsync off (`-F`), and its Node file system (Emscripten's NODEFS) has no
 * fsync at all: fdatasync is a no-op and fsync does nothing without a `stream_ops.fsync`. A commit was
 * written to the operating system's cache and no further, so it survived the process dying but not the
 * machine (a power cut, a kernel panic, a VM stopped): the last seconds of acknowledged tasks, runs and
 * events could be lost, or a checkpoint's pages written while the WAL before them was not.
 *
 * On a data directory Chronograph turns fsync on and syncs WAL with fsync() (fdatasync cannot be
 * reached), and gives NODEFS the fsync that does it: each commit waits for its WAL on disk, as on
 * PostgreSQL, and a checkpoint for its pages. It costs a disk flush per commit (about 0.4 ms here); a
 * claim or a completion commits for a whole batch. `memory://` keeps nothing anyway and is left alone.
 */
export const DURABLE_START_PARAMS = ['-c', 'fsync=on', '-c', 'wal_sync_method=fsync'];

/** Gives the NODEFS of a started PGlite the fsync PostgreSQL's calls reach (see DURABLE_START_PARAMS). */
export function syncToDisk(pglite: PGlite): void {
  const nodefs = pglite.Module.FS.filesystems.NODEFS as { stream_ops: { fsync?: (stream: { nfd?: number }) => number } };
  // Every NODEFS node shares this object: files PostgreSQL has open already get it too.
  nodefs.stream_ops.fsync = (stream) => {
    // A directory has no descriptor of its own here (NODEFS opens only files).
    if (stream.nfd !== undefined) fs.fsyncSync(stream.nfd);
    return 0;
  };
}
