/*
 * Reading a migration stream as it arrives, record by record, each one checked as a save file's
 * is (stream-read.ts), and its pages handed on at once to be written into the new domain.
 *
 * Xen: libxl_stream_read.c (the libxl header, then LIBXC_CONTEXT: libxc's stream follows inline,
 * its length unknown in advance) and xg_sr_restore.c (restore(): read_headers, then
 * read_record/process_record in a loop until END; handle_page_data writes each batch into the
 * domain, which libxl created when the stream began). A PAGE_DATA record's header and pfns are read
 * and checked first, then its pages go into the domain straight from the socket's chunks as they
 * arrive (Xen reads the whole record into a buffer first; here that would be a copy more, and the
 * last record of the stop-and-copy would be written only once all of it had come). A save file is read whole and checked before
 * anything is built (stream-read.ts); a migration cannot wait for its end: the target builds the
 * domain when the config arrives and fills it round by round, so that the stop-and-copy leaves
 * only the last pages and the vCPU context to do. A bad record then fails the restore, and the
 * half-filled domain is destroyed.
 */
import {
  REC_ALIGN, REC_TYPE_PAGE_DATA, domain_header, image_header, libxl_header, page_data_header, rec_hdr, save_file_header,
} from '../../../shared/public/migration-stream.ts';
import type { SocketInput } from './socket-input.ts';
import { Reader, emptyRecords, type ImageRecords, type PageBatchHead } from './stream-read.ts';
import type { SavedConfig } from './stream-write.ts';

/** A PAGE_DATA record's contents as they arrive: `each` gets every piece, `at` its offset in the pages' bytes. */
export type PageBytes = (each: (piece: Uint8Array, at: number) => void) => Promise<void>;

export interface ReceiveHooks {
  /** The config has arrived (the stream's first piece): start building the domain. */
  config(c: SavedConfig): void;
  /**
   * A PAGE_DATA record, its header and pfns read and checked: `data` hands over the contents of
   * `head.gfns`' pages, one after another, as they come off the socket (views of its chunks, no
   * copy). Whatever the hook does not take is read and dropped after it.
   */
  pageData(head: PageBatchHead, data: PageBytes): Promise<void>;
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
    const hv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const type = hv.getUint32(rec_hdr.type, true);
    const len = hv.getUint32(rec_hdr.length, true);
    const padded = len + ((REC_ALIGN - (len % REC_ALIGN)) % REC_ALIGN);
    if (type === REC_TYPE_PAGE_DATA && len >= page_data_header.pfn) {
      // The header and pfns first, checked as a whole record's are; then the pages as they come.
      const headBytes = Reader.pageDataHeadBytes(await input.peek(rec_hdr.SIZE + page_data_header.pfn, what));
      const { head, dataBytes } = new Reader(await input.take(Math.min(headBytes, rec_hdr.SIZE + len), what), what, base).pageDataRecordHead(out);
      let taken = 0;
      const data: PageBytes = async (each) => {
        if (taken > 0) throw new Error('a PAGE_DATA record\'s pages are read once');
        taken = dataBytes;
        await input.stream(dataBytes, what, each);
      };
      await hooks.pageData(head, data);
      if (taken === 0) await input.stream(dataBytes, what, () => undefined);
      if (padded > len) await input.take(padded - len, what);
      continue;
    }
    const end = new Reader(await input.take(rec_hdr.SIZE + padded, what), what, base).record(out);
    if (end) break;
  }
  base = input.consumed;
  new Reader(await input.take(rec_hdr.SIZE, what), what, base).libxlEnd(out);
  return out;
}
