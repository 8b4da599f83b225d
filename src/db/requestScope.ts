import type { PrismaClient } from '../generated/prisma/client.js';
import type { SqlPool } from './SqlPool.js';

/**
 * The operation a GraphQL request runs, as the database sees it: every statement started on its behalf
 * checks `signal` first and throws its reason instead of running once it has aborted (the request's time
 * budget ran out, or its client went away; useRequestBudget sets it), inside transactions too, which then
 * roll back. A statement already running is bounded by PostgreSQL's statement_timeout.
 *
 * The scope is handed down explicitly: the request's context holds a Prisma client and services bound to
 * it (scopedPrisma, the services' `withScope`), and work shared by several requests or outliving one (a
 * run its create started, a subscription execution shared by subscribers) uses the unbound ones. It used
 * to be found through Node's AsyncLocalStorage, which on Node 20 turns on a promise hook for the whole
 * process once used: every promise of every request, and of the scheduler, paid for it (docs/benchmarks.md,
 * 2026-12-07 afternoon).
 */
export class RequestScope {
  /** Set by useRequestBudget when the operation starts; undefined for work no client waits on. */
  signal: AbortSignal | undefined = undefined;
  /**
   * What is already bound to this scope, by what it was bound from (a Prisma client, a service's deps): the
   * services of an operation share one bound client and one bound copy of each service they depend on.
   */
  private readonly bound = new Map<object, object>();

  /** `make()`'s result, made once per scope for `from`. */
  once<T extends object>(from: object, make: () => T): T {
    let known = this.bound.get(from) as T | undefined;
    if (!known) {
      known = make();
      this.bound.set(from, known);
    }
    return known;
  }

  throwIfAborted(): void {
    this.signal?.throwIfAborted();
  }
}

/** Prisma's raw-statement methods (each runs SQL when called). */
const RAW = new Set(['$queryRaw', '$queryRawUnsafe', '$executeRaw', '$executeRawUnsafe', '$queryRawTyped']);

/**
 * `client` for work done in `scope`: each model operation, raw statement and transaction checks the scope
 * first, and an interactive transaction's client is bound too. A Proxy, so that binding a request costs two
 * small objects and the model delegates it touches, not a Prisma client extension (`$extends` per request
 * cost 23-47 µs and slowed its first query by about 0.1 ms).
 */
export function scopedPrisma<T extends PrismaClient | object>(client: T, scope: RequestScope): T {
  return scope.once(client, () => bindClient(client, scope));
}

function bindClient<T extends object>(client: T, scope: RequestScope): T {
  const delegates = new Map<string, object>();
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof prop !== 'string') return value;
      if (prop === '$transaction' && typeof value === 'function') {
        return (arg: unknown, options?: unknown) => {
          scope.throwIfAborted();
          return typeof arg === 'function'
            ? value.call(target, (tx: object) => (arg as (tx: object) => unknown)(scopedPrisma(tx, scope)), options)
            : value.call(target, arg, options);
        };
      }
      if (typeof value === 'function') return RAW.has(prop) ? checked(scope, value.bind(target)) : value.bind(target);
      // A model delegate (`task`, `taskTemplate`…): every method of it runs a statement.
      if (value && typeof value === 'object' && !prop.startsWith('$') && !prop.startsWith('_')) {
        let delegate = delegates.get(prop);
        if (!delegate) {
          delegate = scopedDelegate(value, scope);
          delegates.set(prop, delegate);
        }
        return delegate;
      }
      return value;
    },
  });
}

function scopedDelegate(delegate: object, scope: RequestScope): object {
  return new Proxy(delegate, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? checked(scope, value.bind(target)) : value;
    },
  });
}

/** `fn`, checking `scope` before each call: the bound Prisma client (raw statements, model delegates) and SQL pool go through it. */
function checked<F extends (...args: never[]) => unknown>(scope: RequestScope, fn: F): F {
  return ((...args: Parameters<F>) => {
    scope.throwIfAborted();
    return fn(...args);
  }) as F;
}

/** `pool` for work done in `scope`: its statements, and those of its transactions, check it first. */
export function scopedPool(pool: SqlPool, scope: RequestScope): SqlPool {
  return {
    query: checked(scope, pool.query.bind(pool)),
    transaction: (fn) => {
      scope.throwIfAborted();
      return pool.transaction((tx) => fn({ query: checked(scope, tx.query.bind(tx)) }));
    },
    close: () => pool.close(),
  };
}

/** A service that can be bound to a request's scope (its `withScope`). */
interface Scopable {
  withScope(scope: RequestScope): unknown;
}

/** The database handles a service may hold in its deps. */
interface ServiceDeps {
  prisma: PrismaClient;
  db?: { sql: SqlPool };
}

/**
 * A service's `deps` for work done in `scope`, made once per scope: its Prisma client and SQL pool bound
 * to it, and each service among them bound too (`withScope`), so that a request's services all stop at
 * its next statement once it is abandoned. Everything else is shared with the unbound deps.
 */
export function scopedDeps<D extends ServiceDeps>(deps: D, scope: RequestScope): D {
  return scope.once(deps, () => {
    const bound: Record<string, unknown> = { ...(deps as object), prisma: scopedPrisma(deps.prisma, scope) };
    for (const [key, value] of Object.entries(deps)) {
      if (value && typeof (value as Partial<Scopable>).withScope === 'function') bound[key] = (value as Scopable).withScope(scope);
    }
    // The Database is a plain object (src/db/Database.ts): its other members are kept as they are.
    if (deps.db) bound.db = { ...deps.db, sql: scopedPool(deps.db.sql, scope) };
    return bound as D;
  });
}
