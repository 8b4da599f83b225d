import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { badInput } from '../errors.js';
import { type CursorKind, parseCursor } from '../tasks/validate.js';

/**
 * How a field pages, declared once in its `extensions.paging`: for `first`/`last`, the page size when
 * the client gives none and the largest it may ask for; for `after`/`before`, the kind of cursor. The
 * query cost (queryLimits.ts) multiplies a field's selection by its page size.
 */
export type Paging =
  | { defaultSize: number; maxSize: number; cursor?: CursorKind }
  | { cursor: CursorKind; defaultSize?: undefined; maxSize?: undefined };

const SIZE_ARGS = ['first', 'last'] as const;
const CURSOR_ARGS = ['after', 'before'] as const;

/** A field's paging declaration, if it has one. */
export function pagingOf(extensions: Readonly<Record<string, unknown>> | null | undefined): Paging | undefined {
  return extensions?.paging as Paging | undefined;
}

/** The number of items a field that pages by size returns at most for these (already checked) arguments. */
export function pageSize(paging: { defaultSize: number; maxSize: number }, args: Record<string, unknown>): number {
  const asked = args.first ?? args.last;
  return typeof asked === 'number' && asked >= 0 ? Math.min(asked, paging.maxSize) : paging.defaultSize;
}

/**
 * Checks the paging arguments of every field that takes them (`first`, `last`, `after`, `before`)
 * before its resolver runs, so that connections, lists and event streams all refuse bad ones the same
 * way: BAD_USER_INPUT naming the argument, never a masked error from a query built on them. A field
 * with such arguments must declare `extensions.paging`; building the schema fails otherwise.
 */
export class PagingPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object>,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> {
    const check = checkerFor(fieldConfig);
    if (!check) return resolver;
    return (parent, args, context, info) => {
      check(args as Record<string, unknown>);
      return resolver(parent, args, context, info);
    };
  }

  override wrapSubscribe(
    subscribe: GraphQLFieldResolver<unknown, Types['Context'], object> | undefined,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> | undefined {
    const check = checkerFor(fieldConfig);
    if (!check || !subscribe) return subscribe;
    return (parent, args, context, info) => {
      check(args as Record<string, unknown>);
      return subscribe(parent, args, context, info);
    };
  }
}

function checkerFor(fieldConfig: {
  args: Record<string, unknown>;
  extensions?: Readonly<Record<string, unknown>> | null;
  parentType: string;
  name: string;
}): ((args: Record<string, unknown>) => void) | undefined {
  const names = Object.keys(fieldConfig.args);
  const sizes = SIZE_ARGS.filter((name) => names.includes(name));
  // `before: DateTime` (pruneHistory) is a time, not a cursor.
  const isTime = (name: string) => {
    const ref = (fieldConfig.args[name] as { type?: { ref?: unknown } } | undefined)?.type?.ref;
    return ref === 'DateTime' || (ref as { name?: unknown } | undefined)?.name === 'DateTime';
  };
  const cursors = CURSOR_ARGS.filter((name) => names.includes(name) && !isTime(name));
  if (sizes.length === 0 && cursors.length === 0) return undefined;
  const paging = pagingOf(fieldConfig.extensions);
  const where = `${fieldConfig.parentType}.${fieldConfig.name}`;
  if (!paging) throw new Error(`${where} takes paging arguments but declares no extensions.paging (src/graphql/PagingPlugin.ts)`);
  if (cursors.length > 0 && !paging.cursor) throw new Error(`${where} takes a cursor but its extensions.paging names no cursor kind`);
  const maxSize = paging.maxSize;
  if (sizes.length > 0 && maxSize === undefined) throw new Error(`${where} takes first or last but its extensions.paging has no maxSize`);
  return (args) => {
    for (const name of sizes) {
      const value = args[name];
      if (value == null) continue;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > maxSize!) {
        throw badInput(`${name} must be a whole number from 0 to ${maxSize}`, name);
      }
    }
    if (args.first != null && args.last != null) throw badInput('Give first or last, not both', 'last');
    if (args.after != null && args.before != null) throw badInput('Give after or before, not both', 'before');
    if (args.first != null && args.before != null) throw badInput('first pages forward from after; use last with before', 'before');
    if (args.last != null && args.after != null) throw badInput('last pages back from before; use first with after', 'after');
    for (const name of cursors) {
      const value = args[name];
      if (value != null) parseCursor(paging.cursor!, value as string, name);
    }
  };
}

const pluginName = 'paging';

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      paging: PagingPlugin<Types>;
    }
  }
}

SchemaBuilder.registerPlugin(pluginName, PagingPlugin);

export default pluginName;

type Order = readonly (readonly [field: string, direction: 'asc' | 'desc'])[];

/**
 * Keyset paging for a prismaConnection: replaces the `cursor` + `skip: 1` of the query Pothos plans by a
 * condition on the cursor's values, to be ANDed with the field's own filter. Prisma's `cursor` looks its
 * row up by id alone, outside the tenant filter, so a cursor naming another tenant's row paged from it
 * and a cursor whose row no longer exists gave an empty page (and `skip: 1` could drop a real row); a
 * keyset condition needs no row at all: the page is the rows of the caller's list beyond the cursor's
 * position in `order` (the list's ordering, a unique key), whatever the cursor names.
 * `take` < 0 (last/before) pages backwards from the cursor.
 */
export function keysetPage<Q extends { cursor?: unknown; skip?: unknown; take?: number }>(
  query: Q,
  order: Order,
): { query: Omit<Q, 'cursor' | 'skip'>; where: Record<string, unknown> } {
  const { cursor, skip: _skip, ...rest } = query;
  if (cursor == null) return { query: rest, where: {} };
  // { id } for a one-column cursor, { tenantId_startedAt_id: { … } } for a compound one.
  const entries = Object.values(cursor as Record<string, unknown>);
  const only = entries.length === 1 ? entries[0] : undefined;
  const values = (only !== null && typeof only === 'object' && !(only instanceof Date) ? only : cursor) as Record<string, unknown>;
  const backward = (query.take ?? 0) < 0;
  const beyond = order.map(([field, direction], i) => {
    const value = values[field];
    if (value === undefined) throw new Error(`keysetPage: the cursor has no ${field}`);
    return {
      ...Object.fromEntries(order.slice(0, i).map(([before]) => [before, values[before]])),
      [field]: { [(direction === 'asc') !== backward ? 'gt' : 'lt']: value },
    };
  });
  return { query: rest, where: beyond.length === 1 ? beyond[0]! : { OR: beyond } };
}
