/*
 * Every host's log lines kept in files beside the run's other evidence, as Xen's tools keep
 * theirs in /var/log/xen (xl-NAME.log, qemu-dm-NAME.log, the hypervisor's `xl dmesg`): a bench or
 * a loop that fails can be read afterwards, host by host, instead of only through the guests'
 * consoles. Each line is stamped with the machine's clock in ms (performance.timeOrigin + now, the
 * clock MigrateResult.suspendedAt and udp-probe's silences use), so the hosts' logs, the peer's
 * silences and a capture's frames line up.
 *
 * Written through one buffered stream per host, not a system call per line: a busy host logs a
 * line per vif, per move, per guest console line, and the bench must not measure its own logging.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export class HostLogs {
  private readonly streams: WriteStream[] = [];

  /** Files go to `dir` as NAME.host.log. */
  constructor(readonly dir: string) {}

  /** A host's `log` option: the line goes to NAME.host.log, then to `next` (what the caller did with it). */
  sink(name: string, next: (line: string) => void = () => undefined): (line: string) => void {
    const s = createWriteStream(join(this.dir, `${name}.host.log`), { flags: 'a' });
    this.streams.push(s);
    return (line) => {
      s.write(`${(performance.timeOrigin + performance.now()).toFixed(3)} ${line}\n`);
      next(line);
    };
  }

  /** Flush and close every file (before the directory is kept or removed). */
  async close(): Promise<void> {
    await Promise.all(this.streams.map((s) => new Promise<void>((done) => s.end(done))));
    this.streams.length = 0;
  }
}
