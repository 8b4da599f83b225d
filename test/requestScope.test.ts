import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestScope, scopedPrisma } from '../src/db/requestScope.js';
import { TemplateSvc } from '../src/templates/TemplateSvc.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const BUDGET_MS = 300;

/** A scope whose signal has aborted with `reason`. */
function aborted(reason = new Error('the client went away')): RequestScope {
  const scope = new RequestScope();
  const controller = new AbortController();
  controller.abort(reason);
  scope.signal = controller.signal;
  return scope;
}

describe.each(backends)('a request scope (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { REQUEST_TIMEOUT_MS: String(BUDGET_MS), SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  it("lets a bound Prisma client run while its scope is live, and is the same client for the scope's services", async () => {
    const scope = new RequestScope();
    const prisma = scopedPrisma(t.app.db.prisma, scope);
    expect(await prisma.taskTemplate.count()).toBe(await t.app.db.prisma.taskTemplate.count());
    expect(await prisma.$queryRaw<{ one: number }[]>`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    expect(scopedPrisma(t.app.db.prisma, scope)).toBe(prisma);
    expect(scopedPrisma(t.app.db.prisma, new RequestScope())).not.toBe(prisma);
  });

  it('refuses every statement once its scope aborted: model operations, raw ones and transactions', async () => {
    const reason = new Error('the budget ran out');
    const prisma = scopedPrisma(t.app.db.prisma, aborted(reason));
    expect(() => prisma.taskTemplate.count()).toThrow(reason);
    expect(() => prisma.$queryRawUnsafe('SELECT 1')).toThrow(reason);
    expect(() => prisma.$transaction(async () => {})).toThrow(reason);
  });

  it('rolls back a transaction whose scope aborts half way, at its next statement', async () => {
    const scope = new RequestScope();
    const controller = new AbortController();
    scope.signal = controller.signal;
    const prisma = scopedPrisma(t.app.db.prisma, scope);
    const before = await t.app.db.prisma.tenant.count();
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.tenant.create({ data: { id: 'scope-rolled-back', updatedAt: new Date() } });
        controller.abort(new Error('the client went away'));
        await tx.tenant.count();
      }),
    ).rejects.toThrow('the client went away');
    expect(await t.app.db.prisma.tenant.count()).toBe(before);
  });

  it("binds every service of a request's context: a template mutation past its budget writes nothing", async () => {
    const original = TemplateSvc.prototype.create;
    TemplateSvc.prototype.create = async function (this: TemplateSvc, ...args: Parameters<TemplateSvc['create']>) {
      await new Promise((resolve) => setTimeout(resolve, BUDGET_MS * 2));
      return original.apply(this, args);
    };
    try {
      const result = await t.gql(
        'mutation { createTaskTemplate(input: { fullName: "scope.Late", title: "Late", funcName: "chronograph.noop" }) { id } }',
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('TIMEOUT');
    } finally {
      TemplateSvc.prototype.create = original;
    }
    // The slowed create went on after the answer, and was stopped at its first statement.
    await new Promise((resolve) => setTimeout(resolve, BUDGET_MS * 2));
    expect(await t.app.db.prisma.taskTemplate.count({ where: { fullName: 'scope.Late' } })).toBe(0);
    ok(
      await t.gql('mutation { createTaskTemplate(input: { fullName: "scope.Late", title: "Late", funcName: "chronograph.noop" }) { id } }'),
    );
    expect(await t.app.db.prisma.taskTemplate.count({ where: { fullName: 'scope.Late' } })).toBe(1);
  });
});
