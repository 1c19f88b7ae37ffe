/*
 * The save / migration stream's layouts: xl's save-file header, libxl's stream (v2) and, inside
 * it, libxc's domain image stream (v3), with the records ringvisor writes.
 *
 * Xen: tools/xl/xl.h (struct save_file_header), docs/specs/libxl-migration-stream.pandoc,
 * docs/specs/libxc-migration-stream.pandoc and tools/libs/guest/xg_sr_stream_format.h. A save file
 * is, in order:
 *
 *   xl header      magic[32], byteorder u32 (0x01020304 as the writer's order), mandatory_flags,
 *                  optional_flags, optional_data_len (u32 each), then optional data: config_len u32
 *                  and the domain's config as JSON (XL_MANDATORY_FLAG_JSON)
 *   libxl header   ident u64 "LibxlFmt", version u32 = 2, options u32 (big-endian)
 *   libxl records  LIBXC_CONTEXT (empty: libxc's stream follows inline), ..., END
 *   libxc stream   image header (24 B, big-endian), domain header (16 B), then records
 *
 * Every record, in both streams, is `type u32, body_length u32`, the body, and zero padding to a
 * multiple of 8 bytes, in the byte order the image header names (little-endian here, as on x86).
 * Bit 31 of a libxc record type marks it optional: a reader may skip an optional record it does not
 * know, and must refuse a mandatory one.
 *
 * Where ringvisor differs: its guests are auto-translated, so no page-table types appear in
 * PAGE_DATA, and its vCPU context is the "resumable guest" record of DESIGN.md section 12 (the gfn
 * of the page the kernel wrote its context into at suspend), carried in X86_PV_VCPU_BASIC.
 */

/* xl.h */
export const XL_SAVEFILE_MAGIC = 'Xen saved domain, xl format\n \0 \r';
export const XL_SAVEFILE_BYTEORDER = 0x01020304;
export const XL_MANDATORY_FLAG_JSON = 1 << 0;
export const XL_MANDATORY_FLAG_STREAMv2 = 1 << 1;
/** struct save_file_header: magic, then four u32 in the writer's byte order. */
export const save_file_header = { magic: 0, byteorder: 32, mandatory_flags: 36, optional_flags: 40, optional_data_len: 44, SIZE: 48 } as const;

/* libxl stream v2 */
export const LIBXL_IDENT = 0x4c6962786c466d74n; // "LibxlFmt"
export const LIBXL_VERSION = 2;
export const libxl_header = { ident: 0, version: 8, options: 12, SIZE: 16 } as const;
export const REC_TYPE_LIBXL_END = 0;
export const REC_TYPE_LIBXC_CONTEXT = 1;

/* libxc stream v3 */
export const IHDR_MARKER = 0xffffffffffffffffn;
export const IHDR_ID = 0x58454e46; // "XENF"
export const IHDR_VERSION = 3;
export const IHDR_OPT_BIG_ENDIAN = 1 << 0;
export const image_header = { marker: 0, id: 8, version: 12, options: 16, SIZE: 24 } as const;
export const DHDR_TYPE_X86_PV = 1;
export const DHDR_TYPE_X86_HVM = 2;
export const domain_header = { type: 0, page_shift: 4, xen_major: 8, xen_minor: 12, SIZE: 16 } as const;

/** A record's header; its body follows, padded with zeros to a multiple of 8 bytes. */
export const rec_hdr = { type: 0, length: 4, SIZE: 8 } as const;
export const REC_ALIGN = 8;
export const REC_TYPE_OPTIONAL = 0x80000000;

export const REC_TYPE_END = 0x00;
export const REC_TYPE_PAGE_DATA = 0x01;
export const REC_TYPE_X86_PV_INFO = 0x02;
export const REC_TYPE_X86_PV_VCPU_BASIC = 0x04;
export const REC_TYPE_SHARED_INFO = 0x07;
export const REC_TYPE_X86_TSC_INFO = 0x08;
export const REC_TYPE_STATIC_DATA_END = 0x10;

export const REC_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x00: 'END', 0x01: 'PAGE_DATA', 0x02: 'X86_PV_INFO', 0x03: 'X86_PV_P2M_FRAMES', 0x04: 'X86_PV_VCPU_BASIC',
  0x05: 'X86_PV_VCPU_EXTENDED', 0x06: 'X86_PV_VCPU_XSAVE', 0x07: 'SHARED_INFO', 0x08: 'X86_TSC_INFO',
  0x09: 'HVM_CONTEXT', 0x0a: 'HVM_PARAMS', 0x0b: 'TOOLSTACK', 0x0c: 'X86_PV_VCPU_MSRS', 0x0d: 'VERIFY',
  0x0e: 'CHECKPOINT', 0x0f: 'CHECKPOINT_DIRTY_PFN_LIST', 0x10: 'STATIC_DATA_END', 0x11: 'X86_CPUID_POLICY',
  0x12: 'X86_MSR_POLICY',
};

/** PAGE_DATA body: count u32 (> 0), reserved u32, pfn[count] u64, then the pages that carry data. */
export const page_data_header = { count: 0, reserved: 4, pfn: 8 } as const;
export const PAGE_DATA_PFN_MASK = 0x000fffffffffffffn; // bits 51..0
export const PAGE_DATA_TYPE_SHIFT = 60n;
export const XEN_DOMCTL_PFINFO_NOTAB = 0x0;  // an ordinary page: its contents follow
export const XEN_DOMCTL_PFINFO_XTAB = 0xf;   // an invalid page: no contents
export const XEN_DOMCTL_PFINFO_XALLOC = 0xe; // allocate only: RAM, no contents (ringvisor: a PoD entry never touched)
/** The saver's largest batch (xg_sr_common.h MAX_BATCH_SIZE): 1024 pages, 4 MiB of data. */
export const MAX_BATCH_SIZE = 1024;

/** X86_PV_INFO body: guest_width u8, pt_levels u8, 6 reserved bytes. */
export const x86_pv_info = { guest_width: 0, pt_levels: 1, SIZE: 8 } as const;

/**
 * X86_PV_VCPU_BASIC body: vcpu_id u32, reserved u32, then the context. ringvisor's context is one
 * u64: the gfn of the page the kernel wrote its resume record into (DESIGN.md section 12).
 */
export const x86_pv_vcpu_basic = { vcpu_id: 0, reserved: 4, resume_gfn: 8, SIZE: 16 } as const;
