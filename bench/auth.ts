// What authentication and quotas cost per request: `npm run bench -- auth [pglite|postgres]`.
// One instance with ADMIN_API_KEY and an HS256 secret; the same GraphQL requests (through yoga.fetch,
// so no socket noise) made with each credential, interleaved in rounds so the shared machine's noise
// falls on all of them alike. BENCH_REQUESTS per credential and round (default 500), BENCH_ROUNDS (3).
import { SignJWT } from 'jose';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { scratchDatabase } from './support.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const backend = process.argv[2] === 'pglite' ? 'pglite' : 'postgres';
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const SECRET = 'bench-jwt-secret-0123456789abcdef0123456789';

function percentiles(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

async function main() {
  const database = backend === 'postgres' ? await scratchDatabase() : undefined;
  const config = loadConfig({
    APP_DIR: '/nonexistent',
    LOG_LEVEL: 'warn',
    DATA_DIR: 'memory://',
    SCHEDULER_ENABLED: 'false',
    DATABASE_URL: database?.url,
    ADMIN_API_KEY: ADMIN_KEY,
    AUTH_JWT_SECRET: SECRET,
  });
  const app = await Chronograph.create({ config });
  try {
    for (const tenant of ['free', 'limited']) {
      await app.templateSvc.forTenant(tenant).create({ fullName: 'bench.Noop', title: 'No-op', funcName: 'chronograph.noop' });
    }
    await app.tenantSvc.setQuota('limited', { maxLiveTasks: 100_000_000, maxTasksCreatedPerMinute: 100_000_000, maxArgDictBytes: 65_536 });
    const key = await app.apiKeys.create({ name: 'bench', tenantId: 'free', role: 'EDITOR' }, null);
    const jwt = await new SignJWT({ sub: 'bench', tenant_id: 'free', role: 'EDITOR' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET));
    const request = async (query: string, headers: Record<string, string>) => {
      const started = performance.now();
      const response = await app.yoga.fetch('http://bench/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query }),
      });
      const body = (await response.json()) as { errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return performance.now() - started;
    };
    const ME = '{ me { actor } }';
    const CREATE = 'mutation { createTimerTask(input: { fullName: "bench.Noop", startTime: "2099-01-01 00:00:00" }) { id } }';
    const cases: [string, string, Record<string, string>][] = [
      ['me, ADMIN_API_KEY (no lookup)', ME, { authorization: `Bearer ${ADMIN_KEY}` }],
      ['me, API key (one indexed read)', ME, { authorization: `Bearer ${key.secret}` }],
      ['me, HS256 JWT', ME, { authorization: `Bearer ${jwt}` }],
      ['createTimerTask, tenant without quota', CREATE, { authorization: `Bearer ${ADMIN_KEY}`, 'x-tenant-id': 'free' }],
      ['createTimerTask, tenant with quotas (lock + count)', CREATE, { authorization: `Bearer ${ADMIN_KEY}`, 'x-tenant-id': 'limited' }],
    ];
    console.log(`${backend}: ${REQUESTS} sequential requests per case and round, ${ROUNDS} rounds (ms)`);
    const all = new Map<string, number[]>(cases.map(([name]) => [name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, query, headers] of cases) {
        const times: number[] = [];
        for (let i = 0; i < REQUESTS; i++) times.push(await request(query, headers));
        all.get(name)!.push(...times);
        const { p50, p99 } = percentiles(times);
        console.log(`round ${round}  ${name.padEnd(50)} p50 ${p50.toFixed(2)}  p99 ${p99.toFixed(2)}`);
      }
    }
    console.log('all rounds');
    for (const [name, times] of all) {
      const { p50, p99 } = percentiles(times);
      console.log(`          ${name.padEnd(50)} p50 ${p50.toFixed(2)}  p99 ${p99.toFixed(2)}`);
    }
  } finally {
    await app.stop();
    await database?.drop();
  }
}

await main();
