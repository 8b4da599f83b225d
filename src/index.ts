/**
 * The public API for app modules (`<APP_DIR>/handlers/*.ts`) and for code that embeds Chronograph:
 * import from here rather than from files inside src/, whose layout may change.
 *
 *   import { NormalType, type AppModule } from '../../src/index.js';
 */
export { type AppModule, Chronograph, type ChronographOptions, type ElementTypes } from './app.js';
export { type Config, ConfigError, loadConfig } from './config.js';
export type { DateFieldResult } from './dateFields/applyDateFields.js';
export type { DateFieldSvc, RowObj } from './dateFields/DateFieldSvc.js';
export type { ModelSvc } from './dateFields/ModelSvc.js';
export { ChronographError, type ErrorCode } from './errors.js';
export type { RepeatType, Task, TaskEvent, TaskRun, TaskStatus, TaskTemplate } from './generated/prisma/client.js';
export type {
  ArgsCheck,
  Handler,
  HandlerContext,
  HandlerInfo,
  HandlerLogFn,
  HandlerLogger,
  HandlerOptions,
  HandlerRegistry,
} from './handlers/HandlerRegistry.js';
export type { HttpResult } from './handlers/httpHandlers.js';
export { isNonRetryable, NonRetryableError } from './handlers/NonRetryableError.js';
export type { Readiness } from './ops/checkReadiness.js';
export type { CreatedTask, TaskFilter, TaskSvc, TimerTaskInput } from './tasks/TaskSvc.js';
export { NormalType, type TaskTypeRegistry, type TaskTypeRunInput } from './tasks/TaskTypeRegistry.js';
export type { TemplateSvc } from './templates/TemplateSvc.js';
