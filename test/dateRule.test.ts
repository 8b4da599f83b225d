import { describe, expect, it } from 'vitest';
import { parseRecordDate, scheduleFor, validateDateFieldInput } from '../src/dateFields/dateRule.js';

const rule = (dateField: Record<string, unknown>) =>
  validateDateFieldInput({ model: 'models.Contract', field: 'expireDate', ...dateField });
const start = (dateField: Record<string, unknown>, record: Record<string, unknown>, zone = 'UTC') =>
  scheduleFor(rule(dateField), zone, record, 'postData')?.startTime.toISOString() ?? null;

describe('date-field rules', () => {
  it('shifts by minutes, hours and calendar days, before and after', () => {
    const record = { expireDate: '2030-03-10T12:00:00Z' };
    expect(start({ offset: { amount: 30, unit: 'MINUTES', direction: 'BEFORE' } }, record)).toBe('2030-03-10T11:30:00.000Z');
    expect(start({ offset: { amount: 2, unit: 'hours' } }, record)).toBe('2030-03-10T14:00:00.000Z');
    expect(start({ offset: { amount: 1, unit: 'day', direction: 'before' } }, record)).toBe('2030-03-09T12:00:00.000Z');
    expect(start({}, record)).toBe('2030-03-10T12:00:00.000Z');
  });

  it('keeps wall-clock 09:00 across a DST change when shifting by days, and not when shifting by hours', () => {
    // Europe/Paris moves to summer time on 2030-03-31
    const record = { expireDate: '2030-04-02' };
    expect(start({ offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: '09:00' }, record, 'Europe/Paris')).toBe(
      '2030-03-30T08:00:00.000Z',
    );
    expect(start({ offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: '09:00' }, record, 'Europe/Paris')).toBe(
      '2030-04-01T07:00:00.000Z',
    );
    // midnight 2030-04-02 in Paris is 22:00Z (summer time); 3 calendar days earlier is midnight in winter time, 72 h earlier is not
    expect(start({ offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' } }, record, 'Europe/Paris')).toBe('2030-03-29T23:00:00.000Z');
    expect(start({ offset: { amount: 72, unit: 'HOURS', direction: 'BEFORE' } }, record, 'Europe/Paris')).toBe('2030-03-29T22:00:00.000Z');
  });

  it('reads dates in every form records carry them', () => {
    const zone = 'Asia/Shanghai';
    const iso = (value: unknown) => new Date(parseRecordDate(value, zone, 'f')!.at).toISOString();
    expect(iso('2030-03-10')).toBe('2030-03-09T16:00:00.000Z');
    expect(iso('2030-03-10 09:00:00')).toBe('2030-03-10T01:00:00.000Z');
    expect(iso('2030-03-10T09:00:00')).toBe('2030-03-10T01:00:00.000Z');
    expect(iso('2030-03-10T09:00:00Z')).toBe('2030-03-10T09:00:00.000Z');
    expect(iso(new Date('2030-03-10T09:00:00Z'))).toBe('2030-03-10T09:00:00.000Z');
    expect(iso(Date.UTC(2030, 2, 10, 9))).toBe('2030-03-10T09:00:00.000Z');
    for (const empty of [null, undefined, '']) expect(parseRecordDate(empty, zone, 'f')).toBeNull();
    for (const bad of ['2030-02-30', '10/03/2030', 'soon', true, {}, '1969-12-31', Number.NaN]) {
      expect(() => parseRecordDate(bad, zone, 'postData.expireDate'), String(bad)).toThrow(
        expect.objectContaining({ code: 'BAD_USER_INPUT', details: { field: 'postData.expireDate' } }),
      );
    }
  });

  it('computes the end of a repeating series from the date, and no schedule for an empty date', () => {
    const schedule = scheduleFor(
      rule({ offset: { amount: 7, unit: 'DAYS', direction: 'BEFORE' }, endOffset: { amount: 1, unit: 'DAYS' } }),
      'UTC',
      { expireDate: '2030-03-10' },
      'r',
    );
    expect(schedule).toMatchObject({
      startTime: new Date('2030-03-03T00:00:00Z'),
      endTime: new Date('2030-03-11T00:00:00Z'),
      timezone: 'UTC',
    });
    expect(scheduleFor(rule({}), 'UTC', { expireDate: null }, 'r')).toBeNull();
    expect(scheduleFor(rule({ field: 'dates.expire' }), 'UTC', { dates: { expire: '2030-01-01' } }, 'r')?.startTime.toISOString()).toBe(
      '2030-01-01T00:00:00.000Z',
    );
  });
});
