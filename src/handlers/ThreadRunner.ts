import { MessageChannel } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { HandlerContext } from './HandlerRegistry.js';
import type { ThreadOutcome, ThreadTask, ToMain, ToThread } from './threadWorker.js';

/** How a thread ended a run without the handler settling it: the run's status says which. */
export class ThreadDied extends Error {
  constructor(
    readonly status: 'MEMORY_LIMIT' | 'CRASHED' | 'TERMINATED',
    message: string,
  ) {
    super(message);
    this.name = 'ThreadDied';
  }
}

export interface ThreadRunOptions {
  url: string;
  exportName: string;
  args: Record<string, unknown>;
  memoryLimitMb: number;
  /** Aborting it terminates the thread at once (after the handler was asked to stop through ctx.signal). */
  kill: AbortSignal;
}

// The worker entry is TypeScript next to this file when run from source, JavaScript when compiled.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_FILE = new URL(FROM_SOURCE ? './threadWorker.ts' : './threadWorker.js', import.meta.url);
/** piscina is loaded with the first thread handler's run, not at start-up. */
let piscina: Promise<{ Piscina: typeof Piscina }> | undefined;

/**
 * Runs thread-isolated handlers in pools of worker threads (piscina): one pool per heap limit, since a
 * thread's limit (V8 resourceLimits) is fixed when it starts. Threads are started on demand and end
 * when idle. A run talks to the main thread over its own MessageChannel: log lines and lease checks go
 * up to the run's real context, and an abort of ctx.signal comes down to the handler's.
 *
 * A thread that goes over its heap limit, exits (process.exit in a thread ends only the thread) or
 * throws outside the handler's promise is replaced by the pool; its run rejects with ThreadDied.
 */
export class ThreadRunner {
  private readonly pools = new Map<number, Piscina<ThreadTask, ThreadOutcome>>();

  constructor(private readonly options: { maxThreads: number; maxJsonBytes: number }) {}

  async run(input: ThreadRunOptions, ctx: HandlerContext): Promise<unknown> {
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (message: ToMain) => {
      if (message.type === 'log') {
        if (message.data == null) ctx.logger[message.level](message.message);
        else ctx.logger[message.level](message.data as Record<string, unknown>, message.message);
      } else {
        ctx.assertLease().then(
          () => port1.postMessage({ type: 'lease', id: message.id, error: null } satisfies ToThread),
          (error: Error) => port1.postMessage({ type: 'lease', id: message.id, error: error.message } satisfies ToThread),
        );
      }
    });
    const onAbort = () =>
      port1.postMessage({ type: 'abort', reason: String((ctx.signal.reason as Error)?.message ?? 'aborted') } satisfies ToThread);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const task: ThreadTask = {
      url: input.url,
      exportName: input.exportName,
      args: input.args,
      task: { ...ctx.task, scheduledFor: ctx.task.scheduledFor.toISOString() },
      run: ctx.run,
      fencingToken: ctx.fencingToken,
      maxJsonBytes: this.options.maxJsonBytes,
      port: port2,
    };
    let outcome: ThreadOutcome;
    try {
      const pool = await this.pool(input.memoryLimitMb);
      outcome = await pool.run(task, { transferList: [port2], signal: input.kill });
    } catch (error) {
      throw died(error, input.memoryLimitMb);
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      port1.close();
    }
    if (outcome.kind === 'ok') return outcome.value;
    const error = Object.assign(new Error(outcome.message), { retryable: outcome.retryable });
    error.name = outcome.name;
    error.stack = outcome.stack ?? undefined;
    throw error;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  private async pool(memoryLimitMb: number): Promise<Piscina<ThreadTask, ThreadOutcome>> {
    let pool = this.pools.get(memoryLimitMb);
    if (!pool) {
      const { Piscina } = await (piscina ??= import('piscina'));
      pool = this.pools.get(memoryLimitMb); // made by a run that loaded piscina at the same time
      if (pool) return pool;
      pool = new Piscina<ThreadTask, ThreadOutcome>({
        filename: WORKER_FILE.href,
        // From source the thread's entry is TypeScript and needs tsx loaded; compiled, it is JavaScript, and
        // a handler module in TypeScript is imported through tsx's API when it is (HandlerRegistry), so a
        // thread does not start tsx's loader for nothing.
        execArgv: FROM_SOURCE ? ['--import', 'tsx'] : [],
        resourceLimits: { maxOldGenerationSizeMb: memoryLimitMb },
        minThreads: 0,
        maxThreads: this.options.maxThreads,
        idleTimeout: 30_000,
        concurrentTasksPerWorker: 1,
      });
      // A thread that dies between runs is the pool's business; errors of runs reach their callers.
      pool.on('error', () => {});
      this.pools.set(memoryLimitMb, pool);
    }
    return pool;
  }
}

function died(error: unknown, memoryLimitMb: number): ThreadDied {
  const e = error as { name?: string; code?: string; message?: string };
  if (e?.code === 'ERR_WORKER_OUT_OF_MEMORY')
    return new ThreadDied('MEMORY_LIMIT', `the handler's thread went over its ${memoryLimitMb} MB heap limit and was terminated`);
  if (e?.name === 'AbortError') return new ThreadDied('TERMINATED', 'the handler did not stop when asked and its thread was terminated');
  return new ThreadDied('CRASHED', `the handler's thread died: ${e?.message ?? String(error)}`);
}
