import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The dashboard's build (`npm run build:dashboard`, run by postinstall): Preact through Vite's own JSX
 * transform, output to dashboard/dist (git-ignored), which the instance serves at / and /dashboard.
 * Asset names carry their content hash, so the instance may cache them forever.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dashboard/dist', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // No inline scripts or data: URLs, so the page runs under a strict Content-Security-Policy.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
