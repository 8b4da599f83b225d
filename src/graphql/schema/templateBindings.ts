import type { BindingView, EffectiveBinding } from '../../templates/TemplateBindingSvc.js';
import { builder } from '../builder.js';

const EffectiveBindingRef = builder.objectRef<EffectiveBinding>('EffectiveBinding').implement({
  description: "What a bound tenant's task runs with: the template's values with the binding's overrides.",
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled', { description: 'Template and binding both enabled.' }),
    cronExpression: t.exposeString('cronExpression', { nullable: true }),
    intervalSeconds: t.exposeInt('intervalSeconds', { nullable: true }),
    timezone: t.exposeString('timezone'),
    argDict: t.field({ type: 'JSON', resolve: (e) => e.argDict }),
    funcName: t.exposeString('funcName', { nullable: true }),
  }),
});

const BindingOverridesRef = builder.objectRef<BindingView['binding']>('TemplateBindingOverrides').implement({
  description: "What the binding sets itself; null inherits the template's value.",
  fields: (t) => ({
    cronExpression: t.exposeString('cronExpression', { nullable: true }),
    intervalSeconds: t.exposeInt('intervalSeconds', { nullable: true }),
    timezone: t.exposeString('timezone', { nullable: true }),
    argDict: t.field({
      type: 'JSON',
      nullable: true,
      description: "Merged key by key over the template's argDict.",
      resolve: (b) => b.argDict,
    }),
    funcName: t.exposeString('funcName', { nullable: true }),
  }),
});

const TemplateBindingRef = builder.objectRef<BindingView>('TemplateBinding').implement({
  description: 'A platform template bound to a tenant: that tenant runs it as its own recurring task (source TEMPLATE).',
  authScopes: { admin: true },
  fields: (t) => ({
    tenantId: t.string({ resolve: (v) => v.binding.tenantId }),
    enabled: t.boolean({ description: "The binding's own switch.", resolve: (v) => v.binding.enabled }),
    template: t.prismaField({ type: 'TaskTemplate', resolve: (_query, v) => v.template }),
    overrides: t.field({ type: BindingOverridesRef, resolve: (v) => v.binding }),
    effective: t.field({ type: EffectiveBindingRef, resolve: (v) => v.effective }),
    nextRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: "When the tenant's task runs next; null while disabled.",
      resolve: (v) => v.task?.nextRunAt ?? null,
    }),
    task: t.prismaField({ type: 'Task', nullable: true, description: "The tenant's live task.", resolve: (_query, v) => v.task }),
  }),
});

const TemplateBindingInput = builder.inputType('TemplateBindingInput', {
  description: "A binding's overrides; an omitted or null field inherits the template's value. bindTemplate replaces all of them.",
  fields: (t) => ({
    enabled: t.boolean({ description: "Default true; false keeps the binding but cancels the tenant's task." }),
    cronExpression: t.string({ description: 'For CRON templates.' }),
    intervalSeconds: t.int({ description: 'For INTERVAL templates.' }),
    timezone: t.string({ description: 'IANA time zone for the cron expression.' }),
    argDict: t.field({ type: 'JSON', description: "Merged key by key over the template's argDict." }),
    funcName: t.string({ description: 'Another registered handler.' }),
  }),
});

builder.prismaObjectField('TaskTemplate', 'bindings', (t) =>
  t.field({
    type: [TemplateBindingRef],
    authScopes: { admin: true },
    description: 'For templates of the platform tenant: the tenants they are bound to.',
    resolve: (template, _args, ctx) => ctx.bindings.list(template),
  }),
);

builder.mutationFields((t) => ({
  bindTemplate: t.field({
    type: TemplateBindingRef,
    authScopes: { admin: true },
    description:
      "Binds a CRON or INTERVAL template of the platform tenant to a tenant (or replaces the binding's overrides): the tenant gets its own recurring task on the effective schedule, first run at its next occurrence.",
    args: {
      fullName: t.arg.string({ required: true, description: 'A template of the platform tenant.' }),
      tenantId: t.arg.string({ required: true }),
      overrides: t.arg({ type: TemplateBindingInput }),
    },
    resolve: (_root, args, ctx) => ctx.bindings.bind(args.fullName, args.tenantId, args.overrides ?? {}),
  }),
  unbindTemplate: t.field({
    type: TemplateBindingRef,
    authScopes: { admin: true },
    description: "Removes a binding; the tenant's pending task is cancelled (a running one is force-ended). Returns the binding as it was.",
    args: { fullName: t.arg.string({ required: true }), tenantId: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.bindings.unbind(args.fullName, args.tenantId),
  }),
}));
