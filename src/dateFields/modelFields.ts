import { DateTime } from 'luxon';
import { badInput } from '../errors.js';
import { assertText, MAX_TITLE_LENGTH } from '../tasks/validate.js';
import { isPlainObject } from './condition.js';

export const MODEL_FIELD_TYPES = ['TEXT', 'NUMBER', 'BOOLEAN', 'DATE', 'DATETIME', 'JSON'] as const;
export type ModelFieldType = (typeof MODEL_FIELD_TYPES)[number];

/** One typed field of a low-code model, as stored in `model_definition.fields`. */
export interface ModelField {
  name: string;
  type: ModelFieldType;
  required: boolean;
  title: string | null;
}

export interface ModelFieldInput {
  name: string;
  type: string;
  required?: boolean | null;
  title?: string | null;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function validateFields(input: unknown, field = 'fields'): ModelField[] {
  if (!Array.isArray(input)) throw badInput(`${field} must be a list of { name, type }`, field);
  if (input.length > 200) throw badInput(`A model has at most 200 fields`, field);
  const seen = new Set<string>();
  return input.map((raw, i) => {
    const where = `${field}[${i}]`;
    if (!isPlainObject(raw)) throw badInput(`${where} must be { name, type }`, where);
    const value = raw as Partial<ModelFieldInput>;
    const name = typeof value.name === 'string' ? value.name.trim() : '';
    if (!FIELD_NAME.test(name))
      throw badInput(`${where}.name ${quote(value.name)} must be an identifier such as expireDate`, `${where}.name`);
    if (name === 'id') throw badInput(`${where}.name: id is the record's own id and cannot be a field`, `${where}.name`);
    if (seen.has(name)) throw badInput(`${where}.name: field ${name} is declared twice`, `${where}.name`);
    seen.add(name);
    const type = typeof value.type === 'string' ? value.type.trim().toUpperCase() : '';
    if (!(MODEL_FIELD_TYPES as readonly string[]).includes(type)) {
      throw badInput(`${where}.type ${quote(value.type)} is not a field type; use ${MODEL_FIELD_TYPES.join(', ')}`, `${where}.type`);
    }
    const title = value.title == null ? null : assertText(String(value.title), `${where}.title`, MAX_TITLE_LENGTH).trim() || null;
    return { name, type: type as ModelFieldType, required: value.required ?? false, title };
  });
}

/**
 * Checks record data against the model's fields and returns it normalised: DATE as `YYYY-MM-DD`,
 * DATETIME as an ISO instant in UTC (wall-clock input is read in `zone`). Unknown fields are refused;
 * null clears a field. With `partial`, fields that are absent are not checked for `required`.
 */
export function validateRecordData(
  fields: ModelField[],
  data: unknown,
  options: { partial?: boolean; zone: string; field?: string },
): Record<string, unknown> {
  const prefix = options.field ?? 'data';
  if (!isPlainObject(data)) throw badInput(`${prefix} must be a JSON object of field values`, prefix);
  const byName = new Map(fields.map((f) => [f.name, f]));
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(data)) {
    const field = byName.get(name);
    const where = `${prefix}.${name}`;
    if (!field)
      throw badInput(`${where}: the model has no field ${name} (fields: ${fields.map((f) => f.name).join(', ') || 'none'})`, where);
    out[name] = value === null || value === undefined ? null : normalise(field, value, where, options.zone);
    if (out[name] === null && field.required) throw badInput(`${where} is required`, where);
  }
  if (!options.partial) {
    for (const field of fields)
      if (field.required && out[field.name] == null) throw badInput(`${prefix}.${field.name} is required`, `${prefix}.${field.name}`);
  }
  return out;
}

function normalise(field: ModelField, value: unknown, where: string, zone: string): unknown {
  switch (field.type) {
    case 'TEXT':
      if (typeof value !== 'string') throw badInput(`${where} must be text`, where);
      return value;
    case 'NUMBER':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw badInput(`${where} must be a number`, where);
      return value;
    case 'BOOLEAN':
      if (typeof value !== 'boolean') throw badInput(`${where} must be true or false`, where);
      return value;
    case 'DATE': {
      const parsed = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? DateTime.fromISO(value, { zone: 'UTC' }) : undefined;
      if (!parsed?.isValid) throw badInput(`${where} ${quote(value)} must be a calendar date such as 2030-03-10`, where);
      return value;
    }
    case 'DATETIME': {
      let parsed = typeof value === 'string' ? DateTime.fromISO(value.trim(), { zone }) : undefined;
      if (parsed && !parsed.isValid && typeof value === 'string') parsed = DateTime.fromSQL(value.trim(), { zone });
      if (!parsed?.isValid || parsed.year < 1970 || parsed.year > 9999) {
        throw badInput(`${where} ${quote(value)} must be a date-time such as 2030-03-10T09:00:00Z`, where);
      }
      return parsed.toUTC().toISO();
    }
    case 'JSON':
      return value;
  }
}

/** A value as an error quotes it: whole when short, else its length (an error never echoes a long input). */
export function quote(value: unknown): string {
  if (typeof value === 'string' && value.length > 80) return `(a text of ${value.length} characters)`;
  const json = JSON.stringify(value);
  return json === undefined || json.length <= 100
    ? String(json)
    : `(a ${Array.isArray(value) ? 'list' : typeof value} of ${json.length} characters as JSON)`;
}
