/*
 * Running the `ringvisor` command as a user would: the package's bin (bin/ringvisor.mjs) in a
 * child process, with its stdout, stderr and exit code; and a `ringvisor host` in the background.
 * A process that never prints what a test waits for fails the wait after the hang detector's
 * bound (scenarios/lib/hang.ts), with the regex and the process's last lines.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bounded, lastLines } from '../../scenarios/lib/hang.ts';

export const BIN = fileURLToPath(new URL('../../bin/ringvisor.mjs', import.meta.url));

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** `ringvisor ARGS...`, to completion. */
export function rv(args: readonly string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: cliEnv(opts.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** A running `ringvisor ...` whose output can be waited on and whose stdin can be written. */
export class CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  /** `wrap`: a command to run it under (e.g. strace and its options, ending in `--`). */
  constructor(private readonly args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; wrap?: readonly string[] } = {}) {
    const argv = [process.execPath, BIN, ...args];
    const [cmd, ...rest] = opts.wrap ? [...opts.wrap, ...argv] : argv;
    this.child = spawn(cmd!, rest, { cwd: opts.cwd, env: cliEnv(opts.env) });
    const wake = () => { const w = this.waiters; this.waiters = []; for (const f of w) f(); };
    this.child.stdout.on('data', (b: Buffer) => { this.stdout += b.toString(); wake(); });
    this.child.stderr.on('data', (b: Buffer) => { this.stderr += b.toString(); wake(); });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => { wake(); resolve(code); }));
  }

  /** Resolves once stdout (or stderr) matches; rejects if the process ends first, or hangs. */
  async waitFor(re: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
    let ended = false;
    void this.exited.then(() => { ended = true; });
    const wait = async () => {
      while (!re.test(this[stream])) {
        if (ended || this.child.exitCode !== null) throw new Error(`exited before printing ${re}:\n${this.stdout}\n${this.stderr}`);
        await new Promise<void>((r) => this.waiters.push(r));
      }
    };
    await bounded(wait(), () => `waiting for ${re} on the ${stream} of \`ringvisor ${this.args.join(' ')}\`; ` +
      `its stdout ended:\n${lastLines(this.stdout)}\nits stderr:\n${lastLines(this.stderr)}`);
  }

  write(s: string): void {
    this.child.stdin.write(s);
  }
}

/* The child finds tsx through the bin itself; ava's loader flags are not for it. */
function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  delete env.NODE_OPTIONS;
  return env;
}
