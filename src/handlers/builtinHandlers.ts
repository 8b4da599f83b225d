import { setTimeout as sleep } from 'node:timers/promises';
import type { HandlerRegistry } from './HandlerRegistry.js';

/** Small handlers every installation has: for trying Chronograph out, for health checks and benchmarks. */
export function registerBuiltinHandlers(registry: HandlerRegistry): void {
  registry.register('chronograph.noop', () => null, { description: 'Does nothing; for benchmarks and health checks.' });
  registry.register('chronograph.echo', (args) => args, { description: 'Returns its argDict as the run result.' });
  registry.register(
    'chronograph.sleep',
    async (args, ctx) => {
      const ms = Number(args.ms ?? 1000);
      if (!Number.isFinite(ms) || ms < 0) throw new Error('argDict.ms must be a non-negative number of milliseconds');
      await sleep(ms, undefined, { signal: ctx.signal });
      return { sleptMs: ms };
    },
    { description: 'Waits argDict.ms milliseconds (default 1000); stops early when the task is aborted.' },
  );
  registry.register(
    'chronograph.fail',
    (args) => {
      throw new Error(typeof args.message === 'string' ? args.message : 'chronograph.fail was asked to fail');
    },
    { description: 'Always throws argDict.message; for trying out retries.' },
  );
}
