import { existsSync } from 'node:fs';
import type { ResolveHook } from 'node:module';

// Module resolution hook of the compiled build (registered by typescriptApp.ts): a module of Chronograph's
// own source (src/…, as an app written in TypeScript imports it) resolves to its compiled counterpart in
// dist/, the one that is running. This file is dist/boot/sourceHooks.js at run time.
const dist = new URL('../', import.meta.url).href;
const src = new URL('../../src/', import.meta.url).href;

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const resolved = await nextResolve(specifier, context);
  if (!resolved.url.startsWith(src)) return resolved;
  const compiled = `${dist}${resolved.url.slice(src.length).replace(/\.[mc]?tsx?$/, '.js')}`;
  if (!existsSync(new URL(compiled))) return resolved;
  return { url: compiled, format: 'module', shortCircuit: true };
};
