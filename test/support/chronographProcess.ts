import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

/** The repository root, where `npm start` runs. */
export const root = path.resolve(import.meta.dirname, '../..');

/** The same command as `npm start` in package.json (node's arguments), without npm's own start-up. */
export function startCommand(checkout = root): string[] {
  const pkg = JSON.parse(readFileSync(path.join(checkout, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [cmd, ...args] = pkg.scripts.start.split(/\s+/);
  if (cmd !== 'node') throw new Error(`"start" is expected to run node, not: ${pkg.scripts.start}`);
  return args;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ChronographProcess {
  child: ChildProcess;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves once it logged that it listens; rejects if it exits first. */
  listening: Promise<void>;
  output(): string;
}

/** `npm start` (src/main.ts) in its own process, with `env` over the test's environment. */
export function startChronograph(env: Record<string, string>): ChronographProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => output.includes('Chronograph is listening') && resolve());
    void exited.then((code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
  listening.catch(() => {}); // awaited by the tests that expect the server to come up
  return { child, exited, listening, output: () => output };
}

/** A GraphQL request over real HTTP. */
export async function post(port: number, query: string, variables?: object): Promise<{ data?: any; errors?: any[] }> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: any[] };
}
