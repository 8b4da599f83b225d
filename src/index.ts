/**
 * The public API for app modules (`<APP_DIR>/handlers/*.ts`) and for code that embeds Chronograph:
 * import from here rather than from files inside src/, whose layout may change.
 *
 *   import { NormalType, type AppModule } from '../../src/index.js';
 */
export { Chronograph, type AppModule, type ChronographOptions, type ElementTypes } from './app.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export { ChronographError, type ErrorCode } from './errors.js';
export type { ArgsCheck, Handler, HandlerContext, HandlerInfo, HandlerLogger, HandlerLogFn, HandlerOptions, HandlerRegistry } from './handlers/HandlerRegistry.js';
export { NonRetryableError, isNonRetryable } from './handlers/NonRetryableError.js';
export type { HttpResult } from './handlers/httpHandlers.js';
export { NormalType, type TaskTypeRegistry, type TaskTypeRunInput } from './tasks/TaskTypeRegistry.js';
export type { TaskSvc, TimerTaskInput, CreatedTask, TaskFilter } from './tasks/TaskSvc.js';
export type { TemplateSvc } from './templates/TemplateSvc.js';
export type { DateFieldSvc, RowObj } from './dateFields/DateFieldSvc.js';
export type { ModelSvc } from './dateFields/ModelSvc.js';
export type { DateFieldResult } from './dateFields/applyDateFields.js';
export type { Readiness } from './ops/checkReadiness.js';
export type { Task, TaskRun, TaskEvent, TaskTemplate, TaskStatus, RepeatType } from './generated/prisma/client.js';
