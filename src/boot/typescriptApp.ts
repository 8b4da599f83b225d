import { readdir } from 'node:fs/promises';
import { register } from 'node:module';
import path from 'node:path';

/**
 * `npm start` runs the compiled dist/, without a TypeScript loader, but an app (APP_DIR) may be written in
 * TypeScript and import Chronograph's public API from `../../src/index.js` (README, app/handlers). When
 * APP_DIR holds a TypeScript file, this registers tsx for it, and sourceHooks.js before it, so that such
 * an import gets the compiled module that is already loaded (dist/index.js) instead of a second,
 * TypeScript copy of Chronograph whose classes (ChronographError, …) would not be the running ones.
 * From source (npm run dev, tests) tsx is loaded already and src/ is what runs: nothing to do.
 */
export async function registerTypeScriptApp(appDir: string): Promise<boolean> {
  if (import.meta.url.endsWith('.ts')) return false;
  if (!(await holdsTypeScript(path.resolve(appDir)))) return false;
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  // Registered last, so it resolves first (and asks tsx through nextResolve).
  register('./sourceHooks.js', import.meta.url);
  return true;
}

async function holdsTypeScript(dir: string): Promise<boolean> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw error;
  }
  for (const entry of entries) {
    if (entry.isFile() && /\.[mc]?tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) return true;
    if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) {
      if (await holdsTypeScript(path.join(dir, entry.name))) return true;
    }
  }
  return false;
}
