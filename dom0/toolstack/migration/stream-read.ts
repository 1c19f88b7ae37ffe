/*
 * Reading a save stream, all of it checked before anything is built: a truncated, corrupt or
 * foreign file is refused with the reason and the byte offset, and starts nothing.
 *
 * Xen: tools/xl/xl_saverestore.c (restore_domain: the magic, the byte order, unknown mandatory
 * flags refused), tools/libs/light/libxl_stream_read.c (the libxl header and records) and
 * tools/libs/guest/xg_sr_restore.c (read_headers: marker, id, version, endianness; process_record:
 * an unknown mandatory record fails the restore, an unknown optional one is skipped;
 * handle_page_data: count > 0, the pfns' types, data for the types that carry it). Layouts:
 * shared/public/migration-stream.ts.
 *
 * Pages are not copied here: a PageBatch holds views into the stream's bytes, which the restorer
 * writes into the new domain.
 */
import {
  DHDR_TYPE_X86_PV, IHDR_ID, IHDR_MARKER, IHDR_OPT_BIG_ENDIAN, IHDR_VERSION, LIBXL_IDENT, LIBXL_VERSION, MAX_BATCH_SIZE,
  PAGE_DATA_PFN_MASK, PAGE_DATA_TYPE_SHIFT, REC_ALIGN, REC_TYPE_END, REC_TYPE_LIBXC_CONTEXT, REC_TYPE_LIBXL_END,
  REC_TYPE_NAMES, REC_TYPE_OPTIONAL, REC_TYPE_PAGE_DATA, REC_TYPE_SHARED_INFO, REC_TYPE_STATIC_DATA_END,
  REC_TYPE_X86_PV_INFO, REC_TYPE_X86_PV_VCPU_BASIC, REC_TYPE_X86_TSC_INFO, XEN_DOMCTL_PFINFO_NOTAB, XEN_DOMCTL_PFINFO_XALLOC, XEN_DOMCTL_PFINFO_XTAB,
  XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMv2, XL_SAVEFILE_BYTEORDER, XL_SAVEFILE_MAGIC,
  domain_header, image_header, libxl_header, page_data_header, rec_hdr, save_file_header, x86_pv_vcpu_basic,
} from '../../../shared/public/migration-stream.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { SavedConfig } from './stream-write.ts';

export class SaveFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SaveFileError';
  }
}

/**
 * One PAGE_DATA record: the gfns whose contents follow (`data`, page after page); and those named
 * without contents: `holes` (XTAB: no RAM, a ballooned-out page) and `pod` (XALLOC: RAM never
 * touched, a populate-on-demand entry), each in record order.
 */
export interface PageBatch extends PageBatchHead { data: Uint8Array }

/** What a PAGE_DATA record names, without its contents (read before them: stream-receive.ts). */
export interface PageBatchHead { gfns: number[]; holes: number[]; pod: number[] }

export interface SavedImage {
  config: SavedConfig;
  batches: PageBatch[];
  pages: number;
  vcpus: { vcpu: number; resume_gfn: number }[];
  sharedInfo: Uint8Array | null;
}

export function readSaveImage(buf: Uint8Array, what = 'save file'): SavedImage {
  const r = new Reader(buf, what);
  const config = r.xlHeader();
  r.libxlHeader();
  const img = r.records();
  return { config, ...img };
}

/** What the records after the headers carry, as they are read. */
export type ImageRecords = Omit<SavedImage, 'config'> & { sawInfo: boolean };

export function emptyRecords(): ImageRecords {
  return { batches: [], pages: 0, vcpus: [], sharedInfo: null, sawInfo: false };
}

/**
 * The checks, over a whole file or over one piece of a stream at a time (stream-receive.ts reads
 * a migration record by record; `base` is where `buf` starts in the stream, for the messages).
 */
export class Reader {
  private at = 0;
  private readonly dv: DataView;

  constructor(private readonly buf: Uint8Array, private readonly what: string, private readonly base = 0) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private fail(why: string): never {
    throw new SaveFileError(`${this.what}: ${why} (at byte ${this.base + this.at})`);
  }

  private need(n: number, of: string): void {
    if (this.at + n > this.buf.length) this.fail(`truncated: ${of} needs ${n} bytes, ${this.buf.length - this.at} left`);
  }

  xlHeader(): SavedConfig {
    this.need(save_file_header.SIZE, 'the xl header');
    const magic = new TextDecoder().decode(this.buf.subarray(0, 32));
    if (magic !== XL_SAVEFILE_MAGIC) this.fail('not an xl save file (wrong magic)');
    const bo = this.dv.getUint32(save_file_header.byteorder, true);
    if (bo !== XL_SAVEFILE_BYTEORDER) this.fail(`saved on a machine of the other byte order (0x${bo.toString(16)})`);
    const mandatory = this.dv.getUint32(save_file_header.mandatory_flags, true);
    const unknown = mandatory & ~(XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMv2);
    if (unknown !== 0) this.fail(`unknown mandatory flags 0x${unknown.toString(16)} (a newer xl wrote it)`);
    if ((mandatory & XL_MANDATORY_FLAG_STREAMv2) === 0) this.fail('a legacy (pre-v2) stream, which this restorer does not read');
    if ((mandatory & XL_MANDATORY_FLAG_JSON) === 0) this.fail('the config is not JSON');
    const optLen = this.dv.getUint32(save_file_header.optional_data_len, true);
    this.at = save_file_header.SIZE;
    this.need(optLen, 'the optional data');
    if (optLen < 4) this.fail('no config in the optional data');
    const cfgLen = this.dv.getUint32(this.at, true);
    if (cfgLen > optLen - 4) this.fail(`config length ${cfgLen} runs past the optional data (${optLen - 4})`);
    let config: SavedConfig;
    try {
      config = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(this.at + 4, this.at + 4 + cfgLen))) as SavedConfig;
    } catch (e) {
      this.fail(`the config is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof config !== 'object' || config === null || typeof config.name !== 'string' || typeof config.file !== 'string'
      || typeof config.text !== 'string' || !Number.isInteger(config.memoryKiB) || !Number.isInteger(config.vcpus)) {
      this.fail('the config lacks name, file, text, memoryKiB or vcpus');
    }
    if (config.targetKiB !== undefined && !(Number.isSafeInteger(config.targetKiB) && config.targetKiB > 0)) {
      this.fail(`the config's balloon target ${JSON.stringify(config.targetKiB)} is not a size in KiB`);
    }
    this.at += optLen;
    return config;
  }

  libxlHeader(): void {
    this.need(libxl_header.SIZE, 'the libxl header');
    if (this.dv.getBigUint64(this.at + libxl_header.ident, false) !== LIBXL_IDENT) this.fail('no libxl stream ("LibxlFmt" missing)');
    const v = this.dv.getUint32(this.at + libxl_header.version, false);
    if (v !== LIBXL_VERSION) this.fail(`libxl stream version ${v}, expected ${LIBXL_VERSION}`);
    if ((this.dv.getUint32(this.at + libxl_header.options, false) & 1) !== 0) this.fail('a big-endian libxl stream');
    this.at += libxl_header.SIZE;
  }

  /** One record header: [type, length]; leaves `at` on the body. */
  private recHeader(): [number, number] {
    this.need(rec_hdr.SIZE, 'a record header');
    const type = this.dv.getUint32(this.at + rec_hdr.type, true);
    const length = this.dv.getUint32(this.at + rec_hdr.length, true);
    this.at += rec_hdr.SIZE;
    this.need(length, `the body of a ${recName(type)} record`);
    return [type, length];
  }

  private skipBody(length: number): void {
    this.at += length + ((REC_ALIGN - (length % REC_ALIGN)) % REC_ALIGN);
    if (this.at > this.buf.length) this.at = this.buf.length;
  }

  records(): Omit<SavedImage, 'config'> {
    this.libxcContext();
    const out = emptyRecords();
    while (!this.record(out)) { /* every record until libxc's END */ }
    this.libxlEnd(out);
    const { sawInfo: _, ...img } = out;
    return img;
  }

  /** libxl's LIBXC_CONTEXT, which comes first; libxc's headers follow inline. */
  libxcContext(): void {
    const [t0, l0] = this.recHeader();
    if (t0 !== REC_TYPE_LIBXC_CONTEXT || l0 !== 0) this.fail(`expected libxl's LIBXC_CONTEXT record, found type ${t0}`);
    this.libxcHeaders();
  }

  /**
   * One libxc record into `out` (PAGE_DATA to `onPages` if given: its data is a view into this
   * reader's bytes, good until they are reused). True at libxc's END.
   */
  record(out: ImageRecords, onPages?: (b: PageBatch) => void): boolean {
    const start = this.at;
    const [type, length] = this.recHeader();
    const body = this.buf.subarray(this.at, this.at + length);
    if (type === REC_TYPE_END) return true;
    switch (type) {
      case REC_TYPE_X86_PV_INFO: out.sawInfo = true; break;
      case REC_TYPE_STATIC_DATA_END: case REC_TYPE_X86_TSC_INFO: break;
      case REC_TYPE_PAGE_DATA: {
        if (!out.sawInfo) { this.at = start; this.fail('PAGE_DATA before X86_PV_INFO'); }
        const b = this.pageData(body, start);
        out.pages += b.gfns.length;
        if (onPages) onPages(b);
        else out.batches.push(b);
        break;
      }
      case REC_TYPE_SHARED_INFO:
        if (length !== PAGE_SIZE) { this.at = start; this.fail(`SHARED_INFO of ${length} bytes, expected one page`); }
        out.sharedInfo = onPages ? body.slice() : body;
        break;
      case REC_TYPE_X86_PV_VCPU_BASIC:
        if (length !== x86_pv_vcpu_basic.SIZE) { this.at = start; this.fail(`X86_PV_VCPU_BASIC of ${length} bytes`); }
        out.vcpus.push({
          vcpu: this.dv.getUint32(this.at + x86_pv_vcpu_basic.vcpu_id, true),
          resume_gfn: Number(this.dv.getBigUint64(this.at + x86_pv_vcpu_basic.resume_gfn, true)),
        });
        break;
      default:
        if ((type & REC_TYPE_OPTIONAL) === 0) { this.at = start; this.fail(`unknown mandatory record ${recName(type)}`); }
    }
    this.skipBody(length);
    return false;
  }

  /** libxl's END after libxc's stream; the stream must have carried a vCPU context. */
  libxlEnd(out: ImageRecords): void {
    const [tEnd, lEnd] = this.recHeader();
    if (tEnd !== REC_TYPE_LIBXL_END || lEnd !== 0) this.fail(`expected libxl's END after libxc's stream, found type ${tEnd}`);
    if (out.vcpus.length === 0) this.fail('no vCPU context record');
  }

  private libxcHeaders(): void {
    this.need(image_header.SIZE + domain_header.SIZE, 'libxc\'s image and domain headers');
    const a = this.at;
    if (this.dv.getBigUint64(a + image_header.marker, false) !== IHDR_MARKER) this.fail('bad libxc image header marker');
    if (this.dv.getUint32(a + image_header.id, false) !== IHDR_ID) this.fail('not a libxc image ("XENF" missing)');
    const v = this.dv.getUint32(a + image_header.version, false);
    if (v !== IHDR_VERSION) this.fail(`libxc stream version ${v}, expected ${IHDR_VERSION}`);
    if ((this.dv.getUint16(a + image_header.options, false) & IHDR_OPT_BIG_ENDIAN) !== 0) this.fail('a big-endian libxc stream');
    const d = a + image_header.SIZE;
    const type = this.dv.getUint32(d + domain_header.type, false);
    if (type !== DHDR_TYPE_X86_PV) this.fail(`domain type ${type}: this restorer reads PV guests (type ${DHDR_TYPE_X86_PV})`);
    const shift = this.dv.getUint16(d + domain_header.page_shift, false);
    if (shift !== PAGE_SHIFT) this.fail(`page shift ${shift}, expected ${PAGE_SHIFT}`);
    this.at = d + domain_header.SIZE;
  }

  private pageData(body: Uint8Array, start: number): PageBatch {
    const head = this.pageDataHead(body, body.length, start);
    return { ...head, data: body.subarray(page_data_header.pfn + 8 * (head.gfns.length + head.holes.length + head.pod.length)) };
  }

  /**
   * A PAGE_DATA record's header and pfns from the record's first bytes, `this` holding the record
   * header and at least those (the pages' contents may follow or not): the checks of a whole
   * record, its declared length included. The pages come after, `dataBytes` of them.
   */
  pageDataRecordHead(out: ImageRecords): { head: PageBatchHead; dataBytes: number } {
    this.need(rec_hdr.SIZE + page_data_header.pfn, 'a PAGE_DATA record\'s header');
    const start = this.at;
    const type = this.dv.getUint32(start + rec_hdr.type, true);
    const length = this.dv.getUint32(start + rec_hdr.length, true);
    if (type !== REC_TYPE_PAGE_DATA) this.fail(`expected a PAGE_DATA record, found ${recName(type)}`);
    if (!out.sawInfo) this.fail('PAGE_DATA before X86_PV_INFO');
    this.at = start + rec_hdr.SIZE;
    const head = this.pageDataHead(this.buf.subarray(this.at), length, start);
    out.pages += head.gfns.length;
    this.at = start;
    return { head, dataBytes: head.gfns.length * PAGE_SIZE };
  }

  /** How many bytes of a PAGE_DATA record come before its pages (`buf` from the record header on, at least 16 bytes). */
  static pageDataHeadBytes(buf: Uint8Array): number {
    const count = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(rec_hdr.SIZE + page_data_header.count, true);
    return rec_hdr.SIZE + page_data_header.pfn + 8 * Math.min(count, MAX_BATCH_SIZE);
  }

  /* The header and pfns at the start of `body`, a record body of `length` bytes in all (checked against it). */
  private pageDataHead(body: Uint8Array, length: number, start: number): PageBatchHead {
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const bad = (why: string): never => { this.at = start; return this.fail(`PAGE_DATA: ${why}`); };
    if (length < page_data_header.pfn) bad('shorter than its header');
    const count = dv.getUint32(page_data_header.count, true);
    if (count === 0 || count > MAX_BATCH_SIZE) bad(`count ${count} (expected 1..${MAX_BATCH_SIZE})`);
    if (length < page_data_header.pfn + 8 * count) bad(`${count} pfns do not fit its ${length} bytes`);
    if (body.length < page_data_header.pfn + 8 * count) bad(`truncated: its ${count} pfns need ${page_data_header.pfn + 8 * count} bytes, ${body.length} here`);
    const gfns: number[] = [];
    const holes: number[] = [];
    const pod: number[] = [];
    for (let i = 0; i < count; i++) {
      const v = dv.getBigUint64(page_data_header.pfn + 8 * i, true);
      const t = Number(v >> PAGE_DATA_TYPE_SHIFT);
      const gfn = Number(v & PAGE_DATA_PFN_MASK);
      if (t === XEN_DOMCTL_PFINFO_XTAB) { holes.push(gfn); continue; }
      if (t === XEN_DOMCTL_PFINFO_XALLOC) { pod.push(gfn); continue; }
      if (t !== XEN_DOMCTL_PFINFO_NOTAB) bad(`pfn type 0x${t.toString(16)}: page tables do not occur in an auto-translated guest`);
      gfns.push(gfn);
    }
    const dataAt = page_data_header.pfn + 8 * count;
    if (length !== dataAt + gfns.length * PAGE_SIZE) bad(`${length - dataAt} bytes of data for ${gfns.length} pages`);
    return { gfns, holes, pod };
  }
}

function recName(type: number): string {
  const base = REC_TYPE_NAMES[type & ~REC_TYPE_OPTIONAL];
  return base === undefined ? `type 0x${(type >>> 0).toString(16)}` : base;
}
