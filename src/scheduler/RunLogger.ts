import type { Logger } from '../logger.js';
import { toJson, toStorableText } from './toJson.js';

export interface RunLogLine {
  level: string;
  message: string;
  data: unknown;
  createdAt: Date;
}

type LogMethod = {
  (message: string): void;
  (data: Record<string, unknown>, message?: string): void;
};

/**
 * The logger a handler gets in its context: pino-style calls (`info('msg')`, `info({ key }, 'msg')`),
 * written to the process log with the task and run ids, and kept to be stored with the run
 * (task_run_log) when the attempt ends. At most `limit` lines are kept per run.
 */
export class RunLogger {
  readonly lines: RunLogLine[] = [];
  private dropped = 0;
  readonly debug: LogMethod;
  readonly info: LogMethod;
  readonly warn: LogMethod;
  readonly error: LogMethod;

  private child: Logger | undefined;

  /**
   * `makeLogger` makes the process logger with the run's bindings, the first time a line is logged: most
   * runs log nothing, and a pino child serialises (and redacts) its bindings when it is made: about 1.5 %
   * of the CPU of a drain of no-op tasks on PGlite (a profile, 2026-12-05).
   */
  constructor(
    private readonly makeLogger: () => Logger,
    private readonly limit = 1000,
  ) {
    this.debug = this.method('debug');
    this.info = this.method('info');
    this.warn = this.method('warn');
    this.error = this.method('error');
  }

  private method(level: 'debug' | 'info' | 'warn' | 'error'): LogMethod {
    return ((first: string | Record<string, unknown>, second?: string) => {
      const [data, message] = typeof first === 'string' ? [undefined, first] : [first, second ?? ''];
      this.child ??= this.makeLogger();
      if (data) this.child[level](data, message);
      else this.child[level](message);
      if (this.lines.length < this.limit)
        this.lines.push({
          level,
          message: toStorableText(String(message), 8192),
          data: data ? logData(data) : null,
          createdAt: new Date(),
        });
      else this.dropped++;
    }) as LogMethod;
  }

  /** The lines to store, with a note when some were dropped. */
  drain(): RunLogLine[] {
    if (this.dropped)
      this.lines.push({ level: 'warn', message: `${this.dropped} more log lines were not stored`, data: null, createdAt: new Date() });
    return this.lines;
  }
}

/** Log data is kept when it can be stored, and replaced by the reason when it cannot: a log line must never fail a run. */
function logData(data: Record<string, unknown>): unknown {
  const plain = Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, v instanceof Error ? { message: v.message, stack: v.stack } : v]),
  );
  const json = toJson(plain, 65_536, 'log data');
  return json.ok ? json.value : { unstorable: json.error };
}
