/**
 * The runs whose leases the heartbeat thread extends (LeaseKeeper.ts), in memory the main thread and
 * that thread share, instead of a message at every change. A message woke the thread each time a run
 * started or ended, on the path from a claim's answer to its handler's start (a seventh of that stretch
 * in a CPU profile on a 2-vCPU VM); the thread needs the list only when it beats, and reads it then.
 *
 * Layout: an Int32 version and an Int32 count, then `capacity` slots of two ids (task, run) of ID_BYTES
 * ASCII bytes each. The main thread is the only writer: it makes the version odd, writes, and makes it
 * even again (a sequence lock), so a reader that sees the same even version before and after its read
 * has read one whole list. A list longer than the buffer goes into a new, larger buffer, which the
 * thread is sent once (RunList.onGrow).
 */

/** Task and run ids are UUIDs in their text form. */
const ID_BYTES = 36;
const SLOT_BYTES = 2 * ID_BYTES;
const HEADER_BYTES = 8;

export interface Run {
  taskId: string;
  runId: string;
}

/** The writing side, on the main thread. */
export class RunList {
  private header!: Int32Array;
  private bytes!: Uint8Array;

  /** `onGrow` hands a new, larger buffer to the reader (it is called before the list is written there). */
  constructor(
    capacity: number,
    private readonly onGrow: (buffer: SharedArrayBuffer) => void = () => {},
  ) {
    this.allocate(Math.max(1, capacity));
  }

  get buffer(): SharedArrayBuffer {
    return this.bytes.buffer as SharedArrayBuffer;
  }

  set(runs: readonly Run[]): void {
    // Checked before the version turns odd: a throw half-way would leave the list unreadable for good.
    for (const run of runs) {
      if (!isId(run.taskId) || !isId(run.runId)) throw new Error(`not a UUID: ${JSON.stringify(run)}`);
    }
    if (runs.length > this.capacity) {
      let capacity = this.capacity;
      while (capacity < runs.length) capacity *= 2;
      this.allocate(capacity);
      this.onGrow(this.buffer);
    }
    const { header, bytes } = this;
    Atomics.add(header, 0, 1); // odd: being written
    for (let i = 0; i < runs.length; i++) {
      const at = HEADER_BYTES + i * SLOT_BYTES;
      writeId(bytes, at, runs[i]!.taskId);
      writeId(bytes, at + ID_BYTES, runs[i]!.runId);
    }
    Atomics.store(header, 1, runs.length);
    Atomics.add(header, 0, 1); // even: whole
  }

  private get capacity(): number {
    return (this.bytes.length - HEADER_BYTES) / SLOT_BYTES;
  }

  private allocate(capacity: number): void {
    const buffer = new SharedArrayBuffer(HEADER_BYTES + capacity * SLOT_BYTES);
    this.header = new Int32Array(buffer, 0, 2);
    this.bytes = new Uint8Array(buffer);
  }
}

/**
 * The list as it stands, read on the heartbeat thread; null when the writer was in the middle of a
 * change at every try (the caller reads again at its next beat). The writer never yields mid-change
 * (it runs to completion on its thread), so a retry or two is all it ever takes.
 */
export function readRuns(buffer: SharedArrayBuffer, tries = 100): Run[] | null {
  const header = new Int32Array(buffer, 0, 2);
  const bytes = new Uint8Array(buffer);
  for (let attempt = 0; attempt < tries; attempt++) {
    const before = Atomics.load(header, 0);
    if (before % 2 === 1) continue;
    const count = Atomics.load(header, 1);
    const runs: Run[] = [];
    for (let i = 0; i < count && HEADER_BYTES + (i + 1) * SLOT_BYTES <= bytes.length; i++) {
      const at = HEADER_BYTES + i * SLOT_BYTES;
      runs.push({ taskId: readId(bytes, at), runId: readId(bytes, at + ID_BYTES) });
    }
    if (Atomics.load(header, 0) === before) return runs;
  }
  return null;
}

/** An id that fits its slot: ID_BYTES characters of one byte each. */
function isId(id: string): boolean {
  return id.length === ID_BYTES && /^[\x20-\x7e]*$/.test(id);
}

function writeId(bytes: Uint8Array, at: number, id: string): void {
  for (let k = 0; k < ID_BYTES; k++) bytes[at + k] = id.charCodeAt(k);
}

function readId(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + ID_BYTES));
}
