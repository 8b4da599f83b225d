import { IANAZone } from 'luxon';

/** A change of a zone's UTC offset: from `at` on, local time is `at + offsetAfter` (all in ms). */
export interface Transition {
  at: number;
  offsetBefore: number;
  offsetAfter: number;
}

/**
 * What a wall-clock time (local milliseconds: the local date and time read as if it were UTC) is in a
 * zone: one instant; none, because the clocks jump over it (`transition` is the jump); or two, because
 * the clocks go back over it.
 */
export type WallClock =
  | { kind: 'single'; at: number }
  | { kind: 'gap'; transition: Transition }
  | { kind: 'repeated'; first: number; second: number; transition: Transition };

const HOUR = 3_600_000;
/** Transitions are found by sampling the offset this often; no zone changes twice within 6 hours. */
const SAMPLE_MS = 6 * HOUR;
/** Transitions are computed and cached per chunk of time of this length. */
const CHUNK_MS = 30 * 24 * HOUR;
const MAX_CACHED_CHUNKS = 4096;
const CLOCK_FIELDS = { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' } as const;
const CLOCK = /^(\d{1,2})\/(\d{1,2})\/(\d{4}), (\d{2}):(\d{2}):(\d{2})$/;
const YEAR_1000 = Date.UTC(1000, 0, 2);

/**
 * One IANA time zone's offsets and transitions, read from the platform's time-zone data (Intl, through
 * Luxon). The scheduling rules for wall-clock times (src/time/schedule.ts) are built on `resolve` and
 * `transitionsBetween`.
 */
export class TimeZone {
  private static readonly zones = new Map<string, TimeZone>();
  private readonly zone: IANAZone;
  private readonly chunks = new Map<number, Transition[]>();
  /** Local date and time as `M/D/YYYY, HH:MM:SS`: one `format` costs a fifth of Luxon's `offset` (formatToParts). */
  private readonly clock: Intl.DateTimeFormat;

  private constructor(readonly name: string) {
    this.zone = IANAZone.create(name);
    if (!this.zone.isValid) throw new RangeError(`${name} is not an IANA time zone`);
    this.clock = new Intl.DateTimeFormat('en-US', { timeZone: name, hourCycle: 'h23', ...CLOCK_FIELDS });
  }

  /** The zone named `name` (callers validate names first: an unknown one throws a RangeError). */
  static get(name: string): TimeZone {
    let zone = TimeZone.zones.get(name);
    if (!zone) {
      zone = new TimeZone(name);
      if (TimeZone.zones.size > 1000) TimeZone.zones.clear();
      TimeZone.zones.set(name, zone);
    }
    return zone;
  }

  /** The UTC offset in effect at instant `at`, in milliseconds (local = at + offset). */
  offsetMs(at: number): number {
    // What Luxon's offset computes (the local fields read as UTC, minus the instant in whole seconds), from
    // one `format`; Luxon before the year 1000 (3-digit years, and BC ones en-US shows without their era).
    const m = at >= YEAR_1000 ? CLOCK.exec(this.clock.format(at)) : null;
    if (m) {
      const local = Date.UTC(+m[3]!, +m[1]! - 1, +m[2]!, +m[4]! % 24, +m[5]!, +m[6]!);
      return local - (at - (((at % 1000) + 1000) % 1000));
    }
    return Math.round(this.zone.offset(at) * 60_000);
  }

  /** Local milliseconds of instant `at`: the local date and time, read as if it were UTC. */
  local(at: number): number {
    return at + this.offsetMs(at);
  }

  /** Every transition with `from < at <= to`, in order. */
  transitionsBetween(from: number, to: number): Transition[] {
    const found: Transition[] = [];
    for (let chunk = Math.floor(from / CHUNK_MS); chunk * CHUNK_MS <= to; chunk++) {
      for (const t of this.chunk(chunk)) if (t.at > from && t.at <= to) found.push(t);
    }
    return found;
  }

  /** The last transition at or before `at` within `lookBackMs`, if any. */
  transitionBefore(at: number, lookBackMs = 2 * 24 * HOUR): Transition | undefined {
    return this.transitionsBetween(at - lookBackMs, at).at(-1);
  }

  /** The instants whose local time is `local` (see WallClock). */
  resolve(local: number): WallClock {
    // Any instant with this local time lies within a day of `local` read as UTC (offsets are under 24 h).
    const around = this.transitionsBetween(local - 26 * HOUR, local + 26 * HOUR);
    const offsets = new Set([this.offsetMs(local - 26 * HOUR), ...around.map((t) => t.offsetAfter)]);
    const instants = [...offsets]
      .map((o) => local - o)
      .filter((at) => this.local(at) === local)
      .sort((a, b) => a - b);
    if (instants.length === 0) {
      const transition = around.find((t) => t.at + t.offsetBefore <= local && local < t.at + t.offsetAfter)!;
      return { kind: 'gap', transition };
    }
    if (instants.length === 1) return { kind: 'single', at: instants[0]! };
    const [first, second] = instants as [number, number];
    const transition = around.find((t) => t.at > first && t.at <= second)!;
    return { kind: 'repeated', first, second, transition };
  }

  private chunk(index: number): Transition[] {
    let transitions = this.chunks.get(index);
    if (transitions) return transitions;
    transitions = [];
    const start = index * CHUNK_MS;
    let previousAt = start;
    let previous = this.offsetMs(start);
    for (let at = start + SAMPLE_MS; at <= start + CHUNK_MS; at += SAMPLE_MS) {
      const offset = this.offsetMs(at);
      if (offset !== previous) transitions.push(this.bisect(previousAt, at, previous, offset));
      previousAt = at;
      previous = offset;
    }
    if (this.chunks.size >= MAX_CACHED_CHUNKS) this.chunks.clear();
    this.chunks.set(index, transitions);
    return transitions;
  }

  /** The first whole second in (lo, hi] with the offset `after` (the offset is `before` at lo). */
  private bisect(lo: number, hi: number, before: number, after: number): Transition {
    let low = lo / 1000;
    let high = hi / 1000;
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (this.offsetMs(mid * 1000) === before) low = mid;
      else high = mid;
    }
    return { at: high * 1000, offsetBefore: before, offsetAfter: after };
  }
}

/** `+05:30` / `-04:00` for an offset in milliseconds. */
export function formatOffset(offsetMs: number): string {
  const minutes = Math.round(Math.abs(offsetMs) / 60_000);
  const sign = offsetMs < 0 ? '-' : '+';
  return `${sign}${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** `2030-03-10T02:30:00` for local milliseconds (milliseconds shown only when there are some). */
export function formatLocal(local: number): string {
  const iso = new Date(local).toISOString();
  return iso.endsWith('.000Z') ? iso.slice(0, 19) : iso.slice(0, 23);
}

/** `02:30` (or `02:30:15`) for local milliseconds. */
export function formatClock(local: number): string {
  const iso = new Date(local).toISOString();
  return iso.slice(17, 19) === '00' ? iso.slice(11, 16) : iso.slice(11, 19);
}
