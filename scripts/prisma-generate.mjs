// Runs `prisma generate` on machines where the Prisma CLI cannot download its native schema engine.
// Generation never calls that engine, but the CLI checks that a binary exists, so we point it at
// node itself unless the caller already chose one.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const cli = require.resolve('prisma/build/index.js');
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
// The pothos generator is a bin of @pothos/plugin-prisma; prisma finds it on PATH.
env.PATH = [path.resolve('node_modules/.bin'), env.PATH].join(path.delimiter);
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';
env.CHECKPOINT_DISABLE ??= '1';
const result = spawnSync(process.execPath, [cli, 'generate'], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
