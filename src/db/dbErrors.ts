/**
 * What a database error says, wherever it comes from: the pg driver (`code` is the SQLSTATE), or Prisma
 * (`code` is its own P20xx, and the SQLSTATE is in `meta.code` or its driver adapter's
 * `meta.driverAdapterError.cause`, as `code` or `originalCode`). One place, so that the callers that map
 * errors (maskError, hooks' lock waits, forcedEnd's lock wait) read them alike.
 */
export function errorCodes(error: unknown): unknown[] {
  if (!(error instanceof Error)) return [];
  const { code, meta } = error as Error & {
    code?: unknown;
    meta?: { code?: unknown; driverAdapterError?: { cause?: { code?: unknown; originalCode?: unknown } } };
  };
  const cause = meta?.driverAdapterError?.cause;
  return [code, meta?.code, cause?.code, cause?.originalCode];
}

/**
 * PostgreSQL's lock_timeout ran out (SQLSTATE 55P03, lock_not_available); also when a driver only says
 * so in its message.
 */
export function isLockTimeout(error: unknown): boolean {
  return errorCodes(error).includes('55P03') || /lock timeout|\b55P03\b/i.test(String((error as Error)?.message ?? ''));
}
