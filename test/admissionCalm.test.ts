import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AdmissionControl } from '../src/ops/AdmissionControl.js';
import { collectGarbage } from '../src/ops/heap.js';
import { waitFor } from './support/waitFor.js';

describe('admission control: after an overload', () => {
  let server: http.Server | undefined;
  let admission: AdmissionControl | undefined;
  afterEach(async () => {
    admission?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('calls onCalm once, when nothing has been shed for calmMs, and not while requests are only served', async () => {
    let calm = 0;
    let release!: () => void;
    let entered = false;
    const held = new Promise<void>((resolve) => (release = resolve));
    admission = new AdmissionControl({
      maxConcurrent: 1,
      maxQueueWaitMs: 50,
      maxUnsentBytes: 1 << 20,
      maxReceivingBytes: 1 << 20,
      calmMs: 200,
      onCalm: () => calm++,
    });
    const a = admission;
    server = http.createServer((req, res) =>
      a.admit(req, res, async () => {
        if (req.url === '/hold') {
          entered = true;
          await held;
        }
        res.end('ok');
      }),
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Served one after another: no overload, no onCalm.
    for (let i = 0; i < 3; i++) expect((await fetch(url)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(calm).toBe(0);
    // One request holds the only slot; the others wait past maxQueueWaitMs and are shed.
    const hold = fetch(`${url}/hold`);
    await waitFor(() => entered);
    const shed = await Promise.all(Array.from({ length: 3 }, () => fetch(url).then((r) => r.status)));
    expect(shed).toEqual([503, 503, 503]);
    release();
    expect((await hold).status).toBe(200);
    expect(calm).toBe(0); // not before calmMs
    await waitFor(() => calm === 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(calm).toBe(1);
  });

  it('collectGarbage gives back the heap that garbage took', () => {
    let garbage: number[][] | undefined = Array.from({ length: 200 }, () => Array.from({ length: 50_000 }, (_, i) => i));
    expect(garbage.length).toBe(200);
    garbage = undefined;
    const { before, after } = collectGarbage();
    expect(after).toBeLessThan(before);
  });
});
