import { describe, expect, it } from 'vitest';
import { CronExpression } from '../src/time/CronExpression.js';
import { nextOccurrence, type Schedule, scheduledTime } from '../src/time/schedule.js';

const cron = (cronExpression: string, timezone = 'UTC'): Schedule => ({
  repeatType: 'CRON',
  cronExpression,
  intervalSeconds: null,
  timezone,
});

/** The next `n` occurrences strictly after `after`. */
function next(schedule: Schedule, after: string, n: number): string[] {
  const found: string[] = [];
  let at = new Date(after);
  for (let i = 0; i < n; i++) {
    const occurrence = nextOccurrence(schedule, at);
    if (!occurrence) break;
    found.push(occurrence.toISOString().replace('.000Z', 'Z'));
    at = occurrence;
  }
  return found;
}

/*
 * Expected instants are worked out by hand from the calendar, not by the code under test:
 * - America/New_York 2030: EST -05:00 until Sun 10 Mar 02:00 (07:00Z), then EDT -04:00 until
 *   Sun 3 Nov 02:00 EDT (06:00Z), when 01:00-01:59 repeats (05:00-05:59Z EDT, 06:00-06:59Z EST).
 * - Europe/London 2030: GMT until Sun 31 Mar 01:00Z (01:00 → 02:00 BST); BST until Sun 27 Oct 01:00Z
 *   (02:00 BST → 01:00 GMT), so 01:00-01:59 repeats (00:00-00:59Z BST, 01:00-01:59Z GMT).
 * - Australia/Lord_Howe 2030 (half-hour shifts): +11:00 until Sun 7 Apr 02:00 (6 Apr 15:00Z), then
 *   +10:30, so 01:30-01:59 repeats (14:30-14:59Z at +11, 15:00-15:29Z at +10:30); +10:30 until Sun 6 Oct
 *   02:00 (5 Oct 15:30Z), when the clocks jump to 02:30 +11:00.
 * - Asia/Kolkata +05:30 and Asia/Shanghai +08:00 all year (no DST).
 */
const DST_TABLE: [expression: string, zone: string, after: string, expected: string[]][] = [
  // New York, spring forward: a time in the gap runs at the jump (03:00 EDT = 07:00Z), once
  ['30 2 * * *', 'America/New_York', '2030-03-09T12:00:00Z', ['2030-03-10T07:00:00Z', '2030-03-11T06:30:00Z']],
  ['0 2 * * *', 'America/New_York', '2030-03-09T12:00:00Z', ['2030-03-10T07:00:00Z', '2030-03-11T06:00:00Z']],
  ['30 2 * * 0', 'America/New_York', '2030-03-09T12:00:00Z', ['2030-03-10T07:00:00Z', '2030-03-17T06:30:00Z']],
  ['30 * * * *', 'America/New_York', '2030-03-10T06:00:00Z', ['2030-03-10T06:30:00Z', '2030-03-10T07:00:00Z', '2030-03-10T07:30:00Z']],
  ['*/15 * * * *', 'America/New_York', '2030-03-10T06:40:00Z', ['2030-03-10T06:45:00Z', '2030-03-10T07:00:00Z', '2030-03-10T07:15:00Z']],
  ['*/20 * * * * *', 'America/New_York', '2030-03-10T06:59:30Z', ['2030-03-10T06:59:40Z', '2030-03-10T07:00:00Z', '2030-03-10T07:00:20Z']],
  ['0 9 * * *', 'America/New_York', '2030-03-10T00:00:00Z', ['2030-03-10T13:00:00Z', '2030-03-11T13:00:00Z']],
  // New York, fall back: a fixed time runs once, at the first 01:30 (EDT); sub-hourly and hourly jobs run in both copies
  ['30 1 * * *', 'America/New_York', '2030-11-02T12:00:00Z', ['2030-11-03T05:30:00Z', '2030-11-04T06:30:00Z']],
  ['0 1-3 * * *', 'America/New_York', '2030-11-03T04:30:00Z', ['2030-11-03T05:00:00Z', '2030-11-03T07:00:00Z', '2030-11-03T08:00:00Z']],
  [
    '0 * * * *',
    'America/New_York',
    '2030-11-03T03:30:00Z',
    ['2030-11-03T04:00:00Z', '2030-11-03T05:00:00Z', '2030-11-03T06:00:00Z', '2030-11-03T07:00:00Z'],
  ],
  [
    '*/15 * * * *',
    'America/New_York',
    '2030-11-03T05:40:00Z',
    [
      '2030-11-03T05:45:00Z',
      '2030-11-03T06:00:00Z',
      '2030-11-03T06:15:00Z',
      '2030-11-03T06:30:00Z',
      '2030-11-03T06:45:00Z',
      '2030-11-03T07:00:00Z',
    ],
  ],
  [
    '0,30 1 * * *',
    'America/New_York',
    '2030-11-03T04:30:00Z',
    ['2030-11-03T05:00:00Z', '2030-11-03T05:30:00Z', '2030-11-03T06:00:00Z', '2030-11-03T06:30:00Z', '2030-11-04T06:00:00Z'],
  ],
  ['*/20 * * * * *', 'America/New_York', '2030-11-03T05:59:30Z', ['2030-11-03T05:59:40Z', '2030-11-03T06:00:00Z', '2030-11-03T06:00:20Z']],
  // London
  ['0 1 * * *', 'Europe/London', '2030-03-30T12:00:00Z', ['2030-03-31T01:00:00Z', '2030-04-01T00:00:00Z']],
  ['15 1 * * *', 'Europe/London', '2030-03-30T12:00:00Z', ['2030-03-31T01:00:00Z', '2030-04-01T00:15:00Z']],
  ['30 1 * * *', 'Europe/London', '2030-10-26T12:00:00Z', ['2030-10-27T00:30:00Z', '2030-10-28T01:30:00Z']],
  ['0 * * * *', 'Europe/London', '2030-10-26T23:30:00Z', ['2030-10-27T00:00:00Z', '2030-10-27T01:00:00Z', '2030-10-27T02:00:00Z']],
  [
    '*/30 * * * *',
    'Europe/London',
    '2030-10-27T00:10:00Z',
    ['2030-10-27T00:30:00Z', '2030-10-27T01:00:00Z', '2030-10-27T01:30:00Z', '2030-10-27T02:00:00Z'],
  ],
  // Lord Howe: half-hour shifts
  ['45 1 * * *', 'Australia/Lord_Howe', '2030-04-06T00:00:00Z', ['2030-04-06T14:45:00Z', '2030-04-07T15:15:00Z']],
  [
    '*/15 * * * *',
    'Australia/Lord_Howe',
    '2030-04-06T14:20:00Z',
    ['2030-04-06T14:30:00Z', '2030-04-06T14:45:00Z', '2030-04-06T15:00:00Z', '2030-04-06T15:15:00Z', '2030-04-06T15:30:00Z'],
  ],
  ['0 * * * *', 'Australia/Lord_Howe', '2030-04-06T13:30:00Z', ['2030-04-06T14:00:00Z', '2030-04-06T15:30:00Z', '2030-04-06T16:30:00Z']],
  ['15 2 * * *', 'Australia/Lord_Howe', '2030-10-05T00:00:00Z', ['2030-10-05T15:30:00Z', '2030-10-06T15:15:00Z']],
  ['0 * * * *', 'Australia/Lord_Howe', '2030-10-05T14:00:00Z', ['2030-10-05T14:30:00Z', '2030-10-05T15:30:00Z', '2030-10-05T16:00:00Z']],
  ['*/20 * * * *', 'Australia/Lord_Howe', '2030-10-05T15:00:00Z', ['2030-10-05T15:10:00Z', '2030-10-05T15:30:00Z', '2030-10-05T15:40:00Z']],
  // Kolkata and Shanghai: fixed offsets, half-hour and whole-hour
  ['0 0 * * *', 'Asia/Kolkata', '2030-03-10T00:00:00Z', ['2030-03-10T18:30:00Z', '2030-03-11T18:30:00Z']],
  ['30 9 * * 1-5', 'Asia/Kolkata', '2030-01-04T00:00:00Z', ['2030-01-04T04:00:00Z', '2030-01-07T04:00:00Z']],
  ['0 9 * * *', 'Asia/Shanghai', '2030-03-09T12:00:00Z', ['2030-03-10T01:00:00Z', '2030-03-11T01:00:00Z']],
  [
    '0 0 13 * 5',
    'Asia/Shanghai',
    '2030-09-01T00:00:00Z',
    [
      '2030-09-05T16:00:00Z',
      '2030-09-12T16:00:00Z',
      '2030-09-19T16:00:00Z',
      '2030-09-26T16:00:00Z',
      '2030-10-03T16:00:00Z',
      '2030-10-10T16:00:00Z',
      '2030-10-12T16:00:00Z',
    ],
  ],
];

/* Syntax, in UTC. 1 Jan 2030 is a Tuesday; 31 Mar 2030 a Sunday; 1 Apr and 1 Jul 2030 Mondays; 15 Jun 2030 a Saturday. */
const SYNTAX_TABLE: [expression: string, after: string, expected: string[]][] = [
  ['@hourly', '2030-01-01T00:00:00Z', ['2030-01-01T01:00:00Z', '2030-01-01T02:00:00Z']],
  ['@daily', '2030-01-01T00:00:00Z', ['2030-01-02T00:00:00Z', '2030-01-03T00:00:00Z']],
  ['@midnight', '2030-01-01T00:00:00Z', ['2030-01-02T00:00:00Z']],
  ['@weekly', '2030-01-01T00:00:00Z', ['2030-01-06T00:00:00Z', '2030-01-13T00:00:00Z']],
  ['@monthly', '2030-01-01T00:00:00Z', ['2030-02-01T00:00:00Z', '2030-03-01T00:00:00Z']],
  ['@yearly', '2030-01-01T00:00:00Z', ['2031-01-01T00:00:00Z']],
  ['@annually', '2030-01-01T00:00:00Z', ['2031-01-01T00:00:00Z']],
  ['0/2 * * * * ?', '2030-01-01T00:00:00Z', ['2030-01-01T00:00:02Z', '2030-01-01T00:00:04Z']],
  [
    '5/20 * * * *',
    '2030-01-01T00:00:00Z',
    ['2030-01-01T00:05:00Z', '2030-01-01T00:25:00Z', '2030-01-01T00:45:00Z', '2030-01-01T01:05:00Z'],
  ],
  [
    '10-40/15 * * * *',
    '2030-01-01T00:00:00Z',
    ['2030-01-01T00:10:00Z', '2030-01-01T00:25:00Z', '2030-01-01T00:40:00Z', '2030-01-01T01:10:00Z'],
  ],
  ['*/1 * * * * *', '2030-01-01T00:00:00.500Z', ['2030-01-01T00:00:01Z', '2030-01-01T00:00:02Z']],
  // day of month and day of week ORed when both are restricted: the 1st, and every Monday
  [
    '0 9 1 * 1',
    '2030-01-01T00:00:00Z',
    [
      '2030-01-01T09:00:00Z',
      '2030-01-07T09:00:00Z',
      '2030-01-14T09:00:00Z',
      '2030-01-21T09:00:00Z',
      '2030-01-28T09:00:00Z',
      '2030-02-01T09:00:00Z',
      '2030-02-04T09:00:00Z',
    ],
  ],
  ['0 0 1 * +MON', '2030-01-01T00:00:00Z', ['2030-04-01T00:00:00Z', '2030-07-01T00:00:00Z']],
  ['0 0 * * 7', '2030-01-01T00:00:00Z', ['2030-01-06T00:00:00Z', '2030-01-13T00:00:00Z']],
  ['0 0 * * sun', '2030-01-01T00:00:00Z', ['2030-01-06T00:00:00Z']],
  ['0 0 ? * MON-FRI', '2030-01-04T00:00:00Z', ['2030-01-07T00:00:00Z', '2030-01-08T00:00:00Z']],
  ['0 12 * JAN,jul *', '2030-01-31T12:00:00Z', ['2030-07-01T12:00:00Z']],
  ['0 0 L * *', '2030-01-01T00:00:00Z', ['2030-01-31T00:00:00Z', '2030-02-28T00:00:00Z', '2030-03-31T00:00:00Z']],
  ['0 0 L-3 * *', '2030-01-01T00:00:00Z', ['2030-01-28T00:00:00Z', '2030-02-25T00:00:00Z', '2030-03-28T00:00:00Z']],
  ['0 0 LW * *', '2030-01-01T00:00:00Z', ['2030-01-31T00:00:00Z', '2030-02-28T00:00:00Z', '2030-03-29T00:00:00Z']],
  ['0 0 15W * *', '2030-06-01T00:00:00Z', ['2030-06-14T00:00:00Z', '2030-07-15T00:00:00Z']],
  ['0 0 * * 5L', '2030-01-01T00:00:00Z', ['2030-01-25T00:00:00Z', '2030-02-22T00:00:00Z', '2030-03-29T00:00:00Z']],
  ['0 0 * * FRI#2', '2030-01-01T00:00:00Z', ['2030-01-11T00:00:00Z', '2030-02-08T00:00:00Z', '2030-03-08T00:00:00Z']],
  [
    '0 0 L-2 * 1',
    '2030-01-01T00:00:00Z',
    ['2030-01-07T00:00:00Z', '2030-01-14T00:00:00Z', '2030-01-21T00:00:00Z', '2030-01-28T00:00:00Z', '2030-01-29T00:00:00Z'],
  ],
];

describe('nextOccurrence: cron in time zones across DST changes', () => {
  it.each(DST_TABLE)('%s in %s after %s', (expression, zone, after, expected) => {
    expect(next(cron(expression, zone), after, expected.length)).toEqual(expected);
  });

  it('says what DST decided, with the wall-clock time and offset', () => {
    const at = (expression: string, zone: string, instant: string) => scheduledTime(cron(expression, zone), new Date(instant));
    expect(at('30 2 * * *', 'America/New_York', '2030-03-10T07:00:00Z')).toEqual({
      at: new Date('2030-03-10T07:00:00Z'),
      local: '2030-03-10T03:00:00',
      offset: '-04:00',
      note: 'spring-forward: moved to 03:00 (02:30 does not exist)',
    });
    expect(at('15 2 * * *', 'Australia/Lord_Howe', '2030-10-05T15:30:00Z')).toMatchObject({
      local: '2030-10-06T02:30:00',
      offset: '+11:00',
      note: 'spring-forward: moved to 02:30 (02:15 does not exist)',
    });
    expect(at('30 1 * * *', 'America/New_York', '2030-11-03T05:30:00Z')).toMatchObject({
      local: '2030-11-03T01:30:00',
      offset: '-04:00',
      note: 'repeated hour: first occurrence',
    });
    expect(at('*/15 * * * *', 'America/New_York', '2030-11-03T06:15:00Z')).toMatchObject({
      local: '2030-11-03T01:15:00',
      offset: '-05:00',
      note: 'repeated hour: second occurrence',
    });
    expect(at('30 9 * * *', 'Asia/Kolkata', '2030-01-04T04:00:00Z')).toMatchObject({
      local: '2030-01-04T09:30:00',
      offset: '+05:30',
      note: null,
    });
  });

  it('keeps intervals to real durations across DST', () => {
    const every90m: Schedule = { repeatType: 'INTERVAL', cronExpression: null, intervalSeconds: 5400, timezone: 'America/New_York' };
    const anchor = new Date('2030-11-03T04:00:00Z');
    expect(nextOccurrence(every90m, new Date('2030-11-03T05:00:00Z'), anchor)?.toISOString()).toBe('2030-11-03T05:30:00.000Z');
    expect(nextOccurrence(every90m, new Date('2030-11-03T05:30:00Z'), anchor)?.toISOString()).toBe('2030-11-03T07:00:00.000Z');
    const once: Schedule = { repeatType: 'ONCE', cronExpression: null, intervalSeconds: null, timezone: 'UTC' };
    expect(nextOccurrence(once, anchor)).toBeNull();
  });
});

describe('nextOccurrence: cron syntax', () => {
  it.each(SYNTAX_TABLE)('%s after %s', (expression, after, expected) => {
    expect(next(cron(expression), after, expected.length)).toEqual(expected);
  });

  it.each([
    ['61 * * * *', 'minute "61"'],
    ['* * *', 'it has 3 fields'],
    ['0 0 * * * * 2030', 'it has 7 fields'],
    ['0 0 31 2 *', 'matches no date'],
    ['/5 * * * *', 'a step needs a start'],
    ['0 0 L-31 * *', 'L-n needs n from 0 to 30'],
    ['0 0 32 * *', 'day of month "32"'],
    ['0 0 * 13 *', 'month "13"'],
    ['0 0 * * MON#6', 'day of week "MON#6"'],
    ['0 0 * * * 8', 'day of week "8"'],
    ['@reboot', '@reboot'],
    ['every day', 'it has 2 fields'],
  ])('refuses %j with INVALID_CRON (%s)', (expression, why) => {
    expect(() => CronExpression.parse(expression)).toThrow(
      expect.objectContaining({ code: 'INVALID_CRON', details: { field: 'cronExpression' }, message: expect.stringContaining(why) }),
    );
  });

  it('gives a stored expression that no longer reads no next occurrence, rather than failing each time', () => {
    expect(nextOccurrence(cron('0 0 31 2 *'), new Date('2030-01-01T00:00:00Z'))).toBeNull();
    expect(scheduledTime(cron('61 * * * *'), new Date('2030-01-01T00:00:00Z')).note).toBeNull();
  });
});
