/*
 * The names in a VM directory (see ./vmdir.ts for the layout and why): declared alone so that
 * code which only needs a path (the run-time state files, the command line) does not load the
 * config parser.
 */
export const VM_CONFIG = 'vm.cfg';
/* What a running VM adds to its directory (the toolstack hands these paths to xenconsoled & co). */
export const CONSOLE_LOG = 'console.log';
export const PAGING_FILE = 'paging.bin';
export const RUN_DIR = 'run';
/** Run-time entries: never copied into a new VM. */
export const RUNTIME_ENTRIES: readonly string[] = [CONSOLE_LOG, PAGING_FILE, RUN_DIR];
