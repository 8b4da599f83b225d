import {
  MisfirePolicy,
  OverlapPolicy,
  RepeatType,
  RunStatus,
  TaskEventType,
  TaskSource,
  TaskStatus,
  TemplateOrigin,
} from '../../generated/prisma/client.js';
import { builder } from '../builder.js';

export const TaskStatusEnum = builder.enumType(TaskStatus, { name: 'TaskStatus' });
export const RepeatTypeEnum = builder.enumType(RepeatType, { name: 'RepeatType' });
export const TaskSourceEnum = builder.enumType(TaskSource, { name: 'TaskSource' });
export const TemplateOriginEnum = builder.enumType(TemplateOrigin, { name: 'TemplateOrigin' });
export const RunStatusEnum = builder.enumType(RunStatus, { name: 'RunStatus' });
export const TaskEventTypeEnum = builder.enumType(TaskEventType, { name: 'TaskEventType' });
export const MisfirePolicyEnum = builder.enumType(MisfirePolicy, {
  name: 'MisfirePolicy',
  description:
    'What happens to occurrences missed while no scheduler ran: RUN_ONCE (default) runs once for all, RUN_ALL runs each, SKIP skips those later than misfireToleranceMs.',
});
export const OverlapPolicyEnum = builder.enumType(OverlapPolicy, {
  name: 'OverlapPolicy',
  description: 'When an occurrence comes due while the previous run still goes: SKIP (default) drops it, BUFFER_ONE runs once right after.',
});
