/*
 * Every host's log lines kept in files beside the run's other evidence, as Xen's tools keep
 * theirs in /var/log/xen (xl-NAME.log, qemu-dm-NAME.log, the hypervisor's `xl dmesg`): a bench or
 * a loop that fails can be read afterwards, host by host, instead of only through the guests'
 * consoles. Each line is stamped with the machine's clock in ms (performance.timeOrigin + now, the
 * clock MigrateResult.suspendedAt and udp-probe's silences use), so the hosts' logs, the peer's
 * silences and a capture's frames line up.
 *
 * Kept in memory while the run goes and written out by close(), not a write per line: the lines
 * come to the main thread, which is every in-process host's control thread and runs their network
 * cards, and a CPU profile of the migrate bench caught one file write (a libuv request handed to
 * the thread pool) holding that thread for about 90 ms in a precopy round, with the card's frames
 * waiting behind it. The bench must not measure its own logging. A run's lines are a few KiB.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export class HostLogs {
  /* Each host's file and its lines not yet written. */
  private readonly pending = new Map<string, string[]>();

  /** Files go to `dir` as NAME.host.log. */
  constructor(readonly dir: string) {}

  /** A host's `log` option: the line goes to NAME.host.log, then to `next` (what the caller did with it). */
  sink(name: string, next: (line: string) => void = () => undefined): (line: string) => void {
    const lines: string[] = [];
    this.pending.set(join(this.dir, `${name}.host.log`), lines);
    return (line) => {
      lines.push(`${(performance.timeOrigin + performance.now()).toFixed(3)} ${line}\n`);
      next(line);
    };
  }

  /** Write every host's lines so far to its file (before the directory is kept or removed). */
  async close(): Promise<void> {
    for (const [file, lines] of this.pending) {
      appendFileSync(file, lines.join(''));
      lines.length = 0;
    }
  }
}
