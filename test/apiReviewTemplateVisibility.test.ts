import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV, createKey } from './support/auth.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const PLATFORM = { ...ADMIN, 'x-tenant-id': 'platform' };
const ACME_ADMIN = { ...ADMIN, 'x-tenant-id': 'acme' };
const TEMPLATE = `template { fullName title description argDict }`;
const TASKS = `{ tasks(first: 50) { edges { node { id fullName ${TEMPLATE} } } } }`;
const EVENTS = `{ taskEvents(first: 50) { edges { node { task { id fullName ${TEMPLATE} } } } } }`;
const TASK = `query($id: ID!) { task(id: $id) { id ${TEMPLATE} } }`;

/**
 * Task.template shows a template only to the tenant it belongs to (and to ADMINs): a task of tenant acme
 * that came from a platform template keeps its template_id after unbindTemplate (binding_id is set NULL),
 * and the children an ALLOW-overlap bound task fires have no binding id at all. Neither may show the
 * platform template's definition to the tenant.
 */
describe.each(backends)('Task.template of another tenant (%s)', (backend) => {
  let t: TestApp;
  let viewer: Record<string, string>;
  let boundTaskId: string;
  let ownTaskId: string;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    viewer = (await createKey(t, 'acme', 'VIEWER')).headers;
    const editor = (await createKey(t, 'acme', 'EDITOR')).headers;
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Nightly", title: "Secret platform", description: "internal",
          funcName: "chronograph.echo", repeatType: CRON, cronExpression: "0 3 * * *", argDict: { apiSecret: "platform-only" } }) { id } }`,
        {},
        PLATFORM,
      ),
    );
    boundTaskId = ok(await t.gql(`mutation { bindTemplate(fullName: "tasks.Nightly", tenantId: "acme") { task { id } } }`, {}, ADMIN))
      .bindTemplate.task.id;
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Own", title: "Own", description: "mine", funcName: "chronograph.echo" }) { id } }`,
        {},
        editor,
      ),
    );
    ownTaskId = ok(
      await t.gql(`mutation { createTimerTask(input: { fullName: "tasks.Own", startTime: "2031-01-01T00:00:00Z" }) { id } }`, {}, editor),
    ).createTimerTask.id;
  });
  afterAll(() => t?.close());

  it('is null for a bound task, and stays null after unbindTemplate, in tasks, task and taskEvents', async () => {
    const template = async (headers: Record<string, string>) => {
      const tasks = ok(await t.gql(TASKS, {}, headers)).tasks.edges.map((e: any) => e.node);
      const events = ok(await t.gql(EVENTS, {}, headers)).taskEvents.edges.map((e: any) => e.node.task);
      const task = ok(await t.gql(TASK, { id: boundTaskId }, headers)).task;
      const fromTasks = tasks.find((n: any) => n.id === boundTaskId).template;
      const fromEvents = events.filter((n: any) => n.id === boundTaskId).map((n: any) => n.template);
      expect(fromEvents.length).toBeGreaterThan(0);
      for (const seen of fromEvents) expect(seen).toEqual(fromTasks);
      expect(task.template).toEqual(fromTasks);
      return fromTasks;
    };
    expect(await template(viewer)).toBeNull();
    ok(await t.gql(`mutation { unbindTemplate(fullName: "tasks.Nightly", tenantId: "acme") { tenantId } }`, {}, ADMIN));
    // binding_id is now NULL, template_id still names the platform template.
    const row = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: boundTaskId }, select: { bindingId: true, templateId: true } });
    expect(row.bindingId).toBeNull();
    expect(row.templateId).not.toBeNull();
    expect(await template(viewer)).toBeNull();
    // ADMINs see it, as before.
    expect(await template(ACME_ADMIN)).toMatchObject({ fullName: 'tasks.Nightly', title: 'Secret platform' });
  });

  it("still shows the tenant's own template", async () => {
    const tasks = ok(await t.gql(TASKS, {}, viewer)).tasks.edges.map((e: any) => e.node);
    expect(tasks.find((n: any) => n.id === ownTaskId).template).toEqual({
      fullName: 'tasks.Own',
      title: 'Own',
      description: 'mine',
      argDict: {},
    });
  });
});
