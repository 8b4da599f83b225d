// `npm run build` (also run by `npm install`, in postinstall): compiles src/ to JavaScript in dist/, so
// `npm start` (node dist/main.js) loads plain JavaScript instead of compiling TypeScript through tsx at every
// start, then prepares dist/pglite-template/, an initialised and migrated PGlite data directory that a fresh
// DATA_DIR is copied from instead of running initdb (src/db/pgliteTemplate.ts).
//
// esbuild bundles (no type checking: `npm run typecheck` does that) src/ and most packages into a few
// files: the entry points below at their place in dist/ (main.js, index.js, the threads' entry files…) and
// the code they share in dist/chunks/, each module in exactly one file, so that the app's import of
// ../../src/index.js (dist/index.js) gets the very classes main.js runs. Node then loads some twenty files
// at start instead of about a thousand. A module that computes a path from its own location (prisma/
// migrations, dashboard/dist, graphql/graphiql-client.js, the threads' entry files, the template) sees, as
// its import.meta.url, the URL it would have as its own file in dist/ (ownLocation below), so those paths
// resolve the same from dist/ as from src/. Plain .js/.cjs/.json files under src/ are copied as they are.
// Options: --no-template skips the data directory template; --if-stale (`npm start`'s prestart) compiles
// only when a file under src/ changed since the last build, and leaves the template and the example app
// to `npm run build` (an app that changed is compiled when Chronograph starts).
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
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

/**
 * The bundle's entry points: `npm start`'s main.js; index.js, the public API that an app imports (its
 * ../../src/index.js, src/boot/compileApp.ts), which shares its modules with main.js; the threads' entry
 * files; the loader hook; and what scripts/ import.
 */
const ENTRIES = [
  'main.ts',
  'index.ts',
  'boot/compileApp.ts',
  'boot/sourceHooks.ts',
  'db/migrate.ts',
  'db/pgliteTemplate.ts',
  'logger.ts',
  'handlers/threadWorker.ts',
  'scheduler/leaseKeeperThread.ts',
];
/**
 * Packages loaded from node_modules as they are, not bundled: those that find files beside their own
 * modules (PGlite's WebAssembly and data files, Piscina's worker, Prisma's query compiler), the build tools
 * loaded only when an app is compiled, and large ones loaded only on first use (GraphiQL's 9 MB build,
 * undici for HTTP handlers). `pg` too: one copy, loaded only on PostgreSQL, shared by the instance, its
 * heartbeat thread and whatever else in the process uses the driver (a benchmark counting its statements).
 */
const EXTERNAL = [
  'pg',
  '@electric-sql/pglite',
  'pglite-prisma-adapter',
  '@prisma/client',
  'piscina',
  'esbuild',
  'tsx',
  '@graphql-yoga/render-graphiql',
  'undici',
];

/**
 * A module that computes a path from its own location (prisma/migrations, dashboard/dist, the threads'
 * entry files…) must compute the same one from the bundle: its `import.meta.url` becomes a placeholder
 * naming the file it would be in dist/ (db/migrate.js), replaced once the chunks are written by that
 * file's URL relative to the chunk that holds the module.
 */
const ownNames = new Map();
const ownLocation = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.(ts|js)$/ }, async (args) => {
      if (!args.path.startsWith(src + path.sep)) return undefined;
      let contents = await readFile(args.path, 'utf8');
      if (args.path === PRISMA_CLASS) contents = await compilerFromFile(contents);
      if (!contents.includes('import.meta')) return undefined;
      const own = path.relative(src, args.path).replace(/\.ts$/, '.js').split(path.sep).join('/');
      const name = `__chronographOwnUrl_${ownNames.size}`;
      ownNames.set(name, own);
      const { transform } = await import('esbuild');
      const out = await transform(contents, {
        loader: args.path.endsWith('.ts') ? 'ts' : 'js',
        format: 'esm',
        define: { 'import.meta.url': name },
        sourcemap: 'inline',
        sourcefile: args.path,
      });
      // import.meta.dirname and .filename would name the chunk's location: src/ uses only import.meta.url.
      if (/(?<!['"`])import\.meta\.(?!url)/.test(out.code)) throw new Error(`${args.path}: import.meta other than import.meta.url`);
      return { contents: out.code, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

/**
 * Prisma's generated client (src/generated/prisma/internal/class.ts) loads its query compiler, 3.4 MB of
 * WebAssembly, from a JavaScript module that holds it as one base64 string. V8 keeps that module's source
 * and the string for the life of the process: 8.7 MB of heap that every instance carried for a module read
 * once at start. The bundle reads the same bytes from a .wasm file written beside the client's module
 * instead (the client's source under src/ is left as generated: the tests load it as it is).
 */
const PRISMA_CLASS = path.join(src, 'generated', 'prisma', 'internal', 'class.ts');
const PRISMA_COMPILER = '@prisma/client/runtime/query_compiler_fast_bg.postgresql.wasm-base64.mjs';
const PRISMA_COMPILER_FILE = 'query_compiler_fast_bg.postgresql.wasm';
async function compilerFromFile(contents) {
  const loader =
    /getQueryCompilerWasmModule: async \(\) => \{\n\s*const \{ wasm \} = await import\("([^"]+)"\)\n\s*return await decodeBase64AsWasm\(wasm\)\n\s*\}/;
  const found = loader.exec(contents);
  // A Prisma upgrade that generates something else must be looked at, not bundled unchanged unnoticed.
  if (!found || found[1] !== PRISMA_COMPILER)
    throw new Error(`${PRISMA_CLASS}: the query compiler's loader is not the one this build rewrites`);
  const { wasm } = await import(PRISMA_COMPILER);
  const target = path.join(dist, 'generated', 'prisma', 'internal', PRISMA_COMPILER_FILE);
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, Buffer.from(wasm, 'base64'));
  return contents.replace(
    loader,
    `getQueryCompilerWasmModule: async () => {
    const { readFile } = await import('node:fs/promises')
    return new WebAssembly.Module(await readFile(new URL('./${PRISMA_COMPILER_FILE}', import.meta.url)))
  }`,
  );
}

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
const result = await build({
  entryPoints: ENTRIES.map((e) => path.join(src, e)),
  outbase: src,
  outdir: dist,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // CommonJS packages bundled into ES modules call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __chronographCreateRequire } from 'node:module'; const require = __chronographCreateRequire(import.meta.url);",
  },
  plugins: [ownLocation],
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  write: false,
});
for (const file of result.outputFiles) {
  await mkdir(path.dirname(file.path), { recursive: true });
  let text = file.text;
  if (file.path.endsWith('.js')) {
    // Each module's import.meta.url is the URL it would have as its own file in dist/ (see ownLocation).
    text = text.replace(/__chronographOwnUrl_\d+/g, (name) => {
      let relative = path
        .relative(path.dirname(file.path), path.join(dist, ownNames.get(name)))
        .split(path.sep)
        .join('/');
      if (!relative.startsWith('.')) relative = `./${relative}`;
      return `new URL(${JSON.stringify(relative)}, import.meta.url).href`;
    });
  }
  await writeFile(file.path, text);
}
for (const file of assets) {
  const target = path.join(dist, path.relative(src, file));
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(file, target);
}
// Stamped with the time the build began: a source saved while it ran is newer, so the next start compiles it.
await writeFile(STAMP, '');
await utimes(STAMP, started / 1000, started / 1000);
console.log(
  `compiled ${entryPoints.length} modules into ${result.outputFiles.filter((f) => f.path.endsWith('.js')).length} files in dist/ in ${Date.now() - started} ms`,
);

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
