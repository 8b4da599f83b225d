import type { MessagePort } from 'node:worker_threads';
import { toJson, toStorableText } from '../scheduler/toJson.js';
import { type HandlerContext, type HandlerLogFn, LeaseLostError, loadModuleHandler } from './HandlerRegistry.js';

/** One run, as the main thread sends it to a pooled thread (src/handlers/ThreadRunner.ts). */
export interface ThreadTask {
  url: string;
  exportName: string;
  args: Record<string, unknown>;
  task: Omit<HandlerContext['task'], 'scheduledFor'> & { scheduledFor: string };
  run: HandlerContext['run'];
  fencingToken: string;
  maxJsonBytes: number;
  /** The run's channel to the main thread: logs and lease checks go up, aborts come down. */
  port: MessagePort;
}

/** Handler errors and results travel as plain data; only a thread that dies makes the pool's promise reject. */
export type ThreadOutcome =
  | { kind: 'ok'; value: unknown }
  | { kind: 'error'; message: string; stack: string | null; name: string; retryable: boolean };

export type ToMain =
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string; data: unknown }
  | { type: 'assertLease'; id: number };
export type ToThread = { type: 'abort'; reason: string } | { type: 'lease'; id: number; error: string | null };

/** Piscina's entry point: loads the handler from its module (cached per thread) and runs it with a context built here. */
export default async function runInThread(input: ThreadTask): Promise<ThreadOutcome> {
  const { port } = input;
  const controller = new AbortController();
  const leaseChecks = new Map<number, (error: string | null) => void>();
  let nextId = 0;
  port.on('message', (message: ToThread) => {
    if (message.type === 'abort') controller.abort(new Error(message.reason));
    else leaseChecks.get(message.id)?.(message.error);
  });
  const post = (message: ToMain) => port.postMessage(message);
  const method =
    (level: 'debug' | 'info' | 'warn' | 'error'): HandlerLogFn =>
    (first: string | Record<string, unknown>, second?: string) => {
      const [data, message] = typeof first === 'string' ? [undefined, first] : [first, second ?? ''];
      const json = data === undefined ? null : toJson(data, 65_536, 'log data');
      post({
        type: 'log',
        level,
        message: toStorableText(String(message)),
        data: json == null ? null : json.ok ? json.value : { unstorable: json.error },
      });
    };
  const ctx: HandlerContext = {
    signal: controller.signal,
    logger: { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') },
    task: { ...input.task, scheduledFor: new Date(input.task.scheduledFor) },
    run: input.run,
    fencingToken: input.fencingToken,
    get taskSvc(): never {
      throw new Error(
        'ctx.taskSvc is not available in a worker thread: a service cannot cross into it; run the handler in-process to use it',
      );
    },
    assertLease: () =>
      new Promise<void>((resolve, reject) => {
        const id = nextId++;
        leaseChecks.set(id, (error) => {
          leaseChecks.delete(id);
          if (error == null) resolve();
          else reject(new LeaseLostError(error));
        });
        post({ type: 'assertLease', id });
      }),
  };
  try {
    const handler = await loadModuleHandler(input.url, input.exportName);
    const value = await handler(input.args, ctx);
    // Normalised here, so that what crosses back is plain JSON (or says why it is not).
    const json = toJson(value, input.maxJsonBytes);
    return json.ok
      ? { kind: 'ok', value: json.value }
      : { kind: 'error', name: 'TypeError', message: json.error, stack: null, retryable: true };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    // `retryable: false` (NonRetryableError) is what the scheduler reads, so it crosses explicitly.
    return {
      kind: 'error',
      name: e.name,
      message: e.message,
      stack: e.stack ?? null,
      retryable: (e as { retryable?: unknown }).retryable !== false,
    };
  } finally {
    port.close();
  }
}
