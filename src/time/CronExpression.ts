import { Cron, type CronOptions, CronPattern } from 'croner';
import { ChronographError } from '../errors.js';
import { assertText } from '../tasks/validate.js';

const FIELDS_5 = ['minute', 'hour', 'day of month', 'month', 'day of week'];
const FIELDS_6 = ['second', ...FIELDS_5];
const DAY_MS = 86_400_000;
const CACHE_LIMIT = 10_000;
const YEAR_MS = 365.2425 * DAY_MS;
/**
 * How far one search for the next match looks. Every accepted expression matches at least once in any
 * stretch this long (parse refuses the others), so a search never walks further than this — and neither
 * does the time-zone walk built on it (src/time/schedule.ts) — whatever the expression. Fifteen years
 * admit every date with a day of the week (`0 0 30 9 +6`, `L` in September on a Saturday: at most 12
 * years apart) and every leap day (at most 8), and refuse a 29 February that is a Monday (`0 0 29 2 +1`,
 * 28 to 40 years apart), which before made each search walk decades of croner steps and DST transitions.
 */
export const HORIZON_YEARS = 15;
/** The longest cron expression taken (a list of every minute of an hour is 170 characters). */
export const MAX_CRON_LENGTH = 500;
/** The Gregorian calendar repeats every 400 years: a cron expression's local matches do too. */
const CYCLE_START = 2000;
const CYCLE_YEARS = 400;
/** How many yearsCovered answers an expression keeps. */
const MAX_COVERED = 16;

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
  /** The last search, `[after, result]`: any search from `after` up to `result` finds `result` again. */
  private memoAfter = Number.NaN;
  private memoResult = Number.NaN;
  /** yearsCovered's answers by count and maxYears: a page of tasks with one expression asks the same. */
  private readonly covered = new Map<string, number>();

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
    // Before anything reads it (a query's cost reads it before the request's own checks) or caches it.
    assertText(expression, field, MAX_CRON_LENGTH);
    const text = expression.trim().replace(/\s+/g, ' ');
    const cached = CronExpression.cache.get(text);
    if (cached) return cached;
    let parsed: CronExpression;
    try {
      parsed = CronExpression.build(text);
    } catch (error) {
      throw invalid(expression, field, error instanceof SyntaxProblem ? error.message : explain(text, error));
    }
    if (parsed.search(Date.UTC(1970, 0, 1), Number.POSITIVE_INFINITY) === null) {
      throw invalid(expression, field, 'it matches no date (such as 30 February)');
    }
    parsed.assertFrequent(expression, field);
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

  /**
   * The first match strictly after local time `local` (ms, read as UTC), or null: none before the year 3000
   * (croner's limit), or none within HORIZON_YEARS (which parse lets no expression have, short of that limit).
   * One call asks croner once, or for `L-n` once per candidate day (at most HORIZON_YEARS of them), and
   * repeated calls from within the same wait between two matches (the DST walk of schedule.ts) ask nothing.
   */
  nextLocal(local: number): number | null {
    if (local >= this.memoAfter && local < this.memoResult) return this.memoResult;
    const found = this.search(local, local + HORIZON_YEARS * YEAR_MS);
    if (found !== null) {
      this.memoAfter = local;
      this.memoResult = found;
    }
    return found;
  }

  /**
   * How many years the first `count` matches from 2000-01-01 span, at most `maxYears`: for
   * previewSchedule's cost, which grows with the stretch of time its runs cover (each year the time-zone
   * walk reads; see src/graphql/schema/schedule.ts). Walked, not estimated from a few gaps: ten matches a
   * minute apart each 1 January (`0-9 0 1 1 *`) looked a minute apart and cover a century. Also what
   * Task.upcomingRuns charges for each task it lists, so answers are kept (for MAX_COVERED counts).
   */
  yearsCovered(count: number, maxYears: number): number {
    const key = `${count}/${maxYears}`;
    const known = this.covered.get(key);
    if (known !== undefined) return known;
    const years = this.walkYears(count, maxYears);
    if (this.covered.size >= MAX_COVERED) this.covered.clear();
    this.covered.set(key, years);
    return years;
  }

  private walkYears(count: number, maxYears: number): number {
    const start = Date.UTC(CYCLE_START, 0, 1);
    const limit = start + maxYears * YEAR_MS;
    let at = start;
    for (let n = 0; n < count; n++) {
      const next = this.nextLocal(at);
      if (next === null || next > limit) return maxYears;
      at = next;
    }
    return (at - start) / YEAR_MS;
  }

  /** The first match strictly after `local` and not after `limit`, or null. */
  private search(local: number, limit: number): number | null {
    let after = local;
    for (;;) {
      const next = this.cron.nextRun(new Date(after));
      if (!next || next.getTime() > limit) return null;
      if (!this.dayMatches || this.dayMatches(next)) return next.getTime();
      // Not an L-n day (or day of week): go on from the end of that day.
      after = Math.floor(next.getTime() / DAY_MS) * DAY_MS + DAY_MS - 1;
    }
  }

  /**
   * BAD_USER_INPUT naming `field` unless the expression matches at least once in every stretch of
   * HORIZON_YEARS. Checked over one 400-year cycle of the calendar (the matches repeat after it): from the
   * start of each year the next match must come within HORIZON_YEARS - 1 years, so from any instant of
   * that year it comes within HORIZON_YEARS. At most a few hundred searches, each bounded, once per
   * expression (parse caches).
   */
  private assertFrequent(expression: string, field: string): void {
    const within = (HORIZON_YEARS - 1) * YEAR_MS;
    for (let year = CYCLE_START; year < CYCLE_START + CYCLE_YEARS; ) {
      const from = Date.UTC(year, 0, 1);
      const next = this.search(from - 1, from + within);
      if (next === null) {
        const later = this.search(from - 1, Number.POSITIVE_INFINITY);
        // INVALID_CRON, as an expression that matches no date at all (0 0 30 2 *) is.
        throw new ChronographError(
          'INVALID_CRON',
          `${field} ${JSON.stringify(expression)} has no occurrence between ${year}-01-01 and ${year + HORIZON_YEARS - 1}-01-01` +
            (later === null ? '' : ` (the next is on ${new Date(later).toISOString().slice(0, 10)})`) +
            `: a cron schedule must run at least once every ${HORIZON_YEARS} years`,
          { field },
        );
      }
      year = Math.max(year + 1, new Date(next).getUTCFullYear());
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
