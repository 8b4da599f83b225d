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

import type { TaskSvc } from '../tasks/TaskSvc.js';

/** What a handler sees besides its `argDict`. */
export interface HandlerContext {
  /** Aborted on forced end, timeout or shutdown; long handlers should pass it on or check it. */
  signal: AbortSignal;
  logger: HandlerLogger;
  task: { id: string; tenantId: string; fullName: string; funcName: string; taskType: string; attempt: number; maxAttempts: number; scheduledFor: Date };
  run: { id: string; recovered: boolean };
  /**
   * `services.TaskSvc` bound to this task's tenant (`task.tenantId`): tasks a handler creates or
   * changes stay in its tenant, and their events name the task as actor (`task:<id>`).
   */
  taskSvc: TaskSvc;
}

export type Handler = (args: Record<string, unknown>, ctx: HandlerContext) => unknown;

/**
 * Checks a task's arguments when the task is created, so bad ones are refused with a coded error
 * (throw a ChronographError, e.g. INVALID_ARG_DICT with `field: 'argDict.path'`) and nothing is written.
 */
export type ArgsCheck = (args: Record<string, unknown>) => void;

export interface HandlerOptions {
  description?: string;
  checkArgs?: ArgsCheck;
}

export interface HandlerInfo {
  name: string;
  description: string | null;
}

const NAME = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

/** Named handlers (`services.BackupSvc.backupDatabase`) that tasks call through their `funcName`. */
export class HandlerRegistry {
  private readonly handlers = new Map<string, { fn: Handler; info: HandlerInfo; checkArgs?: ArgsCheck }>();

  register(name: string, fn: Handler, options: HandlerOptions = {}): this {
    if (!NAME.test(name)) throw new Error(`Handler name ${JSON.stringify(name)} must be a dotted identifier such as services.MySvc.run`);
    if (this.handlers.has(name)) throw new Error(`Handler ${name} is already registered`);
    this.handlers.set(name, { fn, info: { name, description: options.description ?? null }, checkArgs: options.checkArgs });
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

  get(name: string): Handler | undefined {
    return this.handlers.get(name)?.fn;
  }

  list(): HandlerInfo[] {
    return [...this.handlers.values()].map((h) => h.info).sort((a, b) => a.name.localeCompare(b.name));
  }
}
