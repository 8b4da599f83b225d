import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SqlRunner } from '../db/SqlPool.js';
import type { Logger } from '../logger.js';
import type { KeeperReport, LeaseKeeperThreadData } from './leaseKeeperThread.js';
import { type Run, RunList } from './sharedRuns.js';
import { EXTEND_LEASES_SQL, extendLeases } from './sql.js';

export type LeaseReport = { sentAt: number; asked: string[]; held: Set<string> };

export interface LeaseKeeperOptions {
  workerId: string;
  leaseMs: number;
  /** How long the main thread may stay unresponsive before the heartbeat thread stops extending its leases. */
  watchdogMs: number;
  /** PostgreSQL: the heartbeat gets its own thread and connection. Absent (PGlite): it runs on the main thread. */
  databaseUrl?: string;
  sql: SqlRunner;
  logger: Logger;
  /** Called with each heartbeat's answer: which of the runs asked about still hold their lease. */
  onBeat: (report: LeaseReport) => void;
}

/**
 * Extends the leases of the runs this instance is executing, every LEASE_MS/4.
 *
 * On PostgreSQL the heartbeat does not depend on the main event loop: it runs in a worker thread with
 * its own connection (leaseKeeperThread.ts), so an in-process handler that blocks the loop for a few
 * seconds does not lose its lease and bounce between instances. A watchdog keeps that from hiding a
 * hung instance: the main thread stamps the time into shared memory several times per lease, and once
 * the stamp is older than LEASE_WATCHDOG_MS the thread stops extending, the leases run out, and other
 * instances recover the tasks (the attempt counts, so a handler that blocks for ever ends FAILED once
 * its attempts are used up). SIGSTOP freezes both threads, so a frozen instance loses its leases too.
 *
 * PGlite has one process and one connection: the heartbeat runs on the main thread, and nobody else can
 * take a task over anyway.
 */
export class LeaseKeeper {
  private runs: Run[] = [];
  /**
   * The runs as the heartbeat thread reads them (sharedRuns.ts), grown into a new buffer that the thread is
   * sent; only on PostgreSQL, where there is such a thread (on PGlite the heartbeat reads `runs`).
   */
  private readonly shared?: RunList;
  private worker?: Worker;
  private timer?: NodeJS.Timeout;
  private beating = false;
  private readonly ping = new Float64Array(new SharedArrayBuffer(8));
  /** The heartbeat thread warmUp started, for start to wait for. */
  private starting?: Promise<void>;
  /** Counts stop()s: a thread start that a stop overtook does not fall back to beating on the main thread. */
  private stops = 0;

  constructor(private readonly options: LeaseKeeperOptions) {
    if (options.databaseUrl) this.shared = new RunList(64, (buffer) => this.worker?.postMessage({ type: 'runs', buffer }));
  }

  get intervalMs(): number {
    return Math.max(25, Math.floor(this.options.leaseMs / 4));
  }

  /**
   * Starts the heartbeat thread ahead of start() (on PostgreSQL; nothing on PGlite): its start, about a
   * quarter of a second (loading the driver, connecting), then overlaps the rest of the instance's start
   * instead of following it. Its heartbeats do nothing while no run exists, and none can before start().
   */
  warmUp(): void {
    if (!this.options.databaseUrl || this.worker || this.starting) return;
    this.starting = this.launch(this.options.databaseUrl);
    // A failure is start()'s to report; a stop() before it leaves nobody waiting.
    this.starting.catch(() => {});
  }

  /** Resolves once heartbeats run: on PostgreSQL, once the thread is connected (or, failing that, on the main thread). */
  async start(): Promise<void> {
    this.alive();
    const { databaseUrl } = this.options;
    if (!databaseUrl) {
      this.timer = setInterval(() => void this.beatHere(), this.intervalMs);
      return;
    }
    const starting = this.starting ?? this.launch(databaseUrl);
    this.starting = undefined;
    await starting;
  }

  /** Starts the thread and resolves once it is connected; when it cannot start, heartbeats run on the main thread. */
  private async launch(url: string): Promise<void> {
    const stops = this.stops;
    const workerData: LeaseKeeperThreadData = {
      url,
      workerId: this.options.workerId,
      leaseMs: this.options.leaseMs,
      intervalMs: this.intervalMs,
      watchdogMs: this.options.watchdogMs,
      sql: EXTEND_LEASES_SQL,
      ping: this.ping.buffer as SharedArrayBuffer,
      runs: this.shared!.buffer,
    };
    const worker = startThread(workerData);
    this.worker = worker;
    let started = false;
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (report: KeeperReport) => {
        if (report.type === 'ready') {
          started = true;
          resolve();
        } else if (report.type === 'failed' && !started) {
          // Its first connection failed: heartbeats go to the main thread now, not after the 30 s below.
          reject(new Error(`the heartbeat thread could not connect: ${report.error}`));
        } else this.received(report);
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the heartbeat thread exited with code ${code}`)));
      setTimeout(() => reject(new Error('the heartbeat thread did not start within 30 s')), 30_000).unref();
    });
    worker.on('error', (error) => this.options.logger.error({ err: error }, 'the heartbeat thread failed'));
    worker.unref();
    try {
      await ready;
    } catch (error) {
      // Stopped meanwhile (an instance whose start failed after warmUp): nothing to fall back to.
      if (stops !== this.stops) return;
      // Leases must be extended somehow: on the main thread, like on PGlite, without the blocked-loop protection.
      this.options.logger.error({ err: error }, 'the heartbeat thread could not start; heartbeats run on the main thread');
      this.worker = undefined;
      void worker.terminate();
      this.timer = setInterval(() => void this.beatHere(), this.intervalMs);
    }
  }

  /** The main thread's sign of life for the watchdog; the Scheduler calls it from its lease guard. */
  alive(): void {
    this.ping[0] = Date.now();
  }

  /** The runs whose leases to extend (all that this instance is executing). */
  update(runs: Run[]): void {
    this.runs = runs;
    this.shared?.set(runs);
  }

  async stop(): Promise<void> {
    this.stops++;
    this.starting = undefined;
    clearInterval(this.timer);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) {
      worker.postMessage({ type: 'stop' });
      await worker.terminate();
    }
  }

  private received(report: KeeperReport) {
    if (report.type === 'beat') this.options.onBeat({ sentAt: report.sentAt, asked: report.asked, held: new Set(report.held) });
    else if (report.type === 'blocked')
      this.options.logger.warn(
        { blockedMs: report.ms },
        'the main thread was unresponsive past LEASE_WATCHDOG_MS; its leases were not extended',
      );
    else if (report.type === 'failed')
      this.options.logger.warn({ error: report.error }, 'heartbeat failed; handlers are stopped if their lease cannot be extended in time');
  }

  private async beatHere() {
    if (this.beating || this.runs.length === 0) return;
    this.beating = true;
    const asked = this.runs;
    const sentAt = Date.now();
    try {
      const held = await extendLeases(this.options.sql, this.options.workerId, asked, this.options.leaseMs);
      this.options.onBeat({ sentAt, asked: asked.map((r) => r.runId), held });
    } catch (error) {
      this.options.logger.warn({ err: error }, 'heartbeat failed; handlers are stopped if their lease cannot be extended in time');
    } finally {
      this.beating = false;
    }
  }
}

/** From source the thread's module is TypeScript; threadBootstrap.cjs loads it through tsx. */
function startThread(workerData: LeaseKeeperThreadData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./leaseKeeperThread.js', import.meta.url), { workerData });
  const entry = fileURLToPath(new URL('./leaseKeeperThread.ts', import.meta.url));
  return new Worker(new URL('./threadBootstrap.cjs', import.meta.url), {
    workerData: { ...workerData, entry },
    execArgv: ['--import', 'tsx'],
  });
}
