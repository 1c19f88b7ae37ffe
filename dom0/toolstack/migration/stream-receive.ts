/*
 * Reading a migration stream as it arrives, record by record, each one checked as a save file's
 * is (stream-read.ts), and its pages handed on at once to be written into the new domain.
 *
 * Xen: libxl_stream_read.c (the libxl header, then LIBXC_CONTEXT: libxc's stream follows inline,
 * its length unknown in advance) and xg_sr_restore.c (restore(): read_headers, then
 * read_record/process_record in a loop until END; handle_page_data writes each batch into the
 * domain, which libxl created when the stream began). A save file is read whole and checked before
 * anything is built (stream-read.ts); a migration cannot wait for its end: the target builds the
 * domain when the config arrives and fills it round by round, so that the stop-and-copy leaves
 * only the last pages and the vCPU context to do. A bad record then fails the restore, and the
 * half-filled domain is destroyed.
 */
import { REC_ALIGN, domain_header, image_header, libxl_header, rec_hdr, save_file_header } from '../../../shared/public/migration-stream.ts';
import type { SocketInput } from './socket-input.ts';
import { Reader, emptyRecords, type ImageRecords, type PageBatch } from './stream-read.ts';
import type { SavedConfig } from './stream-write.ts';

export interface ReceiveHooks {
  /** The config has arrived (the stream's first piece): start building the domain. */
  config(c: SavedConfig): void;
  /** A PAGE_DATA batch; its data is good until this resolves. */
  pages(b: PageBatch): void | Promise<void>;
}

/** Read one stream from `input` up to libxl's END. Returns its records (no batches: they went to hooks.pages). */
export async function receiveStream(input: SocketInput, what: string, hooks: ReceiveHooks): Promise<ImageRecords> {
  // xl's header and its optional data (the config).
  const fixed = (await input.take(save_file_header.SIZE, what)).slice();
  const optLen = new DataView(fixed.buffer).getUint32(save_file_header.optional_data_len, true);
  const xl = new Uint8Array(save_file_header.SIZE + optLen);
  xl.set(fixed);
  xl.set(await input.take(optLen, what), save_file_header.SIZE);
  hooks.config(new Reader(xl, what).xlHeader());

  // libxl's header, its LIBXC_CONTEXT record, libxc's image and domain headers.
  let base = input.consumed;
  const heads = new Reader(await input.take(libxl_header.SIZE + rec_hdr.SIZE + image_header.SIZE + domain_header.SIZE, what), what, base);
  heads.libxlHeader();
  heads.libxcContext();

  const out = emptyRecords();
  for (;;) {
    base = input.consumed;
    const h = await input.peek(rec_hdr.SIZE, what);
    const len = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(rec_hdr.length, true);
    const padded = len + ((REC_ALIGN - (len % REC_ALIGN)) % REC_ALIGN);
    const batches: PageBatch[] = [];
    const end = new Reader(await input.take(rec_hdr.SIZE + padded, what), what, base).record(out, (b) => { batches.push(b); });
    for (const b of batches) await hooks.pages(b);
    if (end) break;
  }
  base = input.consumed;
  new Reader(await input.take(rec_hdr.SIZE, what), what, base).libxlEnd(out);
  return out;
}
