import { ChronographError, badInput } from '../errors.js';

export type JsonObject = Record<string, unknown>;

export function assertArgDict(value: unknown, field = 'argDict'): JsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ChronographError('INVALID_ARG_DICT', `${field} must be a JSON object such as {"table": "users"}, not ${describe(value)}`, {
      field,
    });
  }
  return value as JsonObject;
}

export function assertIntRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw badInput(`${field} must be a whole number from ${min} to ${max}`, field);
  return value;
}

export function assertName(value: string, field: string): string {
  if (!/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(value)) {
    throw badInput(`${field} ${JSON.stringify(value)} must be a dotted name such as tasks.DataBackup`, field);
  }
  return value;
}

const TENANT = /^[A-Za-z0-9_.-]{1,64}$/;

/** Tenant ids are 1-64 letters, digits, dots, dashes or underscores (they appear in URLs and logs). */
export function assertTenantId(value: unknown, field = 'tenantId'): string {
  if (typeof value !== 'string' || !TENANT.test(value)) {
    throw badInput(`${field} must be 1-64 letters, digits, dots, dashes or underscores`, field);
  }
  return value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function assertId(value: string, field = 'id'): string {
  if (!UUID.test(value)) throw badInput(`${field} ${JSON.stringify(value)} is not a task id (a UUID)`, field);
  return value.toLowerCase();
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
