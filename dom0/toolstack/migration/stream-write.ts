/*
 * Writing a save stream: xl's header with the config, libxl's stream v2, and libxc's image stream
 * (v3) with its records, as the layouts in shared/public/migration-stream.ts declare them.
 *
 * Xen: tools/xl/xl_saverestore.c (save_domain_core_begin: the header and the JSON config),
 * tools/libs/light/libxl_stream_write.c (the libxl header, LIBXC_CONTEXT, END) and
 * tools/libs/guest/xg_sr_save.c (write_headers, write_batch, the static records, END). The writer
 * hands each finished piece to a sink: a file for `save`, a socket for `migrate`. Records are
 * little-endian (image header option bit 0 clear), as on x86; the headers are big-endian.
 */
import {
  DHDR_TYPE_X86_PV, IHDR_ID, IHDR_MARKER, IHDR_VERSION, LIBXL_IDENT, LIBXL_VERSION, MAX_BATCH_SIZE, REC_ALIGN,
  REC_TYPE_END, REC_TYPE_LIBXC_CONTEXT, REC_TYPE_LIBXL_END, REC_TYPE_PAGE_DATA, REC_TYPE_SHARED_INFO,
  REC_TYPE_STATIC_DATA_END, REC_TYPE_X86_PV_INFO, REC_TYPE_X86_PV_VCPU_BASIC, XEN_DOMCTL_PFINFO_NOTAB,
  XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMv2, XL_SAVEFILE_BYTEORDER, XL_SAVEFILE_MAGIC, PAGE_DATA_TYPE_SHIFT,
  domain_header, image_header, libxl_header, page_data_header, rec_hdr, save_file_header, x86_pv_info, x86_pv_vcpu_basic,
} from '../../../shared/public/migration-stream.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../../shared/public/xen.ts';

/**
 * Where the stream goes. `written` says the chunk's bytes may be reused (a file: at once; a
 * socket: once flushed); a sink that never calls it costs a fresh buffer per PAGE_DATA record.
 * A returned promise is back-pressure: the writer waits for it before the next chunk.
 */
export type Sink = (chunk: Uint8Array, written: () => void) => void | Promise<void>;

/** What xl puts in the save file's optional data (its JSON config), ringvisor's reduced form. */
export interface SavedConfig {
  name: string;
  /** The VM's config file (shared storage: the target reads the same path). */
  file: string;
  /** Its text when saved; the restorer refuses a config that changed since. */
  text: string;
  memoryKiB: number;
  vcpus: number;
  /** The balloon target when saved (memory/target, KiB), as libxl keeps target_memkb; restored with it. */
  targetKiB?: number;
}

/* A pad of zeros for the 8-byte alignment of records. */
const PAD = new Uint8Array(REC_ALIGN);

/* The largest PAGE_DATA record: header, count and pfns, the pages. */
const PAGE_RECORD_MAX = rec_hdr.SIZE + page_data_header.pfn + 8 * MAX_BATCH_SIZE + MAX_BATCH_SIZE * PAGE_SIZE;
/*
 * Records up to this size (a batch of holes and PoD entries, 8 KiB for 1024 pfns, or one with a
 * few pages) get a buffer of their own size instead of a pooled PAGE_RECORD_MAX one. A socket
 * takes such a record at once and gives it back only on a later tick, while the saver goes on
 * to the next batch without waiting: pooled, each of them cost a fresh 4 MiB buffer, zeroed (a
 * 256 MiB guest with little RAM touched: 60 of them per move, most of the sender's CPU time in
 * round 1, and the garbage collections they brought into the rounds and the stop-and-copy).
 */
const SMALL_RECORD = 64 * 1024;
const noop = (): void => undefined;

export class StreamWriter {
  bytesWritten = 0;
  /* PAGE_DATA records' buffers the sink has given back, for the next ones (no large allocation per batch: SMALL_RECORD). */
  private readonly free: Uint8Array[] = [];

  constructor(private readonly sink: Sink) {}

  /** Time spent waiting for the sink to take more (back-pressure: a socket's peer reading slower). */
  sinkWaitMs = 0;
  /** Time spent filling PAGE_DATA records (the saver's reads from the guest's frames). */
  copyMs = 0;

  private async put(chunk: Uint8Array, written: () => void = noop): Promise<void> {
    this.bytesWritten += chunk.length;
    const wait = this.sink(chunk, written);
    if (wait) {
      const t = performance.now();
      await wait;
      this.sinkWaitMs += performance.now() - t;
    }
  }

  /** xl's save_file_header plus its optional data (the config as JSON), then libxl's header. */
  async headers(config: SavedConfig): Promise<void> {
    const json = new TextEncoder().encode(JSON.stringify(config));
    const h = new DataView(new ArrayBuffer(save_file_header.SIZE + 4));
    new TextEncoder().encode(XL_SAVEFILE_MAGIC).forEach((b, i) => h.setUint8(save_file_header.magic + i, b));
    h.setUint32(save_file_header.byteorder, XL_SAVEFILE_BYTEORDER, true);
    h.setUint32(save_file_header.mandatory_flags, XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMv2, true);
    h.setUint32(save_file_header.optional_flags, 0, true);
    h.setUint32(save_file_header.optional_data_len, 4 + json.length, true);
    h.setUint32(save_file_header.SIZE, json.length, true); // config_len, then the config
    await this.put(new Uint8Array(h.buffer));
    await this.put(json);
    const l = new DataView(new ArrayBuffer(libxl_header.SIZE));
    l.setBigUint64(libxl_header.ident, LIBXL_IDENT, false);
    l.setUint32(libxl_header.version, LIBXL_VERSION, false);
    l.setUint32(libxl_header.options, 0, false);
    await this.put(new Uint8Array(l.buffer));
  }

  /** libxl's LIBXC_CONTEXT (libxc's stream follows inline), libxc's image and domain headers, the static records. */
  async libxcBegin(): Promise<void> {
    await this.record(REC_TYPE_LIBXC_CONTEXT, new Uint8Array(0));
    const ih = new DataView(new ArrayBuffer(image_header.SIZE + domain_header.SIZE));
    ih.setBigUint64(image_header.marker, IHDR_MARKER, false);
    ih.setUint32(image_header.id, IHDR_ID, false);
    ih.setUint32(image_header.version, IHDR_VERSION, false);
    ih.setUint16(image_header.options, 0, false); // little-endian records
    const d = image_header.SIZE;
    ih.setUint32(d + domain_header.type, DHDR_TYPE_X86_PV, false);
    ih.setUint16(d + domain_header.page_shift, PAGE_SHIFT, false);
    ih.setUint32(d + domain_header.xen_major, 4, false);
    ih.setUint32(d + domain_header.xen_minor, 19, false);
    await this.put(new Uint8Array(ih.buffer));
    const info = new Uint8Array(x86_pv_info.SIZE);
    info[x86_pv_info.guest_width] = 8;
    info[x86_pv_info.pt_levels] = 4;
    await this.record(REC_TYPE_X86_PV_INFO, info);
    await this.record(REC_TYPE_STATIC_DATA_END, new Uint8Array(0));
  }

  /**
   * One PAGE_DATA record: `gfns` (at most MAX_BATCH_SIZE) and the contents of those that carry
   * data, which `copy` puts page after page into the record itself (write_batch: the saver's
   * foreign mapping, read straight into the buffer the socket sends), or which `copy` holds
   * already. `types`, when given, is each gfn's XEN_DOMCTL_PFINFO_* type (getpageframeinfo3):
   * only NOTAB pages carry data; XTAB (a hole) and XALLOC (a PoD entry) are named with no
   * contents. Without it, all are NOTAB. Header and pages leave in one chunk.
   */
  async pageData(gfns: readonly number[], copy: Uint8Array | ((out: Uint8Array) => void), types?: Int32Array): Promise<void> {
    const n = gfns.length;
    let withData = n;
    if (types) { withData = 0; for (let i = 0; i < n; i++) if (types[i] === XEN_DOMCTL_PFINFO_NOTAB) withData++; }
    if (n === 0 || n > MAX_BATCH_SIZE || (copy instanceof Uint8Array && copy.length !== withData * PAGE_SIZE)) {
      throw new RangeError(`PAGE_DATA batch of ${n} pages (${withData} with data)${copy instanceof Uint8Array ? ` with ${copy.length} bytes` : ''}`);
    }
    const dataAt = rec_hdr.SIZE + page_data_header.pfn + 8 * n; // a multiple of 8: no padding anywhere
    const length = dataAt + withData * PAGE_SIZE;
    const small = length <= SMALL_RECORD;
    const buf = small ? new Uint8Array(length) : this.free.pop() ?? this.newRecordBuffer();
    const dv = new DataView(buf.buffer, buf.byteOffset, length);
    dv.setUint32(rec_hdr.type, REC_TYPE_PAGE_DATA, true);
    dv.setUint32(rec_hdr.length, length - rec_hdr.SIZE, true);
    dv.setUint32(rec_hdr.SIZE + page_data_header.count, n, true);
    dv.setUint32(rec_hdr.SIZE + page_data_header.count + 4, 0, true); // reserved
    const pfn = rec_hdr.SIZE + page_data_header.pfn;
    const typeShift = Number(PAGE_DATA_TYPE_SHIFT) - 32;
    for (let i = 0; i < n; i++) {
      // The type in bits 63-60, the pfn below: both halves as u32s, no BigInt per page.
      const t = types ? types[i] : XEN_DOMCTL_PFINFO_NOTAB;
      dv.setUint32(pfn + 8 * i, gfns[i], true);
      dv.setUint32(pfn + 8 * i + 4, ((t << typeShift) | Math.floor(gfns[i] / 2 ** 32)) >>> 0, true);
    }
    const t = performance.now();
    if (copy instanceof Uint8Array) buf.set(copy, dataAt);
    else copy(buf.subarray(dataAt, length));
    this.copyMs += performance.now() - t;
    await this.put(buf.subarray(0, length), small ? noop : () => { this.free.push(buf); });
  }

  /** Full-size PAGE_DATA buffers made so far (the pool's size: a count, for the tests). */
  recordBuffers = 0;

  private newRecordBuffer(): Uint8Array {
    this.recordBuffers++;
    return new Uint8Array(PAGE_RECORD_MAX);
  }

  /** SHARED_INFO: exactly one page. */
  async sharedInfo(page: Uint8Array): Promise<void> {
    await this.record(REC_TYPE_SHARED_INFO, page);
  }

  /** X86_PV_VCPU_BASIC: this vCPU's context (the gfn of its resume record). */
  async vcpuContext(vcpu: number, resumeGfn: number): Promise<void> {
    const b = new DataView(new ArrayBuffer(x86_pv_vcpu_basic.SIZE));
    b.setUint32(x86_pv_vcpu_basic.vcpu_id, vcpu, true);
    b.setBigUint64(x86_pv_vcpu_basic.resume_gfn, BigInt(resumeGfn), true);
    await this.record(REC_TYPE_X86_PV_VCPU_BASIC, new Uint8Array(b.buffer));
  }

  /** libxc's END, then libxl's END: the stream is complete. */
  async end(): Promise<void> {
    await this.record(REC_TYPE_END, new Uint8Array(0));
    await this.record(REC_TYPE_LIBXL_END, new Uint8Array(0));
  }

  private record(type: number, body: Uint8Array): Promise<void> {
    return this.recordParts(type, [body]);
  }

  private async recordParts(type: number, parts: readonly Uint8Array[]): Promise<void> {
    const length = parts.reduce((s, p) => s + p.length, 0);
    const h = new DataView(new ArrayBuffer(rec_hdr.SIZE));
    h.setUint32(rec_hdr.type, type >>> 0, true);
    h.setUint32(rec_hdr.length, length, true);
    await this.put(new Uint8Array(h.buffer));
    for (const p of parts) if (p.length > 0) await this.put(p);
    const pad = (REC_ALIGN - (length % REC_ALIGN)) % REC_ALIGN;
    if (pad > 0) await this.put(PAD.subarray(0, pad));
  }
}
