import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import type { TaskSvc } from '../tasks/TaskSvc.js';

/** pino-style: `info('message')` or `info({ key: value }, 'message')`. */
export type HandlerLogFn = {
  (message: string): void;
  (data: Record<string, unknown>, message?: string): void;
};

/** Lines logged here go to the process log and are stored with the run (TaskRun.logs). */
export interface HandlerLogger {
  debug: HandlerLogFn;
  info: HandlerLogFn;
  warn: HandlerLogFn;
  error: HandlerLogFn;
}

/**
 * What a handler sees besides its `argDict`. In a worker thread it is rebuilt there, the same except
 * `taskSvc` (a service cannot cross into a thread).
 */
export interface HandlerContext {
  /**
   * Aborted on forced end, timeout, shutdown, and as soon as this instance learns that the run's lease
   * is gone or could not be extended in time; long handlers should pass it on or check it.
   */
  signal: AbortSignal;
  logger: HandlerLogger;
  /**
   * `occurrence` numbers the task's runs (1, 2, …) and stays the same across the retries of one
   * occurrence: `${task.id}:${task.occurrence}` is the key that makes a side effect idempotent.
   */
  task: {
    id: string;
    tenantId: string;
    fullName: string;
    funcName: string;
    taskType: string;
    attempt: number;
    maxAttempts: number;
    occurrence: number;
    /** When the occurrence was due; a retry's is the occurrence it retries, not the retry's own time. */
    scheduledFor: Date;
  };
  run: { id: string; recovered: boolean };
  /**
   * This attempt's fencing token, `<run id>:<attempt>`: one per attempt, never reused. Store it with a
   * side effect to tell which attempt did it; the lease it names is what `assertLease` checks.
   */
  fencingToken: string;
  /**
   * Resolves while this attempt still holds the task's lease (checked in the database, which also
   * extends it by a whole lease); throws LeaseLostError otherwise. Call it right before a side effect
   * that must not happen twice.
   */
  assertLease(): Promise<void>;
  /**
   * `services.TaskSvc` bound to this task's tenant (`task.tenantId`): tasks a handler creates or
   * changes stay in its tenant, and their events name the task as actor (`task:<id>`).
   */
  taskSvc: TaskSvc;
}

export type Handler = (args: Record<string, unknown>, ctx: HandlerContext) => unknown;

/**
 * Where a handler runs. `inProcess` (the default): on the instance's event loop — cheapest, but a
 * handler that blocks the loop or exhausts memory stalls or kills the instance. `thread`: in a pooled
 * worker thread with a heap limit; a thread that goes over it, crashes or will not stop is terminated
 * and its run recorded (MEMORY_LIMIT, CRASHED, TIMED_OUT), and the instance carries on.
 */
export type Isolation = 'inProcess' | 'thread';

/** A handler a worker thread can load: a module (file URL or path) and the name of the function it exports. */
export interface HandlerModule {
  module: string | URL;
  /** Default: the module's default export. */
  export?: string;
}

/**
 * Checks a task's arguments when the task is created, so bad ones are refused with a coded error
 * (throw a ChronographError, e.g. INVALID_ARG_DICT with `field: 'argDict.path'`) and nothing is written.
 */
export type ArgsCheck = (args: Record<string, unknown>) => void;

export interface HandlerOptions {
  description?: string;
  checkArgs?: ArgsCheck;
  /** Default: `thread` for a handler registered by module, `inProcess` for a function. */
  isolation?: Isolation;
  /** Heap limit of a thread running it, in MB; a task's or template's memoryLimitMb wins. */
  memoryLimitMb?: number;
  /** Time limit of a run when its task sets none. */
  timeoutMs?: number;
}

export interface HandlerInfo {
  name: string;
  description: string | null;
  isolation: Isolation;
  memoryLimitMb: number | null;
  timeoutMs: number | null;
}

export interface HandlerEntry {
  info: HandlerInfo;
  /** The function, for handlers registered as one; module handlers are loaded on first in-process use. */
  fn?: Handler;
  /** Where a worker thread loads it from: a file URL and an export name. */
  module?: { url: string; exportName: string };
  checkArgs?: ArgsCheck;
}

export class LeaseLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLostError';
  }
}

const NAME = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

/** Named handlers (`services.BackupSvc.backupDatabase`) that tasks call through their `funcName`. */
export class HandlerRegistry {
  private readonly handlers = new Map<string, HandlerEntry>();

  /**
   * Registers a function (runs in-process), or a module export (`{ module: new URL('./render.ts',
   * import.meta.url), export: 'render' }`) that can also run in a worker thread: functions cannot
   * cross into a thread, so a thread loads the handler from its module.
   */
  register(name: string, handler: Handler | HandlerModule, options: HandlerOptions = {}): this {
    if (!NAME.test(name)) throw new Error(`Handler name ${JSON.stringify(name)} must be a dotted identifier such as services.MySvc.run`);
    if (this.handlers.has(name)) throw new Error(`Handler ${name} is already registered`);
    const isFunction = typeof handler === 'function';
    const isolation = options.isolation ?? (isFunction ? 'inProcess' : 'thread');
    if (isFunction && isolation === 'thread') {
      throw new Error(
        `Handler ${name}: a function cannot run in a worker thread; register it by module: { module: new URL('./file.ts', import.meta.url), export: 'name' }`,
      );
    }
    if (options.memoryLimitMb != null && (!Number.isInteger(options.memoryLimitMb) || options.memoryLimitMb < 16)) {
      throw new Error(`Handler ${name}: memoryLimitMb must be a whole number of at least 16`);
    }
    const info: HandlerInfo = {
      name,
      description: options.description ?? null,
      isolation,
      memoryLimitMb: options.memoryLimitMb ?? null,
      timeoutMs: options.timeoutMs ?? null,
    };
    const checkArgs = options.checkArgs;
    if (isFunction) this.handlers.set(name, { info, fn: handler, checkArgs });
    else this.handlers.set(name, { info, module: { url: toFileUrl(handler.module), exportName: handler.export ?? 'default' }, checkArgs });
    return this;
  }

  /** Runs the handler's own argument check (HandlerOptions.checkArgs), if it has one. */
  checkArgs(name: string, args: Record<string, unknown>): void {
    this.handlers.get(name)?.checkArgs?.(args);
  }

  /** Registers every function of an object under `prefix.<key>`: `registerService('services.BackupSvc', svc)`. */
  registerService(prefix: string, service: object): this {
    const proto = Object.getPrototypeOf(service);
    const keys = new Set([...Object.keys(service), ...(proto && proto !== Object.prototype ? Object.getOwnPropertyNames(proto) : [])]);
    for (const key of keys) {
      const value = (service as Record<string, unknown>)[key];
      if (key !== 'constructor' && typeof value === 'function') this.register(`${prefix}.${key}`, value.bind(service) as Handler);
    }
    return this;
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  /** The handler as a function to call in this process (a module handler is imported on first call). */
  get(name: string): Handler | undefined {
    const entry = this.handlers.get(name);
    if (!entry) return undefined;
    if (entry.fn) return entry.fn;
    const { url, exportName } = entry.module!;
    return async (args, ctx) => (await loadModuleHandler(url, exportName))(args, ctx);
  }

  entry(name: string): HandlerEntry | undefined {
    return this.handlers.get(name);
  }

  /** Whether a worker thread can run it (it was registered by module). */
  canRunInThread(name: string): boolean {
    return this.handlers.get(name)?.module != null;
  }

  list(): HandlerInfo[] {
    return [...this.handlers.values()].map((h) => h.info).sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** Imports a handler module and returns the named export; shared by the main thread and worker threads. */
export async function loadModuleHandler(url: string, exportName: string): Promise<Handler> {
  const module = (await importModule(url)) as Record<string, unknown>;
  const fn = module[exportName];
  if (typeof fn !== 'function') throw new Error(`${fileURLToPath(url)} has no function export named ${exportName}`);
  return fn as Handler;
}

/**
 * A worker thread does not inherit the main thread's TypeScript loader (module hooks are per thread in
 * Node 20), so a TypeScript module is imported there through tsx's API.
 */
async function importModule(url: string): Promise<unknown> {
  if (isMainThread || !/\.[mc]?tsx?$/.test(url)) return import(url);
  let module = threadModules.get(url);
  if (!module) {
    module = import('tsx/esm/api').then(({ tsImport }) => tsImport(url, import.meta.url));
    threadModules.set(url, module);
  }
  return module;
}

/** Loaded once per thread, like import() caches them. */
const threadModules = new Map<string, Promise<unknown>>();

function toFileUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  return module.startsWith('file:') ? module : pathToFileURL(module).href;
}
