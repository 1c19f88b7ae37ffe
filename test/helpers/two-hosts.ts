/*
 * Two ringvisor hosts for a whole test file, as a migration needs: a temporary directory shared by
 * both (the VM directories are shared storage, as xl migrate expects of disk images), host A and
 * host B (each `ringvisor host` in this process) and an xl client on each one's control socket.
 * Torn down after the file's tests, whatever happened. The two-host twin of ./one-host.ts.
 */
import type { TestFn } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost, type HostOptions, type RunningHost } from '../../cli/host.ts';

export interface TwoHosts {
  readonly dir: string;
  readonly a: RunningHost;
  readonly b: RunningHost;
  readonly xa: XlClient;
  readonly xb: XlClient;
}

/** `opts`: the rest of startHost's options, for both hosts (their logs are dropped unless `log` is given). */
export function twoHosts(test: TestFn, prefix: string, memoryMiB: number, opts: Omit<HostOptions, 'runDir' | 'memoryMiB'> = {}): TwoHosts {
  let dir = '';
  let a: RunningHost | undefined;
  let b: RunningHost | undefined;
  let xa: XlClient | undefined;
  let xb: XlClient | undefined;
  test.before(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    a = await startHost({ runDir: join(dir, 'a'), memoryMiB, log: () => undefined, ...opts });
    b = await startHost({ runDir: join(dir, 'b'), memoryMiB, log: () => undefined, ...opts });
    xa = await XlClient.open(a.runDir);
    xb = await XlClient.open(b.runDir);
  });
  test.after.always(async () => {
    xa?.close();
    xb?.close();
    await a?.close();
    await b?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('twoHosts: the hosts are not started (used outside a test?)');
    return v;
  };
  return {
    get dir() { return dir; },
    get a() { return started(a); },
    get b() { return started(b); },
    get xa() { return started(xa); },
    get xb() { return started(xb); },
  };
}
