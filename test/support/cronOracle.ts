/**
 * A deliberately plain cron matcher and next-run search for the property test, written independently of
 * croner and of src/time: it parses the fields itself, reads local time with Intl, and finds the next run
 * by stepping through real time minute by minute (skipping whole local hours that cannot match),
 * applying the README's DST rules literally.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;

interface DayOfMonth {
  star: boolean;
  days: Set<number>;
  last: boolean;
  lastMinus: number | null;
  nearest: Set<number>;
  lastWeekday: boolean;
}

interface DayOfWeek {
  star: boolean;
  days: Set<number>;
  /** weekday → which occurrences in the month (1-5) */
  nth: Map<number, Set<number>>;
  lastOf: Set<number>;
}

export interface OracleCron {
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  months: Set<number>;
  dom: DayOfMonth;
  dow: DayOfWeek;
  and: boolean;
  fixedTime: boolean;
}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function value(text: string, names: string[] | null, base: number): number {
  const upper = text.toUpperCase();
  if (names?.includes(upper)) return names.indexOf(upper) + base;
  if (!/^\d+$/.test(text)) throw new Error(`not a number: ${text}`);
  return Number(text);
}

/** `*`, `?`, `a`, `a-b`, `*\/n`, `a-b/n`, `a/n`, comma lists. */
function values(field: string, min: number, max: number, names: string[] | null = null, base = min): Set<number> {
  const out = new Set<number>();
  for (const item of field.split(',')) {
    const [range, stepText] = item.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let from: number;
    let to: number;
    if (range === '*' || range === '?') [from, to] = [min, max];
    else if (range!.includes('-')) {
      const [a, b] = range!.split('-');
      [from, to] = [value(a!, names, base), value(b!, names, base)];
    } else {
      from = value(range!, names, base);
      to = stepText === undefined ? from : max;
    }
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}

export function parseOracle(expression: string): OracleCron {
  const text = MACROS[expression.trim().toLowerCase()] ?? expression.trim();
  const parts = text.split(/\s+/);
  if (parts.length === 5) parts.unshift('0');
  const [sec, min, hour, domField, monthField, dowField] = parts as [string, string, string, string, string, string];
  const dom: DayOfMonth = {
    star: domField === '*' || domField === '?',
    days: new Set(),
    last: false,
    lastMinus: null,
    nearest: new Set(),
    lastWeekday: false,
  };
  if (!dom.star) {
    for (const item of domField.split(',')) {
      if (item.toUpperCase() === 'L') dom.last = true;
      else if (item.toUpperCase() === 'LW') dom.lastWeekday = true;
      else if (/^L-\d+$/i.test(item)) dom.lastMinus = Number(item.slice(2));
      else if (/^\d+W$/i.test(item)) dom.nearest.add(Number(item.slice(0, -1)));
      else for (const d of values(item, 1, 31)) dom.days.add(d);
    }
  }
  const and = dowField.startsWith('+');
  const dowText = dowField.replace(/^\+/, '');
  const dow: DayOfWeek = { star: dowText === '*' || dowText === '?', days: new Set(), nth: new Map(), lastOf: new Set() };
  if (!dow.star) {
    for (const item of dowText.split(',')) {
      const nth = /^(\w+)#(\d)$/.exec(item);
      const last = /^(\w+?)L$/i.exec(item);
      if (nth) {
        const day = value(nth[1]!, DAYS, 0) % 7;
        dow.nth.set(day, new Set([...(dow.nth.get(day) ?? []), Number(nth[2])]));
      } else if (last) dow.lastOf.add(value(last[1]!, DAYS, 0) % 7);
      else for (const d of values(item, 0, 7, DAYS, 0)) dow.days.add(d % 7);
    }
  }
  const seconds = values(sec, 0, 59);
  const minutes = values(min, 0, 59);
  const hours = values(hour, 0, 23);
  return {
    seconds,
    minutes,
    hours,
    months: values(monthField, 1, 12, MONTHS, 1),
    dom,
    dow,
    and,
    fixedTime: seconds.size === 1 && minutes.size === 1 && hours.size < 24,
  };
}

interface Local {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  weekday: number;
}

const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
const weekdayOf = (year: number, month: number, day: number) => new Date(Date.UTC(year, month - 1, day)).getUTCDay();

function domMatches(dom: DayOfMonth, l: Local): boolean {
  const last = daysIn(l.year, l.month);
  if (dom.days.has(l.day) || (dom.last && l.day === last) || (dom.lastMinus !== null && l.day === last - dom.lastMinus)) return true;
  for (const n of dom.nearest) {
    if (n > last) continue;
    const wd = weekdayOf(l.year, l.month, n);
    const nearest = wd === 6 ? (n === 1 ? 3 : n - 1) : wd === 0 ? (n === last ? n - 2 : n + 1) : n;
    if (nearest === l.day) return true;
  }
  if (dom.lastWeekday) {
    const wd = weekdayOf(l.year, l.month, last);
    if (l.day === (wd === 6 ? last - 1 : wd === 0 ? last - 2 : last)) return true;
  }
  return false;
}

function dowMatches(dow: DayOfWeek, l: Local): boolean {
  if (dow.days.has(l.weekday)) return true;
  if (dow.nth.get(l.weekday)?.has(Math.ceil(l.day / 7))) return true;
  return dow.lastOf.has(l.weekday) && l.day + 7 > daysIn(l.year, l.month);
}

function dayMatches(c: OracleCron, l: Local): boolean {
  if (!c.months.has(l.month)) return false;
  if (c.dom.star && c.dow.star) return true;
  if (c.dom.star) return dowMatches(c.dow, l);
  if (c.dow.star) return domMatches(c.dom, l);
  return c.and ? domMatches(c.dom, l) && dowMatches(c.dow, l) : domMatches(c.dom, l) || dowMatches(c.dow, l);
}

const hourMatches = (c: OracleCron, l: Local) => dayMatches(c, l) && c.hours.has(l.hour);
const minuteMatches = (c: OracleCron, l: Local) => hourMatches(c, l) && c.minutes.has(l.minute);

/** Local fields of a "local ms" value (wall clock read as UTC). */
function fields(local: number): Local {
  const d = new Date(local);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    weekday: d.getUTCDay(),
  };
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** UTC offset (ms) at a whole-second instant, from Intl alone. */
export function offsetAt(zone: string, at: number): number {
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(zone, format);
  }
  const p = Object.fromEntries(format.formatToParts(new Date(at)).map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) - Math.floor(at / 1000) * 1000;
}

/**
 * The first run strictly after `after`, or null if none before `limit`. An instant runs the job when its
 * local time matches (except, for a fixed-time job, when that local time already occurred earlier: the
 * second copy of a repeated hour), or when it is the moment of a spring-forward jump and some local time
 * the clocks skipped matches.
 */
export function oracleNext(c: OracleCron, zone: string, after: number, limit: number): number | null {
  let m = Math.floor(after / MIN) * MIN;
  const seconds = [...c.seconds].sort((a, b) => a - b);
  while (m <= limit) {
    const offset = offsetAt(zone, m);
    const before = offsetAt(zone, m - 1000);
    if (offset > before && m > after) {
      for (let local = m + before; local < m + offset; local += MIN) if (minuteMatches(c, fields(local))) return m;
    }
    const l = fields(m + offset);
    if (minuteMatches(c, l) && !(c.fixedTime && isSecondCopy(zone, m, offset))) {
      const s = seconds.find((s) => m + s * 1000 > after);
      if (s !== undefined) return m + s * 1000;
    }
    // Skip to the next local day or hour when this one cannot match, but only when no offset change lies
    // in between (those stretches are walked minute by minute, so every jump of the clocks is seen).
    if (!dayMatches(c, l)) {
      const nextDay = m + ((24 - l.hour) * 60 - l.minute) * MIN;
      const nextHour = m + (60 - l.minute) * MIN;
      m = offsetAt(zone, nextDay - 1000) === offset ? nextDay : offsetAt(zone, nextHour - 1000) === offset ? nextHour : m + MIN;
    } else if (!hourMatches(c, l)) {
      const nextHour = m + (60 - l.minute) * MIN;
      m = offsetAt(zone, nextHour - 1000) === offset ? nextHour : m + MIN;
    } else {
      m += MIN;
    }
  }
  return null;
}

/** Whether the local time at `m` already occurred within the previous three hours (clocks went back). */
export function isSecondCopy(zone: string, m: number, offset: number): boolean {
  const earlier = offsetAt(zone, m - 3 * HOUR);
  if (earlier <= offset) return false;
  const first = m + offset - earlier;
  return first < m && offsetAt(zone, first) === earlier;
}
