/*
 * xenstored's trace file: every message in and out, and the daemon's own log lines, appended to
 * a file the administrator names.
 *
 * Xen: tools/xenstored/core.c (trace, trace_io, reopen_log, close_log, the -T option and its
 * tracefile), driven at run time by XS_CONTROL "logfile <file>" and "log on|off"
 * (./control.ts). Each message is one line:
 *
 *   IN  <connection> 20261128 06:30:37 READ (/local/domain/1/name )
 *   OUT <connection> 20261128 06:30:37 READ (guest-1)
 *
 * the payload with each NUL shown as a space, as C prints it. C names the connection by its
 * pointer; ringvisor by a number it gives each connection when it first traces it, printed the
 * same way (0x...). Opening the file writes "\n***\n" first, as C does, so restarts are visible.
 *
 * Tracing costs one property test per message while it is off (`on`), which is always unless an
 * administrator turned it on.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { XS_TYPE_NAMES } from '../../../shared/public/io/xs_wire.ts';

const decoder = new TextDecoder();
const pad2 = (n: number) => String(n).padStart(2, '0');

export class XenstoredTrace {
  /** The tracefile (C's -T, or XS_CONTROL logfile); null until one is named. */
  file: string | null = null;
  private fd: number | null = null;
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;

  constructor(private readonly log: (line: string) => void) {}

  /** Is a trace file open? */
  get on(): boolean {
    return this.fd !== null;
  }

  /** reopen_log: (re)open the tracefile, if one is named. */
  reopen(): void {
    if (this.file === null) return;
    this.close();
    try {
      this.fd = openSync(resolve(this.file), 'a', 0o600);
      this.write('\n***\n');
    } catch (e) {
      this.log(`xenstored: could not open tracefile ${this.file}: ${(e as Error).message}`);
    }
  }

  /** close_log. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  /** A line of the daemon's log, in the trace too (C's log() writes both). */
  line(text: string): void {
    if (this.fd !== null) this.write(`${text}\n`);
  }

  /** trace_io: one message, in (a request) or out (a reply or event). */
  io(conn: object, out: boolean, type: number, payload: Uint8Array): void {
    if (this.fd === null) return;
    let id = this.ids.get(conn);
    if (id === undefined) this.ids.set(conn, id = this.nextId++);
    const d = new Date();
    const when = `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    const body = decoder.decode(payload).replaceAll('\0', ' ');
    this.write(`${out ? 'OUT' : 'IN'} 0x${id.toString(16)} ${when} ${XS_TYPE_NAMES[type] ?? 'UNKNOWN'} (${body})\n`);
  }

  private write(s: string): void {
    try {
      writeSync(this.fd!, s);
    } catch (e) {
      // A full disk or a vanished file must not take xenstored down: stop tracing, say why.
      this.close();
      this.log(`xenstored: trace file ${this.file} failed, tracing off: ${(e as Error).message}`);
    }
  }
}
