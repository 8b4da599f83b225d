import { type PGlite, parse, protocol, types } from '@electric-sql/pglite';
import type { SqlPool, SqlRunner } from './SqlPool.js';

const { serialize } = protocol;

/** Statements kept prepared at most; the least recently used beyond that is closed. */
const MAX_PREPARED = 500;

/**
 * PGlite's `query` sends Parse, Describe, Bind, Describe, Execute and Sync to the WebAssembly backend as
 * six calls, and parses and plans the text at every call. Here each distinct text is prepared once per
 * PGlite instance (Parse + Describe, under a name of its own: its parameters' types) and each run is one
 * call of Bind + Describe + Execute + Sync on the prepared statement, whose rows PGlite's own result
 * parser turns into exactly what `query` returns: parsing and analysis happen once, and one call into
 * the backend replaces six. After five runs PostgreSQL may keep a generic plan of a statement: that
 * it still fits once the tables have grown is pgliteStatistics.ts's concern (statistics never frozen at
 * "empty", and an ANALYZE, which makes the cached plans again, once a table has grown). Statements
 * are kept in least-recently-used order, at most MAX_PREPARED.
 *
 * Locking is PGlite's: a statement outside a transaction takes the transaction lock (it never runs inside
 * another caller's open transaction) and then the query lock, as `query` does; inside `transaction`
 * the caller holds the transaction lock already.
 */
class PreparedStatements {
  /** Prepared statements by text: their names and their parameters' type OIDs; oldest use first. */
  private readonly byText = new Map<string, { name: string; types: number[] }>();
  /** Statements evicted from byText, closed with the next call into the backend. */
  private closing: string[] = [];
  private counter = 0;

  constructor(private readonly db: PGlite) {}

  /** Runs `text` outside any transaction. */
  query<Row>(text: string, params: unknown[] = []): Promise<Row[]> {
    return this.db._runExclusiveTransaction(() => this.run<Row>(text, params, false));
  }

  /** Runs `text` in the transaction whose lock the caller holds. */
  run<Row>(text: string, params: unknown[], inTransaction: boolean): Promise<Row[]> {
    const { db } = this;
    return db.runExclusive(async () => {
      for (let attempt = 1; ; attempt++) {
        const statement = await this.prepare(text);
        // Serialised as PGlite's query does: by the parameter's type, else as text.
        const values = params.map((value, i) => {
          if (value === null || value === undefined) return null;
          const serializer = db.serializers[statement.types[i]!];
          return serializer ? serializer(value) : String(value);
        });
        try {
          const { messages } = await db.execProtocol(
            concat(
              serialize.bind({ statement: statement.name, values }),
              serialize.describe({ type: 'P' }),
              serialize.execute({}),
              serialize.sync(),
            ),
            { syncToFs: !inTransaction },
          );
          return rowsOf<Row>(messages, db.parsers);
        } catch (error) {
          // The statement no longer fits the tables it was planned for (a table's columns changed): it
          // never ran, so it is prepared again and run once more.
          if (attempt > 1 || !isStalePlan(error)) throw error;
          this.forget(text);
        }
      }
    });
  }

  /** The prepared statement for `text`, preparing it now if needed; the caller holds the query lock. */
  private async prepare(text: string): Promise<{ name: string; types: number[] }> {
    const known = this.byText.get(text);
    if (known) {
      this.byText.delete(text); // most recently used last
      this.byText.set(text, known);
      return known;
    }
    const name = `pglite_${++this.counter}`;
    const closes = this.closing.map((old) => serialize.close({ type: 'S', name: old }));
    this.closing = [];
    const { messages } = await this.db.execProtocol(
      concat(...closes, serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()),
      { syncToFs: false },
    );
    const statement = { name, types: parse.parseDescribeStatementResults(messages) };
    this.byText.set(text, statement);
    if (this.byText.size > MAX_PREPARED) this.forget(this.byText.keys().next().value!);
    return statement;
  }

  private forget(text: string): void {
    const statement = this.byText.get(text);
    if (!statement) return;
    this.byText.delete(text);
    this.closing.push(statement.name);
  }
}

type BackendMessage = Awaited<ReturnType<PGlite['execProtocol']>>['messages'][number];
const { RowDescriptionMessage, DataRowMessage } = protocol.messages;

/**
 * The rows of one statement's answer, as PGlite's parse.parseResults makes them (each field through
 * the parser of its type) but without what that costs at each call: it copies the whole table of type
 * parsers (316 entries, about 0.1 ms) and builds every row through arrays and Object.fromEntries.
 */
function rowsOf<Row>(messages: BackendMessage[], parsers: PGlite['parsers']): Row[] {
  let fields: InstanceType<typeof RowDescriptionMessage>['fields'] = [];
  const rows: Record<string, unknown>[] = [];
  for (const message of messages) {
    // By name, as PGlite's own parser tells them (not instanceof, which a second copy of the classes would defeat).
    if (message.name === 'rowDescription') fields = (message as InstanceType<typeof RowDescriptionMessage>).fields;
    else if (message.name === 'dataRow') {
      const values = (message as InstanceType<typeof DataRowMessage>).fields;
      const row: Record<string, unknown> = {};
      for (let i = 0; i < fields.length; i++) row[fields[i]!.name] = types.parseType(values[i] ?? null, fields[i]!.dataTypeID, parsers);
      rows.push(row);
    }
  }
  return rows as Row[];
}

/** "cached plan must not change result type" (0A000) or a prepared statement that is gone (26000). */
function isStalePlan(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === '26000' || (code === '0A000' && String((error as Error).message).includes('cached plan'));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * The hot path's SqlPool on PGlite: a Statement runs prepared (see PreparedStatements; its text names it
 * here), a plain string as PGlite's `query` runs it, planned for its parameters each time (as on
 * PostgreSQL, where strings go unnamed).
 */
export function pglitePool(db: PGlite): SqlPool {
  const statements = new PreparedStatements(db);
  return {
    query: async (s, params) =>
      (typeof s === 'string' ? (await db.query(s, params)).rows : await statements.query(s.text, params)) as never,
    transaction: (fn) =>
      db.transaction((tx) => {
        const runner: SqlRunner = {
          query: async (s, params) => {
            if (typeof s === 'string') return (await tx.query(s, params)).rows as never;
            if (tx.closed) throw new Error('Transaction is closed');
            return (await statements.run(s.text, params ?? [], true)) as never;
          },
        };
        return fn(runner);
      }),
    async close() {},
  };
}
