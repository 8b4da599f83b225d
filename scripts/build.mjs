// `npm run build` (also run by `npm install`, in postinstall): compiles src/ to JavaScript in dist/, so
// `npm start` (node dist/main.js) loads plain JavaScript instead of compiling TypeScript through tsx at every
// start, then prepares dist/pglite-template/, an initialised and migrated PGlite data directory that a fresh
// DATA_DIR is copied from instead of running initdb (src/db/pgliteTemplate.ts).
//
// esbuild transpiles file by file (no bundling, no type checking: `npm run typecheck` does that), so dist/
// mirrors src/ and every path a module computes from its own location (prisma/migrations, dashboard/dist,
// graphiql-client.js, the worker threads' entry files) resolves the same from dist/ as from src/.
// Options: --no-template skips the data directory template; --if-stale (`npm start`'s prestart) compiles
// only when a file under src/ changed since the last build, and leaves the template and the example app
// to `npm run build` (an app that changed is compiled when Chronograph starts).
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = path.join(root, 'src');
const dist = path.join(root, 'dist');
const TEMPLATE = 'pglite-template'; // kept across builds: rebuilt only when PGlite or the migrations change
const STAMP = path.join(dist, '.built');

const started = Date.now();
const files = (await readdir(src, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
const full = (e) => path.join(e.parentPath, e.name);
const entryPoints = files.filter((e) => e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')).map(full);
const assets = files.filter((e) => /\.(c?js|json)$/.test(e.name)).map(full);

if (process.argv.includes('--if-stale')) {
  const built = await stat(STAMP).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const times = await Promise.all([src, ...entryPoints, ...assets].map(async (f) => (await stat(f)).mtimeMs));
  if (Math.max(...times) < built) process.exit(0);
}

// Remove what an earlier build left (a deleted source must not live on in dist/), except the template.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== TEMPLATE && name !== `${TEMPLATE}.json`) await rm(path.join(dist, name), { recursive: true, force: true });
}
const { build } = await import('esbuild'); // after the staleness check: npm start pays nothing for it
await build({
  entryPoints,
  outbase: src,
  outdir: dist,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
});
for (const file of assets) {
  const target = path.join(dist, path.relative(src, file));
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(file, target);
}
// Stamped with the time the build began: a source saved while it ran is newer, so the next start compiles it.
await writeFile(STAMP, '');
await utimes(STAMP, started / 1000, started / 1000);
console.log(`compiled ${entryPoints.length} modules into dist/ in ${Date.now() - started} ms`);

// The example app (the default APP_DIR) is TypeScript: compiled now, so that `npm start` finds it ready
// (src/boot/compileApp.ts; another APP_DIR is compiled at its first start).
if (!process.argv.includes('--if-stale')) {
  const { compileApp } = await import('../dist/boot/compileApp.js');
  try {
    const app = await compileApp(path.join(root, 'app'));
    if (app?.compiled) console.log(`compiled the example app into ${path.relative(root, app.dir)}`);
  } catch (error) {
    console.warn(`example app not compiled (npm start will load it through tsx): ${error.message}`);
  }
}

if (!process.argv.includes('--no-template') && !process.argv.includes('--if-stale')) {
  // In its own process: initdb in WebAssembly peaks near 900 MB, which this process then does not keep.
  const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-pglite-template.mjs')], {
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    // Chronograph still starts without it (initdb at the first start of a DATA_DIR, as before).
    console.warn('PGlite data directory template not built; a fresh DATA_DIR will run initdb at its first start');
  }
}
