import { ok, type TestApp } from './testApp.js';

export const CREATE_TEMPLATE = `mutation($input: TaskTemplateInput!) {
  createTaskTemplate(input: $input) { id fullName repeatType dateField { model field offset { amount unit direction } timeOfDay timezoneField condition maxRuns } }
}`;

export const UPDATE_TEMPLATE = `mutation($fullName: String!, $patch: TaskTemplatePatch!) {
  updateTaskTemplate(fullName: $fullName, patch: $patch) { fullName enabled funcName dateField { offset { amount unit direction } condition } }
}`;

const RESULT = `created rescheduled cancelled unchanged skipped
  changes { template rowId action reason task { id status startTime nextRunAt funcName argDict source sourceModel sourceRowId sourceField timezone } }`;

export const SAVE = `mutation($rowObj: DateFieldRowInput!) { saveDateFieldTask(rowObj: $rowObj) { ${RESULT} } }`;
export const DELETE = `mutation($rowObj: DateFieldRowInput!) { deleteDateFieldTask(rowObj: $rowObj) { ${RESULT} } }`;
export const RECONCILE = `mutation($model: String!) { reconcileDateFieldTasks(model: $model) { created rescheduled cancelled unchanged skipped } }`;

/** A DATE_FIELD template: "3 days before models.Contract.expireDate at 09:00", calling chronograph.echo. */
export async function createDateFieldTemplate(t: TestApp, input: Record<string, unknown> = {}, dateField: Record<string, unknown> = {}) {
  return ok(
    await t.gql(CREATE_TEMPLATE, {
      input: {
        fullName: 'tasks.ContractReminder',
        title: 'Contract reminder',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        argDict: { channel: 'mail' },
        ...input,
        dateField: {
          model: 'models.Contract',
          field: 'expireDate',
          offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
          timeOfDay: '09:00',
          ...dateField,
        },
      },
    }),
  ).createTaskTemplate;
}

/** Every date-field task of the app, oldest first, with its events. */
export async function dateFieldTasks(t: TestApp, where: Record<string, unknown> = {}) {
  return t.app.db.prisma.task.findMany({
    where: { source: 'DATE_FIELD', ...where },
    orderBy: { id: 'asc' },
    include: { events: { orderBy: { id: 'asc' } } },
  });
}

/** Rows of every table the layer writes, to check that a rejected call wrote nothing. */
export async function writeCounts(t: TestApp) {
  const p = t.app.db.prisma;
  return {
    tasks: await p.task.count(),
    events: await p.taskEvent.count(),
    sources: await p.dateFieldSource.count(),
    records: await p.modelRecord.count(),
  };
}
