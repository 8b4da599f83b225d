import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard: a static page served by the instance under /dashboard/ (src/ops/dashboardFiles.ts),
// built at install time (scripts/build-dashboard.mjs) into dashboard/dist. Preact's JSX, no CDN.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1000 },
});
