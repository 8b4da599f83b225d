import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface InstanceProcess {
  workerId: string;
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Resolves once it serves requests; rejects if it exits first. */
  listening: Promise<void>;
  output(): string;
}

/**
 * `npm start` as an operator runs it: src/main.ts in its own process (node itself, not the tsx wrapper,
 * so that SIGKILL and SIGSTOP reach the instance and not a parent of it).
 */
export function startInstance(workerId: string, env: Record<string, string>): InstanceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', WORKER_ID: workerId, APP_DIR: 'test/fixtures/app', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // The last 200 KB: enough to read what happened, bounded for long runs.
  const append = (d: Buffer) => (output = (output + d).slice(-200_000));
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => output.includes('Chronograph is listening') && resolve());
    void exited.then((code) => reject(new Error(`${workerId} exited with ${code}:\n${output.slice(-4000)}`)));
  });
  listening.catch(() => {});
  return { workerId, child, exited, listening, output: () => output };
}
