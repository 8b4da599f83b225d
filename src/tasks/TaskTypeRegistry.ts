import type { Handler, HandlerContext, Isolation } from '../handlers/HandlerRegistry.js';

export interface TaskTypeRunInput {
  handler: Handler;
  args: Record<string, unknown>;
  ctx: HandlerContext;
}

/**
 * `tasks.NormalType`: calls the task's handler with its argDict. It is the seed's Type layer: an app
 * registers its own type by extending it, e.g. to wrap every run with auditing or a circuit breaker,
 * and tasks created with that `taskType` run through it. With `isolation: 'thread'` its tasks' handlers
 * run in worker threads while `run` itself stays on the main thread, so a wrapper still works.
 */
/** A type may run every task of its own in a worker thread (their handlers must be registered by module). */
export interface TaskTypeOptions {
  isolation?: Isolation;
  /** Heap limit of those threads, in MB, unless the task, template or handler sets one. */
  memoryLimitMb?: number;
}

export class NormalType {
  constructor(
    readonly name: string = 'tasks.NormalType',
    readonly options: TaskTypeOptions = {},
  ) {}

  async run({ handler, args, ctx }: TaskTypeRunInput): Promise<unknown> {
    return handler(args, ctx);
  }
}

export class TaskTypeRegistry {
  private readonly types = new Map<string, NormalType>();

  constructor() {
    this.register(new NormalType());
    this.register(new NormalType('tasks.ThreadType', { isolation: 'thread' }));
  }

  register(type: NormalType): this {
    if (this.types.has(type.name)) throw new Error(`Task type ${type.name} is already registered`);
    this.types.set(type.name, type);
    return this;
  }

  has(name: string): boolean {
    return this.types.has(name);
  }

  get(name: string): NormalType | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()].sort();
  }
}
