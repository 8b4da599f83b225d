import { badInput, ChronographError, type ErrorCode } from '../errors.js';

export type JsonObject = Record<string, unknown>;

/** How deeply a stored JSON value may nest (objects and arrays). */
export const MAX_JSON_DEPTH = 64;

export function assertArgDict(value: unknown, field = 'argDict', maxBytes?: number): JsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ChronographError('INVALID_ARG_DICT', `${field} must be a JSON object such as {"table": "users"}, not ${describe(value)}`, {
      field,
    });
  }
  if (maxBytes !== undefined) assertJson(value, field, { maxBytes, code: 'INVALID_ARG_DICT' });
  return value as JsonObject;
}

/**
 * Checks that a JSON value (an argDict, a record's data, a template's arguments, a condition, a
 * handler's result) can be stored and returns its size: its JSON text in UTF-8 bytes, as PostgreSQL
 * receives it. Storable means nested at most MAX_JSON_DEPTH deep, finite numbers only, and strings and
 * keys without NUL characters or lone surrogates (jsonb refuses both; a text column would silently
 * replace a lone surrogate). Throws `code` (BAD_USER_INPUT by default) naming the offending part in
 * `field`. This is the one place JSON is measured: size limits (MAX_JSON_BYTES, tenant quotas) compare
 * against what it returns. Past `stopAbove` bytes it stops measuring and returns Infinity.
 */
export function measureJson(value: unknown, field: string, code: ErrorCode = 'BAD_USER_INPUT', stopAbove = Infinity): number {
  const fail = (where: string, why: string): never => {
    throw new ChronographError(code, `${where} ${why}`, { field: where });
  };
  // A lower bound of the size (a string takes at least as many UTF-8 bytes as UTF-16 units), so an
  // oversized value is refused without serialising it.
  let atLeast = 0;
  const visit = (node: unknown, where: string, depth: number): void => {
    if (node === null || typeof node === 'boolean') return;
    if (typeof node === 'string') {
      atLeast += node.length + 2;
      if (atLeast > stopAbove) throw new TooLarge();
      checkText(node, where, fail);
      return;
    }
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) fail(where, 'must be a finite number');
      return;
    }
    if (typeof node !== 'object') {
      fail(where, `is a ${typeof node}, which JSON cannot hold`);
      return;
    }
    if (depth >= MAX_JSON_DEPTH) fail(where, `nests deeper than ${MAX_JSON_DEPTH} levels`);
    const json = (node as { toJSON?: () => unknown }).toJSON;
    if (typeof json === 'function') {
      visit(json.call(node), where, depth);
      return;
    }
    if (Array.isArray(node)) {
      for (const [i, item] of node.entries()) visit(item, `${where}[${i}]`, depth + 1);
      return;
    }
    for (const [key, item] of Object.entries(node)) {
      checkText(key, `${where} key ${JSON.stringify(key.slice(0, 40))}`, fail);
      if (item !== undefined) visit(item, `${where}.${key}`, depth + 1);
    }
  };
  if (value === undefined) fail(field, 'is missing');
  try {
    visit(value, field, 0);
  } catch (error) {
    if (error instanceof TooLarge) return Infinity;
    throw error;
  }
  return Buffer.byteLength(JSON.stringify(value));
}

class TooLarge extends Error {}

/** measureJson, plus a size limit. */
export function assertJson(value: unknown, field: string, options: { maxBytes: number; code?: ErrorCode }): number {
  const bytes = measureJson(value, field, options.code, options.maxBytes);
  if (bytes > options.maxBytes) {
    const size = Number.isFinite(bytes) ? `${bytes} bytes` : `more than ${options.maxBytes} bytes`;
    throw new ChronographError(
      options.code ?? 'BAD_USER_INPUT',
      `${field} is ${size} of JSON; at most ${options.maxBytes} bytes are allowed (MAX_JSON_BYTES)`,
      {
        field,
        maxBytes: options.maxBytes,
      },
    );
  }
  return bytes;
}

/** With the u flag, a surrogate pair is one code point, so only lone surrogates match. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Text PostgreSQL can store: no NUL character (0x00) and no lone UTF-16 surrogate. */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

/** A text field PostgreSQL can store (see isStorableText), else BAD_USER_INPUT naming `field`. */
export function assertStorableText(text: string, field: string): string {
  checkText(text, field, (where, why) => {
    throw badInput(`${where} ${why}`, where);
  });
  return text;
}

/** The longest short label (a queue name: also a metrics label) and title, and free text (a reason, a description). */
export const MAX_LABEL_LENGTH = 200;
export const MAX_TITLE_LENGTH = 500;
export const MAX_TEXT_LENGTH = 10_000;

/**
 * A text input of at most `max` characters that PostgreSQL can store (see isStorableText), else
 * BAD_USER_INPUT naming `field`; the message gives the length, never the text itself.
 */
export function assertText(text: string, field: string, max: number): string {
  if (text.length > max) throw badInput(`${field} is ${text.length} characters long; at most ${max} are allowed`, field);
  return assertStorableText(text, field);
}

function checkText(text: string, where: string, fail: (where: string, why: string) => never): void {
  if (text.includes('\u0000')) fail(where, 'contains a NUL character (\\u0000), which cannot be stored');
  if (LONE_SURROGATE.test(text)) fail(where, 'contains a lone UTF-16 surrogate (not valid Unicode), which cannot be stored');
}

const FIRST_STORABLE_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_STORABLE_MS = Date.parse('9999-12-31T23:59:59.999Z');
/** The instants every DateTime argument accepts, as said in errors. */
export const STORABLE_DATES = 'from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z (years 1-9999, UTC)';

/**
 * Whether PostgreSQL's timestamptz and Prisma can store this instant and read it back: years 1-9999
 * in UTC (a year 0 or BC date makes the query fail, a later one is stored but cannot be read back).
 */
export function isStorableDate(date: Date): boolean {
  const ms = date.getTime();
  return ms >= FIRST_STORABLE_MS && ms <= LAST_STORABLE_MS;
}

/**
 * Whether `error` is PostgreSQL's unique violation (Prisma P2002) of the index `index`: the loser of
 * two concurrent creates of the same name, which a check before the insert cannot rule out. When the
 * driver does not name the index, any P2002 counts.
 */
export function isUniqueViolation(error: unknown, index: string): boolean {
  const known = error as {
    code?: unknown;
    meta?: { target?: unknown; driverAdapterError?: { cause?: { constraint?: { index?: unknown } } } };
  } | null;
  if (known?.code !== 'P2002') return false;
  const named = known.meta?.driverAdapterError?.cause?.constraint?.index ?? known.meta?.target;
  return typeof named !== 'string' || named === index;
}

export function assertIntRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw badInput(`${field} must be a whole number from ${min} to ${max}`, field);
  return value;
}

/** The longest dotted name (a template's fullName, a model's name): a unique index entry has to fit. */
export const MAX_NAME_LENGTH = 200;

export function assertName(value: string, field: string): string {
  if (value.length > MAX_NAME_LENGTH) {
    throw badInput(`${field} is ${value.length} characters long; a name has at most ${MAX_NAME_LENGTH}`, field);
  }
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

/**
 * What a cursor points into: `event` is a TaskEvent id in decimal (`TaskEvent.cursor`, `after` of
 * taskEvents and taskStatusChanged); `uuid` a row id handed out as it is (modelRecords); `connection`
 * the opaque cursor of a Relay connection over rows with UUID ids (tasks), which is base64 of
 * `GPC:S:<uuid>` (the format of Pothos' Prisma connections).
 */
/**
 * event: a TaskEvent id; uuid: a record id; connection: a connection cursor over uuids; idConnection: over
 * bigint ids (events, run logs, runs by the id of the event that started them).
 */
export type CursorKind = 'event' | 'uuid' | 'connection' | 'idConnection';

const MAX_EVENT_ID = 2n ** 63n - 1n;

/**
 * The one parser of cursors that clients send back, for every connection and event stream: anything
 * that is not a cursor of the expected kind is BAD_USER_INPUT naming `field`, before it reaches a query.
 */
export function parseCursor(kind: 'event', cursor: string, field: string): bigint;
export function parseCursor(kind: 'uuid' | 'connection', cursor: string, field: string): string;
export function parseCursor(kind: CursorKind, cursor: string, field: string): unknown;
export function parseCursor(kind: CursorKind, cursor: string, field: string): unknown {
  const refuse = (what: string): never => {
    throw badInput(`${field} ${JSON.stringify(cursor.length > 80 ? `${cursor.slice(0, 80)}…` : cursor)} is not ${what}`, field);
  };
  if (typeof cursor !== 'string') return refuse('a cursor');
  switch (kind) {
    case 'event':
      if (!/^\d{1,19}$/.test(cursor) || BigInt(cursor) > MAX_EVENT_ID) refuse('an event cursor (the decimal id of a TaskEvent)');
      return BigInt(cursor);
    case 'uuid':
      if (!UUID.test(cursor)) refuse('a cursor from this list (a record id)');
      return cursor.toLowerCase();
    case 'connection':
    case 'idConnection': {
      const notOurs = () => refuse('a cursor from this connection (pageInfo.endCursor or an edge cursor)');
      const decoded = /^[A-Za-z0-9+/]{1,400}={0,2}$/.test(cursor) ? Buffer.from(cursor, 'base64').toString('utf8') : '';
      if (!decoded.startsWith('GPC:') || Buffer.from(decoded).toString('base64') !== cursor) return notOurs();
      const body = decoded.slice(4);
      if (kind === 'connection') {
        const id = /^S:(.*)$/.exec(body)?.[1];
        if (!id || !UUID.test(id)) return notOurs();
        return id.toLowerCase();
      }
      const id = /^I:(\d{1,19})$/.exec(body)?.[1];
      if (!id || BigInt(id) > MAX_EVENT_ID) return notOurs();
      return BigInt(id);
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** What a queue name may hold: what QUEUE_CONCURRENCY can name (`[\w.-]`, ASCII). */
const QUEUE_CHAR = /[A-Za-z0-9_.-]/;
const QUEUE_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * A queue name as given (createTimerTask, updateTask), trimmed; null for a blank one (the template's
 * queue applies). At most MAX_LABEL_LENGTH characters, letters, digits, dots, dashes and underscores: a
 * queue is a Prometheus label of every task metric (a counter keeps each value it saw until restart) and
 * QUEUE_CONCURRENCY must be able to name it. Errors give the length or the position, never the text.
 */
export function assertQueue(queue: string, field = 'queue'): string | null {
  const trimmed = assertText(queue, field, MAX_LABEL_LENGTH).trim();
  if (!trimmed) return null;
  if (!QUEUE_NAME.test(trimmed)) {
    const at = [...trimmed].findIndex((c) => !QUEUE_CHAR.test(c)) + 1;
    throw badInput(
      `${field} may hold only letters, digits, dots, dashes and underscores (as QUEUE_CONCURRENCY names queues); character ${at} is none of them`,
      field,
    );
  }
  return trimmed;
}
