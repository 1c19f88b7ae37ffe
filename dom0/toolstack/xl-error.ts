/*
 * The error `xl` reports as it is: one line on stderr, exit code 1, its kind telling the command
 * line which of xl's messages it is (no such domain, or an operation that failed).
 *
 * Xen: xl prints libxl's error and exits non-zero (tools/xl/xl.c; ERROR_* in libxl_types.idl).
 *
 * In its own file so the toolstack's pieces (create checks, vcpu-set, mem, sched) import it
 * without importing the whole of libxl.ts.
 */
import type { XlErrorKind } from './protocol.ts';

/** An error the command line reports as it is (exit code 1). */
export class XlError extends Error {
  constructor(readonly kind: XlErrorKind, message: string) {
    super(message);
    this.name = 'XlError';
  }
}
