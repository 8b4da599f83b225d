// Builds the dashboard (dashboard/ → dashboard/dist) with Vite; run by `npm install` (postinstall) and
// `npm run build:dashboard`. Where Vite is not installed (an install without devDependencies), it says
// so and leaves the instance to answer / with that message instead of failing the install.
import { fileURLToPath } from 'node:url';

const config = fileURLToPath(new URL('../dashboard/vite.config.ts', import.meta.url));
let vite;
try {
  vite = await import('vite');
} catch {
  console.warn('dashboard not built: Vite is not installed (install with devDependencies, then npm run build:dashboard)');
  process.exit(0);
}
await vite.build({ configFile: config });
console.log('dashboard built into dashboard/dist');
