// The thread that runs bench/abuse.ts's abusive clients: TypeScript loader first (a worker thread does not
// inherit the --import tsx of its process), then the benchmark module, which sees it is not the main thread.
import { register } from 'tsx/esm/api';

register();
await import('./abuse.ts');
