import { v7 as uuidv7 } from 'uuid';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput, ChronographError, conflict, notFound } from '../errors.js';
import type { ModelDefinition, ModelRecord, PrismaClient } from '../generated/prisma/client.js';
import { type Prisma, RepeatType } from '../generated/prisma/client.js';
import {
  assertIntRange,
  assertJson,
  assertName,
  assertText,
  isUniqueViolation,
  MAX_NAME_LENGTH,
  MAX_TITLE_LENGTH,
  parseCursor,
} from '../tasks/validate.js';
import { addCounts, type DateFieldResult, emptyResult, type RecordChange } from './applyDateFields.js';
import { validateCondition } from './condition.js';
import { conditionToSql } from './conditionSql.js';
import { type DateFieldSvc, LONG_TRANSACTION } from './DateFieldSvc.js';
import { analyzeAfterBulkLoad, insertModelRecords, lockDateFieldModels } from './dateFieldSql.js';
import { type ModelField, type ModelFieldInput, quote, validateFields, validateRecordData } from './modelFields.js';

export interface ModelDefinitionInput {
  name: string;
  title?: string | null;
  fields: ModelFieldInput[];
}

export interface ModelSvcDeps {
  prisma: PrismaClient;
  dateFields: DateFieldSvc;
  /** Zone for DATETIME values written without an offset. */
  defaultTimezone: string;
  /** Largest record data (as JSON); MAX_JSON_BYTES. */
  maxJsonBytes: number;
}

export interface RecordWrite {
  record: ModelRecord;
  dateFields: DateFieldResult;
}

const IMPORT_CHUNK = 1000;
export const MAX_IMPORT = 100_000;
/** Imports at least this large refresh the planner's statistics (see analyzeAfterBulkLoad). */
const ANALYZE_AFTER = 1000;

/**
 * Low-code models kept by Chronograph itself: definitions (a name and typed fields) and their records
 * (JSON documents). Every record write runs the date-field layer in the same transaction, so a record
 * and its tasks never disagree.
 */
export class ModelSvc {
  constructor(
    private readonly deps: ModelSvcDeps,
    readonly tenantId = 'default',
    /** TaskEvent.actor of the task changes that record writes cause. */
    readonly actor: string | null = null,
  ) {}

  forTenant(tenantId: string, actor: string | null = this.actor): ModelSvc {
    return new ModelSvc(this.deps, tenantId, actor);
  }

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): ModelSvc {
    return new ModelSvc(scopedDeps(this.deps, scope), this.tenantId, this.actor);
  }

  private get dateFields(): DateFieldSvc {
    return this.deps.dateFields.forTenant(this.tenantId, this.actor);
  }

  listModels(): Promise<ModelDefinition[]> {
    return this.deps.prisma.modelDefinition.findMany({ where: { tenantId: this.tenantId }, orderBy: { name: 'asc' } });
  }

  findModel(name: string): Promise<ModelDefinition | null> {
    return this.deps.prisma.modelDefinition.findUnique({ where: { tenantId_name: { tenantId: this.tenantId, name } } });
  }

  async getModel(name: string, db: Prisma.TransactionClient = this.deps.prisma): Promise<ModelDefinition & { fieldList: ModelField[] }> {
    // Longer than any model's name can be: said with its length, not quoted in NOT_FOUND.
    if (typeof name === 'string' && name.length > MAX_NAME_LENGTH) assertName(name, 'model');
    const model = await db.modelDefinition.findUnique({ where: { tenantId_name: { tenantId: this.tenantId, name } } });
    if (!model)
      throw new ChronographError('NOT_FOUND', `No model is named ${JSON.stringify(name)}; define it with saveModel`, { field: 'model' });
    return { ...model, fieldList: model.fields as unknown as ModelField[] };
  }

  /**
   * Creates a model or replaces its fields. A field that records already use cannot be dropped or change
   * type, and a date field a DATE_FIELD template follows must stay a DATE or DATETIME field.
   */
  async saveModel(input: ModelDefinitionInput): Promise<ModelDefinition> {
    const name = assertName(input.name?.trim() ?? '', 'name');
    const fields = validateFields(input.fields);
    const title = input.title == null ? null : assertText(input.title, 'title', MAX_TITLE_LENGTH).trim() || null;
    try {
      return await this.saveModelOnce(name, fields, title);
    } catch (error) {
      // A concurrent saveModel created the model between our read and our insert: save again, now as
      // a change of the model it created (with the same checks).
      if (!isUniqueViolation(error, 'model_definition_tenant_id_name_key')) throw error;
      return this.saveModelOnce(name, fields, title);
    }
  }

  private saveModelOnce(name: string, fields: ModelField[], title: string | null): Promise<ModelDefinition> {
    // hookTransaction: the model lock below waits at most HOOK_LOCK_WAIT_MS (then TIMEOUT, nothing written).
    return this.dateFields.hookTransaction(
      name,
      async (tx) => {
        const current = await tx.modelDefinition.findUnique({ where: { tenantId_name: { tenantId: this.tenantId, name } } });
        if (!current) {
          // A new model takes over its name from hooks (which refuse a low-code model, see
          // DateFieldSvc.refuseLowCode, after taking this lock shared): created under the model lock held
          // exclusively, a hook under way commits first, and a later one waits for this to commit and then
          // finds the model. Nothing else of LOCK ORDER is held here or taken after it.
          await lockDateFieldModels(tx, this.tenantId, [name], 'exclusive');
          return tx.modelDefinition.create({
            data: { tenantId: this.tenantId, name, title, fields: fields as unknown as Prisma.InputJsonArray },
          });
        }
        const before = current.fields as unknown as ModelField[];
        for (const old of before) {
          const now = fields.find((f) => f.name === old.name);
          if (now && now.type === old.type) continue;
          const used = await tx.$queryRaw<{ n: bigint }[]>`
          SELECT count(*) AS n FROM model_record WHERE tenant_id = ${this.tenantId} AND model = ${name} AND data ->> ${old.name} IS NOT NULL`;
          if (used[0]!.n > 0n) {
            throw conflict(
              `${used[0]!.n} record(s) of ${name} have a value in ${old.name}; it cannot be ${now ? `changed to ${now.type}` : 'removed'}`,
              {
                field: 'fields',
              },
            );
          }
        }
        const followers = await tx.taskTemplate.findMany({
          where: { tenantId: this.tenantId, sourceModel: name, repeatType: RepeatType.DATE_FIELD },
          select: { fullName: true, sourceField: true },
        });
        for (const template of followers) {
          const field = fields.find((f) => f.name === template.sourceField);
          if (!field || (field.type !== 'DATE' && field.type !== 'DATETIME')) {
            throw conflict(
              `Task template ${template.fullName} follows ${name}.${template.sourceField}, which must stay a DATE or DATETIME field`,
              {
                field: 'fields',
              },
            );
          }
        }
        return tx.modelDefinition.update({
          where: { id: current.id },
          data: { title, fields: fields as unknown as Prisma.InputJsonArray },
        });
      },
      `hooks, record writes or a template change of ${name} are in progress`,
    );
  }

  /**
   * Deletes a model and its records; their live tasks are cancelled in the same transaction. In this
   * order, so that nothing waits in a circle with a record write (which writes its record row, then takes
   * the model's and the record's locks):
   * 1. the model's definition row, FOR UPDATE: a record create of the model (its foreign key takes a
   *    key-share lock on this row) waits for the deletion and then finds the model gone, instead of
   *    committing a record, and its task, that the cascade would delete and leave the task live;
   * 2. the records themselves (row locks, as deleteRecord takes them): a write of one waits and then
   *    finds it gone, or one under way commits first;
   * 3. their tasks, under the model's date-field lock held exclusively (no lock per record: they added
   *    up to one per record of the model in this one transaction).
   */
  async deleteModel(name: string): Promise<ModelDefinition> {
    if (typeof name === 'string' && name.length > MAX_NAME_LENGTH) assertName(name, 'name');
    return this.deps.prisma.$transaction(async (tx) => {
      const model = await this.getModel(name, tx);
      await tx.$queryRaw`SELECT id FROM model_definition WHERE id = ${model.id}::uuid FOR UPDATE`;
      const deleted = await tx.$queryRaw<{ id: string }[]>`
        DELETE FROM model_record WHERE tenant_id = ${this.tenantId} AND model = ${name} RETURNING id::text AS id`;
      for (let i = 0; i < deleted.length; i += IMPORT_CHUNK) {
        const chunk = deleted.slice(i, i + IMPORT_CHUNK).map((r) => ({ rowId: r.id, data: null }));
        await this.dateFields.applyToRecords(tx, name, chunk, { collect: false, exclusive: true });
      }
      return tx.modelDefinition.delete({ where: { id: model.id } });
    }, LONG_TRANSACTION);
  }

  async getRecord(model: string, id: string): Promise<ModelRecord | null> {
    return this.deps.prisma.modelRecord.findFirst({ where: { tenantId: this.tenantId, model, id: assertRecordId(id) } });
  }

  async createRecord(model: string, data: unknown): Promise<RecordWrite> {
    return this.dateFields.hookTransaction(model, async (tx) => {
      const definition = await this.getModel(model, tx);
      const values = this.recordData(definition.fieldList, data, 'data');
      const record = await tx.modelRecord
        .create({ data: { tenantId: this.tenantId, model, data: values as Prisma.InputJsonObject } })
        .catch((error: unknown) => {
          // The model was deleted meanwhile (deleteModel locks its definition row; this insert's foreign key waited for it).
          if ((error as { code?: unknown }).code === 'P2003') throw notFound('Model', model);
          throw error;
        });
      const dateFields = await this.dateFields.applyToRecords(tx, model, [toChange(record)]);
      return { record, dateFields };
    });
  }

  /** Merges `data` into the record (null clears a field); with `replace`, `data` is the whole record. */
  async updateRecord(model: string, id: string, data: unknown, options: { replace?: boolean } = {}): Promise<RecordWrite> {
    const recordId = assertRecordId(id);
    return this.dateFields.hookTransaction(model, async (tx) => {
      const definition = await this.getModel(model, tx);
      const patch = validateRecordData(definition.fieldList, data, { zone: this.deps.defaultTimezone, partial: true });
      // The row lock serialises writers of one record, so its tasks follow the writes in commit order.
      const locked = await tx.$queryRaw<{ data: Record<string, unknown> }[]>`
        SELECT data FROM model_record WHERE id = ${recordId}::uuid AND tenant_id = ${this.tenantId} AND model = ${model} FOR UPDATE`;
      if (locked.length === 0) throw notFound(`Record of ${model}`, id);
      const merged = options.replace ? patch : { ...locked[0]!.data, ...patch };
      const values = this.recordData(definition.fieldList, merged, 'data');
      const record = await tx.modelRecord.update({ where: { id: recordId }, data: { data: values as Prisma.InputJsonObject } });
      const dateFields = await this.dateFields.applyToRecords(tx, model, [toChange(record)]);
      return { record, dateFields };
    });
  }

  async deleteRecord(model: string, id: string): Promise<RecordWrite> {
    const recordId = assertRecordId(id);
    return this.dateFields.hookTransaction(model, async (tx) => {
      await this.getModel(model, tx);
      const record = await tx.modelRecord.findFirst({ where: { id: recordId, tenantId: this.tenantId, model } });
      // deleteMany, not delete: a concurrent delete of the same record is NOT_FOUND, not an unexpected error.
      const { count } = await tx.modelRecord.deleteMany({ where: { id: recordId, tenantId: this.tenantId, model } });
      if (!record || count === 0) throw notFound(`Record of ${model}`, id);
      const dateFields = await this.dateFields.applyToRecords(tx, model, [{ rowId: record.id, data: null }]);
      return { record, dateFields };
    });
  }

  /**
   * Creates many records in one transaction (all or none) and their tasks: the bulk path, which inserts
   * records and tasks a thousand at a time and skips looking for tasks that new records cannot have.
   */
  async importRecords(model: string, records: unknown[]): Promise<{ count: number; dateFields: DateFieldResult }> {
    if (!Array.isArray(records)) throw badInput('records must be a list of objects', 'records');
    if (records.length > MAX_IMPORT) throw badInput(`At most ${MAX_IMPORT} records can be imported in one call`, 'records');
    const definition = await this.getModel(model);
    const rows = records.map((data, i) => this.recordData(definition.fieldList, data, `records[${i}]`));
    const imported = await this.deps.prisma.$transaction(async (tx) => {
      const result = emptyResult();
      for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
        const created = rows.slice(i, i + IMPORT_CHUNK).map((data) => ({ id: uuidv7(), data }));
        await insertModelRecords(tx, this.tenantId, model, created);
        const counts = await this.dateFields.applyToRecords(tx, model, created.map(toChange), { fresh: true, collect: false });
        addCounts(result, counts);
      }
      return { count: rows.length, dateFields: result };
    }, LONG_TRANSACTION);
    if (rows.length >= ANALYZE_AFTER) await analyzeAfterBulkLoad(this.deps.prisma);
    return imported;
  }

  /** Validated, normalised record data that fits MAX_JSON_BYTES. */
  private recordData(fields: ModelField[], data: unknown, field: string): Record<string, unknown> {
    const values = validateRecordData(fields, data, { zone: this.deps.defaultTimezone, field });
    assertJson(values, field, { maxBytes: this.deps.maxJsonBytes });
    return values;
  }

  /**
   * A page of a model's records matching `where` (the condition language of date-field templates,
   * evaluated in SQL), in id order after the cursor `after`.
   */
  async queryRecords(
    model: string,
    options: {
      where?: unknown;
      first?: number | null;
      after?: string | null;
      selection?: Pick<Prisma.ModelRecordFindManyArgs, 'select' | 'include'>;
    } = {},
  ): Promise<{ records: ModelRecord[]; hasNextPage: boolean }> {
    await this.getModel(model);
    const condition = validateCondition(options.where, 'where');
    const first = assertIntRange(options.first ?? 50, 'first', 1, 500);
    const after = options.after != null ? parseCursor('uuid', options.after, 'after') : null;
    const predicate = conditionToSql(condition, 'data', 5);
    const ids = await this.deps.prisma.$queryRawUnsafe<{ id: string }[]>(
      `SELECT id FROM model_record WHERE tenant_id = $1 AND model = $2 AND ($3::uuid IS NULL OR id > $3::uuid) AND ${predicate.sql}
        ORDER BY id LIMIT $4`,
      this.tenantId,
      model,
      after,
      first + 1,
      ...predicate.params,
    );
    const page = ids.slice(0, first).map((r) => r.id);
    const records = (await this.deps.prisma.modelRecord.findMany({
      ...options.selection,
      where: { id: { in: page } },
      orderBy: { id: 'asc' },
    })) as ModelRecord[];
    return { records, hasNextPage: ids.length > first };
  }

  /** How many records of `model` match `where` (the connection's totalCount). */
  async countRecords(model: string, where?: unknown): Promise<number> {
    await this.getModel(model);
    const predicate = conditionToSql(validateCondition(where, 'where'), 'data', 3);
    const [row] = await this.deps.prisma.$queryRawUnsafe<{ n: bigint }[]>(
      `SELECT count(*) AS n FROM model_record WHERE tenant_id = $1 AND model = $2 AND ${predicate.sql}`,
      this.tenantId,
      model,
      ...predicate.params,
    );
    return Number(row?.n ?? 0);
  }
}

function toChange(record: { id: string; data: unknown }): RecordChange {
  return { rowId: record.id, data: { ...(record.data as Record<string, unknown>), id: record.id }, prefix: 'data' };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function assertRecordId(id: string, field = 'id'): string {
  if (typeof id !== 'string' || !UUID.test(id)) throw badInput(`${field} ${quote(id)} is not a record id (a UUID)`, field);
  return id.toLowerCase();
}
