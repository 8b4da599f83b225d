import type { HandlerInfo as HandlerInfoShape } from '../../handlers/HandlerRegistry.js';
import { builder } from '../builder.js';

const HandlerIsolation = builder.enumType('HandlerIsolation', {
  description:
    "Where a handler runs: on the instance's event loop, or in a worker thread with a heap limit that is terminated when it misbehaves.",
  values: ['IN_PROCESS', 'THREAD'] as const,
});

const HandlerInfo = builder.objectRef<HandlerInfoShape>('Handler').implement({
  description: 'A registered function that tasks call through their funcName.',
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description', { nullable: true }),
    isolation: t.field({ type: HandlerIsolation, resolve: (h) => (h.isolation === 'thread' ? 'THREAD' : 'IN_PROCESS') }),
    memoryLimitMb: t.exposeInt('memoryLimitMb', {
      nullable: true,
      description: 'Heap limit of its worker threads, unless a task or template sets one.',
    }),
    timeoutMs: t.exposeInt('timeoutMs', { nullable: true, description: 'Time limit of a run whose task sets none.' }),
  }),
});

builder.queryFields((t) => ({
  handlers: t.field({
    authScopes: { viewer: true },
    type: [HandlerInfo],
    resolve: (_root, _args, ctx) => ctx.handlers.list(),
  }),
  taskTypes: t.stringList({
    authScopes: { viewer: true },
    description: 'Registered task types (tasks.NormalType and those the app added).',
    resolve: (_root, _args, ctx) => ctx.taskTypes.names(),
  }),
}));
