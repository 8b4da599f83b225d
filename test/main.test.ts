import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, post, root, startChronograph as start } from './support/chronographProcess.js';

/**
 * `npm start` as a newcomer runs it: the real entry point in its own process, the example app in
 * ./app, the embedded database under DATA_DIR, requests over real HTTP, and SIGTERM.
 */
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-main-'));

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function stop(server: { child: ChildProcess; exited: Promise<number | null> }) {
  server.child.kill('SIGTERM');
  return server.exited;
}

describe('npm start (the src/main.ts process)', () => {
  it('serves GraphQL and GraphiQL, keeps everything across a restart, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env = { PORT: String(port), DATA_DIR: dataDir, APP_DIR: path.join(root, 'app') };
    // NODE_ENV unset (empty), as `npm run dev` usually runs: this file from source keeps the development checks.
    const first = start({ ...env, NODE_ENV: '' });
    await first.listening;
    expect(first.output()).toContain('"nodeEnv":"development"');

    const templates = await post(port, `{ taskTemplates(query: "") { fullName } }`);
    expect(templates.data.taskTemplates.map((t: any) => t.fullName)).toContain('tasks.DataBackup');
    ok(
      await post(
        port,
        `mutation { createTaskTemplate(input: { fullName: "tasks.Custom", title: "Custom", funcName: "chronograph.echo" }) { fullName } }`,
      ),
    );
    const created = ok(
      await post(
        port,
        `mutation { createTimerTask(input: { fullName: "tasks.DataBackup", startTime: "2099-01-01 10:00:00", argDict: { database: "main_db" } }) { id } }`,
      ),
    ).createTimerTask;
    const page = await fetch(`http://127.0.0.1:${port}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('GraphiQL');

    expect(await stop(first)).toBe(0);
    expect(first.output()).toContain('Chronograph stopped');
    // PGlite's hottest WebAssembly optimised by default; PGLITE_OPTIMIZE=false keeps V8's baseline compiler alone.
    expect(first.output()).toContain('"wasmCompiler":"tiered"');

    const second = start({ ...env, PGLITE_OPTIMIZE: 'false' });
    await second.listening;
    const after = ok(
      await post(port, `query($id: ID!) { task(id: $id) { status fullName argDict } taskTemplate(fullName: "tasks.Custom") { title } }`, {
        id: created.id,
      }),
    );
    expect(after.task).toMatchObject({ status: 'SCHEDULED', fullName: 'tasks.DataBackup', argDict: { database: 'main_db' } });
    expect(after.taskTemplate).toEqual({ title: 'Custom' });
    expect(await stop(second)).toBe(0);
    expect(second.output()).toContain('"wasmCompiler":"liftoff"');
  }, 120_000);

  it('refuses to listen where other machines can connect without a credential configured', async () => {
    const exposed = start({ HOST: '0.0.0.0', PORT: '0', DATA_DIR: dataDir });
    expect(await exposed.exited).toBe(2);
    expect(exposed.output()).toMatch(/HOST: 0\.0\.0\.0 can be reached from other machines, but no credential is configured/);
  }, 60_000);

  // mkdir(…, { recursive: true }) never settles under /proc (its parent refuses new entries with ENOENT).
  it.runIf(existsSync('/proc/self'))(
    'exits with the reason when DATA_DIR cannot be created, instead of hanging',
    async () => {
      const impossible = start({ PORT: '0', DATA_DIR: '/proc/chronograph-nope/data' });
      expect(await impossible.exited).toBe(1);
      expect(impossible.output()).toMatch(/Chronograph could not start/);
      expect(impossible.output()).toMatch(/ENOENT/);
    },
    60_000,
  );

  it('refuses bad configuration with a clear message and exit code 2', async () => {
    const bad = start({ PORT: 'not-a-port', DATA_DIR: dataDir });
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/Invalid configuration:\n\s+PORT:/);
  }, 60_000);
});

function ok(result: { data?: any; errors?: any[] }) {
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return result.data;
}
