// Seeded random cron expressions for property tests (test/nextOccurrence.property.test.ts, test/upcomingRunsKept.test.ts).

/** mulberry32: a small seeded generator, so every run checks the same cases. */
export function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random cron expressions, weighted to the hours (0-3 local) and days where the clocks change. */
export function cronGenerator(seed: number) {
  const rnd = random(seed);
  const int = (min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));
  const pick = <T>(items: T[]): T => items[Math.floor(rnd() * items.length)]!;
  const timeField = (max: number, steps: number[]) => {
    const a = int(0, max);
    const b = int(a, max);
    return pick([
      () => '*',
      () => `*/${pick(steps)}`,
      () => String(a),
      () => String(a),
      () => `${a},${int(0, max)}`,
      () => `${a}-${b}`,
      () => `${a}-${b}/${pick(steps)}`,
      () => `${a}/${pick(steps)}`,
    ])();
  };
  const timeOnly = () => {
    const seconds = rnd() < 0.3 ? `${timeField(59, [5, 10, 15, 20, 30])} ` : '';
    const hour = pick(['*', '*', '0', '1', '2', '3', '0-3', '1,2', '*/2', '1-23/2', String(int(0, 3))]);
    return `${seconds}${timeField(59, [5, 10, 15, 20, 30])} ${hour} * * *`;
  };
  const expression = () => {
    const seconds = rnd() < 0.35 ? `${timeField(59, [5, 10, 15, 20, 30])} ` : '';
    const minute = timeField(59, [5, 10, 15, 20, 30]);
    // Hours near where the clocks change (0-3 local) come up more often.
    const hour = rnd() < 0.5 ? pick(['0', '1', '2', '3', '1-3', '0,2', '*', '*/2', `${int(0, 3)}`]) : timeField(23, [2, 3, 4, 6]);
    const dom = pick([
      '*',
      '*',
      '*',
      '?',
      String(int(1, 28)),
      `${int(1, 10)}-${int(11, 28)}`,
      'L',
      `L-${int(0, 5)}`,
      `${int(1, 28)}W`,
      'LW',
      '*/3',
    ]);
    const month = pick(['*', '*', '*', '*', '3,4,10,11', 'MAR-APR', 'sep-nov', String(int(1, 12))]);
    const dow = pick([
      '*',
      '*',
      '*',
      '?',
      '1-5',
      'MON-FRI',
      '0',
      '7',
      'SAT,SUN',
      `${int(0, 6)}#${int(1, 4)}`,
      `${int(0, 6)}L`,
      `+${int(0, 6)}`,
    ]);
    return `${seconds}${minute} ${hour} ${dom} ${month} ${dow}`;
  };
  return { rnd, int, pick, expression, timeOnly };
}
