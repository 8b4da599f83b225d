// Makes dist/pglite-template/ (see src/db/pgliteTemplate.ts) from the compiled dist/; run by scripts/build.mjs
// in a process of its own, because initdb in WebAssembly peaks near 900 MB.

import { readMigrations } from '../dist/db/migrate.js';
import { buildTemplate, TEMPLATE_DIR } from '../dist/db/pgliteTemplate.js';
import { createLogger } from '../dist/logger.js';

const started = Date.now();
let made;
try {
  made = await buildTemplate(await readMigrations(), createLogger('warn'));
} catch (error) {
  console.error(`PGlite data directory template: ${error.message}`);
  process.exit(1);
}
console.log(made ? `PGlite data directory template made in ${Date.now() - started} ms` : 'PGlite data directory template is up to date');
console.log(`  ${TEMPLATE_DIR}`);
