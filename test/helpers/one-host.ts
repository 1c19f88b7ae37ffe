/*
 * One ringvisor host for a whole test file: a temporary directory, the host (`ringvisor host` in
 * this process), an xl client on its control socket, and VM directories written under it. Torn
 * down after the file's tests, whatever happened. (The set-up that test files used to repeat.)
 */
import type { TestFn } from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost, type HostOptions, type RunningHost } from '../../cli/host.ts';

export interface OneHost {
  readonly dir: string;
  readonly rh: RunningHost;
  readonly xl: XlClient;
  /** A VM directory named `name` holding vm.cfg: `name = "NAME"`, then `lines`. */
  vm(name: string, lines: readonly string[]): string;
}

/** `opts`: the rest of startHost's options (the host's log is dropped unless `log` is given). */
export function oneHost(test: TestFn, prefix: string, memoryMiB: number, opts: Omit<HostOptions, 'runDir' | 'memoryMiB'> = {}): OneHost {
  let dir = '';
  let rh: RunningHost | undefined;
  let xl: XlClient | undefined;
  test.before(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    rh = await startHost({ runDir: join(dir, 'run'), memoryMiB, log: () => {}, ...opts });
    xl = await XlClient.open(rh.runDir);
  });
  test.after.always(async () => {
    xl?.close();
    await rh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('oneHost: the host is not started (used outside a test?)');
    return v;
  };
  return {
    get dir() { return dir; },
    get rh() { return started(rh); },
    get xl() { return started(xl); },
    vm(name, lines) {
      const d = join(dir, name);
      mkdirSync(d);
      writeFileSync(join(d, 'vm.cfg'), [`name = "${name}"`, ...lines, ''].join('\n'));
      return d;
    },
  };
}
