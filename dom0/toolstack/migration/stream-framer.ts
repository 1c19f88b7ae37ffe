/*
 * Where a save stream ends, found as its bytes arrive: the receiving end of a migration reads
 * records until libxl's END without knowing the length in advance (libxl's LIBXC_CONTEXT record
 * says only "libxc's stream follows inline"), as libxl_stream_read.c and xg_sr_restore.c read
 * record by record from the socket. The receiver itself now reads records as they come
 * (./stream-receive.ts); this framer only finds the end, for a party that must take a whole stream
 * without acting on it (the fake receivers of test/migrate-failure.test.ts).
 */
import {
  REC_ALIGN, REC_TYPE_END, REC_TYPE_LIBXC_CONTEXT, REC_TYPE_LIBXL_END, domain_header, image_header, libxl_header,
  rec_hdr, save_file_header,
} from '../../../shared/public/migration-stream.ts';
import { SaveFileError } from './stream-read.ts';

type Phase = 'xl' | 'libxl-records' | 'libxc-headers' | 'libxc-records' | 'done';

/** The bytes received so far, and how far they are understood. */
export class StreamFramer {
  /* The bytes so far, in a buffer that doubles as it fills (a socket delivers 64 KiB at a time). */
  private store = new Uint8Array(1 << 20);
  private len = 0;
  private pos = 0;
  private phase: Phase = 'xl';
  /** Set when libxl's END has arrived: the whole stream. */
  complete: Uint8Array | null = null;

  push(chunk: Uint8Array): void {
    if (this.len + chunk.length > this.store.length) {
      const bigger = new Uint8Array(Math.max(this.store.length * 2, this.len + chunk.length));
      bigger.set(this.store.subarray(0, this.len));
      this.store = bigger;
    }
    this.store.set(chunk, this.len);
    this.len += chunk.length;
    for (;;) if (!this.step()) break;
  }

  get received(): number {
    return this.len;
  }

  private bytes(): Uint8Array {
    return this.store.subarray(0, this.len);
  }

  /** One step forward if the bytes for it are here. */
  private step(): boolean {
    if (this.phase === 'done') return false;
    const b = this.bytes();
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const have = (n: number) => this.pos + n <= b.length;
    switch (this.phase) {
      case 'xl': {
        if (!have(save_file_header.SIZE)) return false;
        const opt = dv.getUint32(save_file_header.optional_data_len, true);
        if (!have(save_file_header.SIZE + opt + libxl_header.SIZE)) return false;
        this.pos = save_file_header.SIZE + opt + libxl_header.SIZE;
        this.phase = 'libxl-records';
        return true;
      }
      case 'libxc-headers':
        if (!have(image_header.SIZE + domain_header.SIZE)) return false;
        this.pos += image_header.SIZE + domain_header.SIZE;
        this.phase = 'libxc-records';
        return true;
      default: {
        if (!have(rec_hdr.SIZE)) return false;
        const type = dv.getUint32(this.pos + rec_hdr.type, true);
        const len = dv.getUint32(this.pos + rec_hdr.length, true);
        const padded = len + ((REC_ALIGN - (len % REC_ALIGN)) % REC_ALIGN);
        if (!have(rec_hdr.SIZE + padded)) return false;
        this.pos += rec_hdr.SIZE + padded;
        if (this.phase === 'libxc-records') {
          if (type === REC_TYPE_END) this.phase = 'libxl-records';
        } else if (type === REC_TYPE_LIBXC_CONTEXT) {
          this.phase = 'libxc-headers';
        } else if (type === REC_TYPE_LIBXL_END) {
          this.phase = 'done';
          this.complete = b.subarray(0, this.pos);
          if (this.pos !== b.length) throw new SaveFileError(`migration stream: ${b.length - this.pos} bytes after libxl's END`);
        }
        return true;
      }
    }
  }
}
