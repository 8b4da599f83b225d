import { RepeatType, RunStatus, TaskEventType, TaskSource, TaskStatus, TemplateOrigin } from '../../generated/prisma/client.js';
import { builder } from '../builder.js';

export const TaskStatusEnum = builder.enumType(TaskStatus, { name: 'TaskStatus' });
export const RepeatTypeEnum = builder.enumType(RepeatType, { name: 'RepeatType' });
export const TaskSourceEnum = builder.enumType(TaskSource, { name: 'TaskSource' });
export const TemplateOriginEnum = builder.enumType(TemplateOrigin, { name: 'TemplateOrigin' });
export const RunStatusEnum = builder.enumType(RunStatus, { name: 'RunStatus' });
export const TaskEventTypeEnum = builder.enumType(TaskEventType, { name: 'TaskEventType' });
