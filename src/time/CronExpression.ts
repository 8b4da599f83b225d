import { Cron, type CronOptions, CronPattern } from 'croner';
import { ChronographError } from '../errors.js';

const FIELDS_5 = ['minute', 'hour', 'day of month', 'month', 'day of week'];
const FIELDS_6 = ['second', ...FIELDS_5];
const DAY_MS = 86_400_000;
const CACHE_LIMIT = 10_000;

/**
 * croner, used only on the "local time line": dates are local wall-clock times read as UTC, so croner
 * never sees a time zone and its own DST handling never applies — the DST rules are Chronograph's, in
 * src/time/schedule.ts. `sloppyRanges` admits Quartz's `a/n`; a bare `/n` is refused before croner sees it.
 */
const CRONER_OPTIONS: CronOptions = { utcOffset: 0, mode: '5-or-6-parts', sloppyRanges: true, domAndDow: false };

/**
 * A validated cron expression and its matches in local time. Standard (Vixie) semantics through croner:
 * 5 fields, or 6 with seconds first; `*` `?` lists, ranges, steps (`*\/n`, `a-b/n`, Quartz `a/n`); month
 * and day names; 0 or 7 for Sunday; `L` `W` `LW` in day-of-month, `nL` and `n#k` in day-of-week; the `@`
 * macros; day-of-month and day-of-week ORed when both are restricted (`+` before the day-of-week ANDs
 * them). Quartz's `L-n` (n days before the last day of the month), which croner lacks, is added here.
 */
export class CronExpression {
  private static readonly cache = new Map<string, CronExpression>();

  /**
   * True when the job fires at fixed local times: one second, one minute, and not every hour
   * (`30 2 * * *`, `0 9,17 * * 1-5`). Such a job fires once in a repeated (fall-back) hour; any other
   * job — several times an hour, or every hour — fires in both copies of it.
   */
  readonly fixedTime: boolean;
  private readonly cron: Cron;

  private constructor(
    readonly expression: string,
    pattern: string,
    /** For `L-n`: the day test croner cannot do; the croner pattern then has `*` for both day fields. */
    private readonly dayMatches?: (local: Date) => boolean,
  ) {
    this.cron = new Cron(pattern, CRONER_OPTIONS);
    const parsed = new CronPattern(pattern, undefined, { mode: '5-or-6-parts', sloppyRanges: true });
    const count = (values: number[]) => values.filter(Boolean).length;
    this.fixedTime = count(parsed.second) === 1 && count(parsed.minute) === 1 && count(parsed.hour) < 24;
  }

  /** Parses and validates `expression`; INVALID_CRON naming `field` (and the cron field at fault) otherwise. */
  static parse(expression: string, field = 'cronExpression'): CronExpression {
    const text = expression.trim().replace(/\s+/g, ' ');
    const cached = CronExpression.cache.get(text);
    if (cached) return cached;
    let parsed: CronExpression;
    try {
      parsed = CronExpression.build(text);
    } catch (error) {
      throw invalid(expression, field, error instanceof SyntaxProblem ? error.message : explain(text, error));
    }
    if (parsed.nextLocal(Date.UTC(1970, 0, 1)) === null) {
      throw invalid(expression, field, 'it matches no date (such as 30 February)');
    }
    if (CronExpression.cache.size >= CACHE_LIMIT) CronExpression.cache.clear();
    CronExpression.cache.set(text, parsed);
    return parsed;
  }

  private static build(text: string): CronExpression {
    if (text.startsWith('@')) return new CronExpression(text, text);
    const parts = text.split(' ');
    if (parts.length !== 5 && parts.length !== 6)
      throw new SyntaxProblem(`it has ${parts.length} fields; use 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`);
    const names = parts.length === 6 ? FIELDS_6 : FIELDS_5;
    parts.forEach((part, i) => {
      if (part.split(',').some((item) => item.startsWith('/')))
        throw new SyntaxProblem(
          `${names[i]} ${JSON.stringify(part)}: a step needs a start, as in */${part.split('/')[1]} or 0/${part.split('/')[1]}`,
        );
    });
    const dom = parts.length - 3;
    const lastMinus = /^L-(\d{1,2})$/i.exec(parts[dom]!);
    if (!lastMinus) return new CronExpression(text, text);
    const back = Number(lastMinus[1]);
    if (back > 30) throw new SyntaxProblem(`day of month ${JSON.stringify(parts[dom])}: L-n needs n from 0 to 30`);
    const dowField = parts[dom + 2]!;
    const dowRestricted = dowField !== '*' && dowField !== '?';
    const and = dowField.startsWith('+');
    // The day-of-week field alone, as croner reads it (every second of the matching days).
    const dow = dowRestricted ? new Cron(`* * * * * ${dowField.replace(/^\+/, '')}`, CRONER_OPTIONS) : undefined;
    const rest = [...parts];
    rest[dom] = '*';
    rest[dom + 2] = '*';
    const lastDayBack = (local: Date) => {
      const last = new Date(Date.UTC(local.getUTCFullYear(), local.getUTCMonth() + 1, 0)).getUTCDate();
      return local.getUTCDate() === last - back;
    };
    const dayMatches = !dow ? lastDayBack : and ? (d: Date) => lastDayBack(d) && dow.match(d) : (d: Date) => lastDayBack(d) || dow.match(d);
    return new CronExpression(text, rest.join(' '), dayMatches);
  }

  /** The first match strictly after local time `local` (ms, read as UTC), or null (none before year 3000). */
  nextLocal(local: number): number | null {
    let after = local;
    for (;;) {
      const next = this.cron.nextRun(new Date(after));
      if (!next) return null;
      if (!this.dayMatches || this.dayMatches(next)) return next.getTime();
      // Not an L-n day (or day of week): go on from the end of that day.
      after = Math.floor(next.getTime() / DAY_MS) * DAY_MS + DAY_MS - 1;
    }
  }
}

/** A problem found before croner reads the expression; its message is already the explanation. */
class SyntaxProblem extends Error {}

function invalid(expression: string, field: string, why: string): ChronographError {
  return new ChronographError(
    'INVALID_CRON',
    `${field} ${JSON.stringify(expression)} is not a valid cron expression: ${why}. See "Cron and time zones" in the README for the syntax`,
    { field },
  );
}

/** croner's reason, prefixed with the cron field at fault when one field alone fails. */
function explain(text: string, error: unknown): string {
  const reason = (error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /, '');
  const parts = text.split(' ');
  if (text.startsWith('@') || (parts.length !== 5 && parts.length !== 6)) return reason;
  const names = parts.length === 6 ? FIELDS_6 : FIELDS_5;
  for (const [i, part] of parts.entries()) {
    if (/^L-\d+$/i.test(part)) continue; // ours, not croner's (see build)
    const alone = parts.map((p, j) => (j === i ? p : '*'));
    try {
      new CronPattern(alone.join(' '), undefined, { mode: '5-or-6-parts', sloppyRanges: true });
    } catch (fieldError) {
      const why = (fieldError instanceof Error ? fieldError.message : String(fieldError)).replace(/^CronPattern: /, '');
      return `${names[i]} ${JSON.stringify(part)}: ${why}`;
    }
  }
  return reason;
}
