import type { HandlerInfo as HandlerInfoShape } from '../../handlers/HandlerRegistry.js';
import { builder } from '../builder.js';

const HandlerInfo = builder.objectRef<HandlerInfoShape>('Handler').implement({
  description: 'A registered function that tasks call through their funcName.',
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description', { nullable: true }),
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
