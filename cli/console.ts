/*
 * `ringvisor console DOMAIN`: attach the terminal to a guest's PV console.
 *
 * Xen: tools/xl/xl_console.c → libxl_console_exec → tools/console/client/main.c (xenconsole):
 * the terminal in raw mode, the guest's output copied to stdout, keystrokes to the guest, and
 * Ctrl-] (0x1d) to detach, leaving the guest running. ringvisor's path to the guest is the
 * toolstack daemon's console session (dom0/toolstack/server.ts) instead of a pty, which gets the bytes
 * from xenconsoled as the guest's log file does.
 *
 * Not a terminal (a pipe, a test): the same, without raw mode; the end of input detaches too.
 */
import type { XlClient } from './client.ts';

/** xenconsole's ESCAPE_CHARACTER: Ctrl-]. */
export const DETACH = 0x1d;

export interface ConsoleIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Attached until Ctrl-], the end of input, or the domain going; resolves with the exit code. */
export async function attachConsole(client: XlClient, domain: string, io: ConsoleIo): Promise<number> {
  let finished = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => { finish = (code) => { finished = true; resolve(code); }; });
  const session = await client.console(
    domain,
    (bytes) => { if (!finished) io.stdout.write(bytes); },
    (why, hostGone) => {
      if (finished) return; // we detached; the connection closing after that is ours
      io.stderr.write(`\r\n[${why}]\r\n`);
      // The domain going is the session's normal end (xenconsole exits 0); the host dying is a failure.
      finish(hostGone ? 1 : 0);
    },
  );
  const tty = io.stdin.isTTY === true;
  io.stderr.write(`[attached to the console of domain ${session.domid}; Ctrl-] detaches]\r\n`);
  if (tty) io.stdin.setRawMode(true);
  const onData = (chunk: Buffer) => {
    const at = chunk.indexOf(DETACH);
    if (at < 0) return session.send(chunk);
    if (at > 0) session.send(chunk.subarray(0, at));
    finish(0);
  };
  const onEnd = () => finish(0);
  io.stdin.on('data', onData);
  io.stdin.on('end', onEnd);
  io.stdin.resume();
  const code = await done;
  io.stdin.off('data', onData);
  io.stdin.off('end', onEnd);
  if (tty) io.stdin.setRawMode(false);
  io.stdin.pause();
  return code;
}
