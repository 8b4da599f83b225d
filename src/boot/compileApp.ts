import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm start` runs the compiled dist/ without a TypeScript loader, but an app (APP_DIR) may be written in
 * TypeScript and import Chronograph's public API from `../../src/index.js` (README, app/handlers). Instead
 * of loading tsx at every start (a loader thread that every later import goes through: about 1 s and
 * 60 MB), the app's modules are compiled by esbuild into `<APP_DIR>/node_modules/.chronograph/<key>/`,
 * once per content of the app (the key is a hash of its files), by `npm run build` for the example app
 * and otherwise at the first start that finds the app changed. Each app file becomes one module of the
 * same name (`.mjs`), so the app's modules keep their identity and their relative imports; an import that
 * leaves APP_DIR becomes the absolute URL of its target, and one of Chronograph's own `src/` modules the
 * compiled one in dist/ that is running (its classes, ChronographError…, are the running ones);
 * `import.meta.url`, `.filename` and `.dirname` keep the source file's (a thread handler registered by
 * `new URL('./render.ts', import.meta.url)` still names its source). Packages are imported as written: the
 * output lives under APP_DIR, so they resolve as from the source. From source (npm run dev, tests) tsx is
 * loaded already and nothing is compiled.
 */

const dist = fileURLToPath(new URL('../', import.meta.url));
const src = fileURLToPath(new URL('../../src/', import.meta.url));
/** Bump when the output's shape changes: a cache made by an older Chronograph is then not used. */
const FORMAT = 1;
const SOURCE = /\.(m?ts|m?js)$/;

export interface CompiledApp {
  /** Where the compiled modules are. */
  dir: string;
  /** Whether this call compiled them (false: an earlier start or build did). */
  compiled: boolean;
  /** The URL to import for an app file (an absolute path under APP_DIR). */
  moduleUrl(file: string): string;
}

/** The app's compiled modules, or undefined when there is nothing to compile (no TypeScript in APP_DIR, or running from source). */
export async function compileApp(appDir: string): Promise<CompiledApp | undefined> {
  if (import.meta.url.endsWith('.ts')) return undefined;
  const root = path.resolve(appDir);
  const files = await sources(root);
  if (!files.some((f) => /\.m?ts$/.test(f))) return undefined;
  const names = new Set(files.map(outName));
  if (names.size < files.length) throw new Error('two files of the app differ only in their extension (x.ts and x.js)');
  const hash = createHash('sha256').update(`${FORMAT}\0${dist}\0`);
  for (const file of files)
    hash
      .update(`${file}\0`)
      .update(await readFile(path.join(root, file)))
      .update('\0');
  const cache = path.join(root, 'node_modules', '.chronograph');
  const out = path.join(cache, hash.digest('hex').slice(0, 16));
  const app: CompiledApp = {
    dir: out,
    compiled: false,
    moduleUrl: (file) => {
      const relative = path.relative(root, file);
      if (relative.startsWith('..') || !SOURCE.test(relative)) return pathToFileURL(file).href;
      return pathToFileURL(path.join(out, outName(relative))).href;
    },
  };
  if (existsSync(path.join(out, '.complete'))) return app;

  // Compiled beside the final directory and renamed into place: a start that runs at the same time, or
  // one cut short, never sees half of it.
  const scratch = `${out}.tmp-${process.pid}-${Date.now()}`;
  try {
    const { build } = await import('esbuild');
    await Promise.all(
      files.map(async (file) => {
        const absolute = path.join(root, file);
        await build({
          entryPoints: [absolute],
          outfile: path.join(scratch, outName(file)),
          bundle: true,
          format: 'esm',
          platform: 'node',
          target: 'node20',
          sourcemap: 'inline',
          sourcesContent: false,
          logLevel: 'silent',
          define: {
            'import.meta.url': JSON.stringify(pathToFileURL(absolute).href),
            'import.meta.filename': JSON.stringify(absolute),
            'import.meta.dirname': JSON.stringify(path.dirname(absolute)),
          },
          plugins: [
            {
              name: 'chronograph-app',
              setup(b) {
                b.onResolve({ filter: /.*/ }, async (args) => {
                  if (args.kind === 'entry-point' || args.pluginData === 'inner') return undefined;
                  // A package or a built-in: imported as written, resolved by Node from under APP_DIR.
                  if (!/^(\.|\/|file:)/.test(args.path)) return { external: true };
                  const target = await b.resolve(args.path, {
                    kind: args.kind,
                    importer: args.importer,
                    resolveDir: args.resolveDir,
                    pluginData: 'inner',
                  });
                  if (target.errors.length) return { errors: target.errors };
                  const relative = path.relative(root, target.path);
                  const inApp = !relative.startsWith('..') && !relative.split(path.sep).includes('node_modules');
                  if (inApp && SOURCE.test(relative)) {
                    // Another module of the app: its own compiled module, beside this one's.
                    const from = path.dirname(path.join(scratch, outName(file)));
                    let to = path
                      .relative(from, path.join(scratch, outName(relative)))
                      .split(path.sep)
                      .join('/');
                    if (!to.startsWith('.')) to = `./${to}`;
                    return { path: to, external: true };
                  }
                  if (target.path.startsWith(src)) {
                    const compiled = path.join(dist, path.relative(src, target.path)).replace(/\.[mc]?tsx?$/, '.js');
                    if (existsSync(compiled)) return { path: pathToFileURL(compiled).href, external: true };
                  }
                  // A TypeScript file elsewhere is compiled into this module; anything else is imported from where it is.
                  if (/\.[mc]?tsx?$/.test(target.path)) return undefined;
                  return { path: pathToFileURL(target.path).href, external: true };
                });
              },
            },
          ],
        });
      }),
    );
    await writeFile(path.join(scratch, '.complete'), '');
    try {
      await rename(scratch, out);
    } catch (error) {
      // Another start compiled the same app first: use its copy.
      if (!existsSync(path.join(out, '.complete'))) throw error;
      await rm(scratch, { recursive: true, force: true });
    }
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
  // Copies compiled from earlier contents of the app are of no further use.
  for (const name of await readdir(cache)) {
    if (name !== path.basename(out) && !name.includes('.tmp-')) await rm(path.join(cache, name), { recursive: true, force: true });
  }
  app.compiled = true;
  return app;
}

/** `handlers/BackupSvc.ts` → `handlers/BackupSvc.mjs`: ES modules whatever the nearest package.json says. */
function outName(file: string): string {
  return file.replace(SOURCE, '.mjs');
}

/** The app's module files, relative to its directory (not node_modules, not dot-directories, not declarations). */
async function sources(dir: string, prefix = ''): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
  const found: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const relative = path.join(prefix, entry.name);
    if (entry.isFile() && SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts')) found.push(relative);
    else if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.'))
      found.push(...(await sources(dir, relative)));
  }
  return found;
}
