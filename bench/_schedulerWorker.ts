// A bare Chronograph instance for the scheduler benchmark: no HTTP, built-in handlers only.
// Prints "ready" once its scheduler runs; stops on SIGTERM.
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const app = await Chronograph.create({ config: loadConfig({ ...process.env, APP_DIR: '/nonexistent', LOG_LEVEL: 'warn' }) });
console.log('ready');
process.on('SIGTERM', () => void app.stop().then(() => process.exit(0)));
