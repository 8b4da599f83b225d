import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LABEL_LENGTH, MAX_TEXT_LENGTH, MAX_TITLE_LENGTH } from '../src/tasks/validate.js';
import { MAX_CRON_LENGTH } from '../src/time/CronExpression.js';
import { ADMIN, AUTH_ENV } from './support/auth.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';

const PLATFORM = { ...ADMIN, 'x-tenant-id': 'platform' };
const ACME = { ...ADMIN, 'x-tenant-id': 'acme' };

const CREATE = `mutation($input: TaskTemplateInput!) { createTaskTemplate(input: $input) { fullName title description queue } }`;
const UPDATE = `mutation($fullName: String!, $patch: TaskTemplatePatch!) { updateTaskTemplate(fullName: $fullName, patch: $patch) { title } }`;
const SAVE_MODEL = `mutation($input: ModelDefinitionInput!) { saveModel(input: $input) { name title fields { name title } } }`;
const BIND = `mutation($fullName: String!, $tenantId: String!, $overrides: TemplateBindingInput) {
  bindTemplate(fullName: $fullName, tenantId: $tenantId, overrides: $overrides) { tenantId } }`;

/** A text of `n` characters that no message may quote (it would show up as a run of q's). */
const long = (n: number) => 'q'.repeat(n);

/**
 * QA: template and model titles and descriptions (and other text inputs of template, model, record and
 * binding mutations) took megabytes, which every list of templates or models then returned at the cost
 * of a short one. They are capped: titles at MAX_TITLE_LENGTH, descriptions at MAX_TEXT_LENGTH, labels
 * (queue, cron, zone, handler and task-type names) at MAX_LABEL_LENGTH. Past it: BAD_USER_INPUT naming
 * the field, with the length and without the text, and nothing written.
 */
describe.each(backends)('text limits of templates, models, records and bindings (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    ok(
      await t.gql(
        CREATE,
        {
          input: {
            fullName: 'tasks.Report',
            title: 'Report',
            funcName: 'chronograph.echo',
            repeatType: 'CRON',
            cronExpression: '0 6 * * *',
          },
        },
        PLATFORM,
      ),
    );
    ok(await t.gql(CREATE, { input: { fullName: 'tasks.Kept', title: 'Kept', funcName: 'chronograph.echo' } }, ACME));
    ok(await t.gql(SAVE_MODEL, { input: { name: 'models.Kept', title: 'Kept', fields: [{ name: 'due', type: 'DATE' }] } }, ACME));
  });
  afterAll(() => t?.close());

  const counts = async () => {
    const p = t.app.db.prisma;
    return {
      templates: await p.taskTemplate.count(),
      templateRows: JSON.stringify(await p.taskTemplate.findMany({ orderBy: { id: 'asc' } })),
      models: JSON.stringify(await p.modelDefinition.findMany({ orderBy: { id: 'asc' } })),
      records: await p.modelRecord.count(),
      bindings: await p.templateBinding.count(),
      tasks: await p.task.count(),
    };
  };

  /** The call failed with BAD_USER_INPUT naming `field`, said the length, quoted no long text, and wrote nothing. */
  async function refused(call: () => Promise<GqlResult>, field: string, length?: number) {
    const before = await counts();
    const result = await call();
    expect(result.data ?? null).toBeNull();
    const [error] = result.errors ?? [];
    expect(error?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    if (length !== undefined) expect(error!.message).toContain(String(length));
    expect(error!.message).not.toMatch(/q{20}/);
    expect(error!.message.length).toBeLessThan(400);
    expect(await counts()).toEqual(before);
  }

  const template = (input: Record<string, unknown>) =>
    t.gql(CREATE, { input: { fullName: 'tasks.Big', title: 'Big', funcName: 'chronograph.echo', ...input } }, ACME);

  it('caps a template title at MAX_TITLE_LENGTH and its description at MAX_TEXT_LENGTH, on create', async () => {
    await refused(() => template({ title: long(MAX_TITLE_LENGTH + 1) }), 'title', MAX_TITLE_LENGTH + 1);
    await refused(() => template({ title: long(1_000_000) }), 'title', 1_000_000);
    await refused(() => template({ description: long(MAX_TEXT_LENGTH + 1) }), 'description', MAX_TEXT_LENGTH + 1);
    // at the limits, accepted as given
    const made = ok(
      await template({ fullName: 'tasks.AtLimit', title: 'T'.repeat(MAX_TITLE_LENGTH), description: 'D'.repeat(MAX_TEXT_LENGTH) }),
    ).createTaskTemplate;
    expect([made.title.length, made.description.length]).toEqual([MAX_TITLE_LENGTH, MAX_TEXT_LENGTH]);
  });

  it("caps a template's labels: queue, cronExpression, timezone, funcName, taskType", async () => {
    const over = MAX_LABEL_LENGTH + 1;
    await refused(() => template({ queue: long(over) }), 'queue', over);
    await refused(() => template({ repeatType: 'CRON', cronExpression: `0 6 * * * ${long(MAX_CRON_LENGTH)}` }), 'cronExpression');
    // A queue is a name, as a task's is (it is also a metrics label).
    await refused(() => template({ queue: 'two words' }), 'queue');
    await refused(() => template({ timezone: long(over) }), 'timezone', over);
    await refused(() => template({ funcName: long(over) }), 'funcName', over);
    await refused(() => template({ taskType: long(over) }), 'taskType', over);
  });

  it('lets a template whose queue was stored before queues had to be names be patched, until the patch changes its queue', async () => {
    ok(await t.gql(CREATE, { input: { fullName: 'tasks.OldQueue', title: 'Old', funcName: 'chronograph.echo' } }, ACME));
    await t.app.db.prisma.taskTemplate.updateMany({ where: { fullName: 'tasks.OldQueue' }, data: { queue: 'two words' } });
    expect(ok(await t.gql(UPDATE, { fullName: 'tasks.OldQueue', patch: { title: 'Renamed' } }, ACME)).updateTaskTemplate.title).toBe(
      'Renamed',
    );
    expect((await t.app.db.prisma.taskTemplate.findFirstOrThrow({ where: { fullName: 'tasks.OldQueue' } })).queue).toBe('two words');
    await refused(() => t.gql(UPDATE, { fullName: 'tasks.OldQueue', patch: { queue: 'still two words' } }, ACME), 'queue');
    ok(await t.gql(UPDATE, { fullName: 'tasks.OldQueue', patch: { queue: 'two-words' } }, ACME));
  });

  it('caps the same fields on update, and a fullName longer than any name is refused, not quoted', async () => {
    await refused(() => t.gql(UPDATE, { fullName: 'tasks.Kept', patch: { title: long(MAX_TITLE_LENGTH + 1) } }, ACME), 'title');
    await refused(() => t.gql(UPDATE, { fullName: 'tasks.Kept', patch: { description: long(MAX_TEXT_LENGTH + 1) } }, ACME), 'description');
    await refused(() => t.gql(UPDATE, { fullName: 'tasks.Kept', patch: { queue: long(MAX_LABEL_LENGTH + 1) } }, ACME), 'queue');
    await refused(() => t.gql(UPDATE, { fullName: `tasks.${long(100_000)}`, patch: { title: 'x' } }, ACME), 'fullName', 100_006);
    await refused(
      () => t.gql(`mutation($n: String!) { deleteTaskTemplate(fullName: $n) { id } }`, { n: `tasks.${long(100_000)}` }, ACME),
      'fullName',
    );
  });

  it('caps a model title and its field titles at MAX_TITLE_LENGTH; names and values are not quoted whole', async () => {
    const fields = [{ name: 'due', type: 'DATE' }];
    await refused(() => t.gql(SAVE_MODEL, { input: { name: 'models.Big', title: long(MAX_TITLE_LENGTH + 1), fields } }, ACME), 'title');
    await refused(() => t.gql(SAVE_MODEL, { input: { name: 'models.Kept', title: long(1_000_000), fields } }, ACME), 'title', 1_000_000);
    await refused(
      () =>
        t.gql(
          SAVE_MODEL,
          { input: { name: 'models.Big', fields: [{ name: 'due', type: 'DATE', title: long(MAX_TITLE_LENGTH + 1) }] } },
          ACME,
        ),
      'fields[0].title',
      MAX_TITLE_LENGTH + 1,
    );
    await refused(
      () => t.gql(SAVE_MODEL, { input: { name: 'models.Big', fields: [{ name: long(100_000), type: 'DATE' }] } }, ACME),
      'fields[0].name',
    );
    const atLimit = ok(
      await t.gql(
        SAVE_MODEL,
        {
          input: {
            name: 'models.AtLimit',
            title: 'T'.repeat(MAX_TITLE_LENGTH),
            fields: [{ ...fields[0], title: 'F'.repeat(MAX_TITLE_LENGTH) }],
          },
        },
        ACME,
      ),
    ).saveModel;
    expect([atLimit.title.length, atLimit.fields[0].title.length]).toEqual([MAX_TITLE_LENGTH, MAX_TITLE_LENGTH]);
    await t.app.db.prisma.modelDefinition.deleteMany({ where: { name: 'models.AtLimit' } });
  });

  it('record mutations: a model name longer than any, a bad date and a bad id are refused without being quoted', async () => {
    const create = `mutation($model: String!, $data: JSON!) { createModelRecord(model: $model, data: $data) { record { id } } }`;
    await refused(() => t.gql(create, { model: `models.${long(100_000)}`, data: { due: '2030-01-01' } }, ACME), 'model', 100_007);
    await refused(() => t.gql(create, { model: 'models.Kept', data: { due: long(100_000) } }, ACME), 'data.due');
    await refused(
      () =>
        t.gql(
          `mutation($id: ID!) { updateModelRecord(model: "models.Kept", id: $id, data: { due: "2030-01-01" }) { record { id } } }`,
          { id: long(100_000) },
          ACME,
        ),
      'id',
    );
    await refused(() => t.gql(`mutation($n: String!) { deleteModel(name: $n) { id } }`, { n: `models.${long(100_000)}` }, ACME), 'name');
  });

  it('binding overrides: cronExpression, timezone and funcName are capped; a long fullName is not quoted', async () => {
    const bind = (overrides: Record<string, unknown>, fullName = 'tasks.Report') =>
      t.gql(BIND, { fullName, tenantId: 'acme', overrides }, ADMIN);
    const over = MAX_LABEL_LENGTH + 1;
    await refused(() => bind({ cronExpression: `0 7 * * * ${long(MAX_CRON_LENGTH)}` }), 'overrides.cronExpression');
    await refused(() => bind({ timezone: long(over) }), 'overrides.timezone', over);
    await refused(() => bind({ funcName: long(over) }), 'overrides.funcName', over);
    await refused(() => bind({}, `tasks.${long(100_000)}`), 'fullName', 100_006);
    ok(await bind({ cronExpression: '0 7 * * *' }));
  });

  it('templates from template files get the same check: the app does not start', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'chronograph-app-'));
    await mkdir(path.join(dir, 'templates'));
    await writeFile(
      path.join(dir, 'templates', 'big.json'),
      JSON.stringify({
        fullName: 'tasks.FromFile',
        title: 'From a file',
        description: long(MAX_TEXT_LENGTH + 1),
        funcName: 'chronograph.echo',
      }),
    );
    const error = await createTestApp(backend, { env: { APP_DIR: dir } }).then(
      async (app) => {
        await app.close();
        return null;
      },
      (e: unknown) => e as { code?: string; details?: unknown; message: string },
    );
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT', details: { field: 'description' } });
    expect(error!.message).not.toMatch(/q{20}/);
  });
});
