// `npm run bench -- <name> [args]` runs bench/<name>.ts; without a name, every benchmark in turn.
// Benchmarks print figures; they are not part of `npm test`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const dir = import.meta.dirname;
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['index.ts', 'support.ts'].includes(f) && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (name && !available.includes(name)) {
  console.error(`Unknown benchmark "${name}". Available: ${available.join(', ')}`);
  process.exit(2);
}
for (const bench of name ? [name] : available) {
  console.log(`\n=== ${bench} ===`);
  // As `npm start` runs (src/main.ts): benchmarks that host Chronograph in their own process measure it so.
  const env = { ...process.env, NODE_ENV: process.env.NODE_ENV || 'production' };
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(dir, `${bench}.ts`), ...args], { stdio: 'inherit', env });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
