/*
 * Declaring a binary layout once, with its offsets, and reading it through typed views.
 *
 * Xen: the role C structs play in xen/include/public: one declaration both sides compile
 * against. Each ABI module in ringvisor declares its structs with defineStruct, next to the C
 * declaration in a comment, and every reader and writer goes through the accessors made here,
 * so no offset is written twice.
 *
 * A StructView is a private copy: its own small buffer with a DataView for fields and an
 * Int32Array for whole-slot copies to and from a ring. That is on purpose: a backend copies a
 * request out of the shared page into a view and validates only the copy (ring.h's
 * RING_COPY_REQUEST; the double-fetch bug XSA-155 is what happens otherwise).
 */

export type FieldType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64';
export type Fields = Readonly<Record<string, readonly [FieldType, number]>>;

export type StructView<F extends Fields> = { -readonly [K in keyof F]: number } & {
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly dv: DataView;
  /** Zero every byte, padding included (a response must never carry stale bytes: XSA-216). */
  clear(): void;
};

export interface StructDef<F extends Fields> {
  readonly name: string;
  readonly size: number;
  readonly fields: F;
  create(): StructView<F>;
}

const WIDTH: Record<FieldType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, u64: 8 };
const TWO_32 = 2 ** 32;

export function defineStruct<const F extends Fields>(name: string, size: number, fields: F): StructDef<F> {
  if (size % 4 !== 0) throw new Error(`${name}: size ${size} is not a whole number of 32-bit words`);
  class View {
    readonly bytes: Uint8Array;
    readonly words: Int32Array;
    readonly dv: DataView;
    constructor() {
      const buf = new ArrayBuffer(size);
      this.bytes = new Uint8Array(buf);
      this.words = new Int32Array(buf);
      this.dv = new DataView(buf);
    }
    clear(): void {
      this.words.fill(0);
    }
  }
  for (const [field, [type, off]] of Object.entries(fields)) {
    const w = WIDTH[type];
    if (off % w !== 0 || off + w > size) throw new Error(`${name}.${field}: ${type} at ${off} is misaligned or past ${size}`);
    Object.defineProperty(View.prototype, field, accessor(type, off));
  }
  return { name, size, fields, create: () => new View() as unknown as StructView<F> };
}

function accessor(type: FieldType, off: number): PropertyDescriptor {
  switch (type) {
    case 'u8': return { get(this: { dv: DataView }) { return this.dv.getUint8(off); }, set(this: { dv: DataView }, v: number) { this.dv.setUint8(off, v); } };
    case 'i8': return { get(this: { dv: DataView }) { return this.dv.getInt8(off); }, set(this: { dv: DataView }, v: number) { this.dv.setInt8(off, v); } };
    case 'u16': return { get(this: { dv: DataView }) { return this.dv.getUint16(off, true); }, set(this: { dv: DataView }, v: number) { this.dv.setUint16(off, v, true); } };
    case 'i16': return { get(this: { dv: DataView }) { return this.dv.getInt16(off, true); }, set(this: { dv: DataView }, v: number) { this.dv.setInt16(off, v, true); } };
    case 'u32': return { get(this: { dv: DataView }) { return this.dv.getUint32(off, true); }, set(this: { dv: DataView }, v: number) { this.dv.setUint32(off, v >>> 0, true); } };
    case 'i32': return { get(this: { dv: DataView }) { return this.dv.getInt32(off, true); }, set(this: { dv: DataView }, v: number) { this.dv.setInt32(off, v | 0, true); } };
    case 'u64': return {
      // Numbers are exact to 2^53, which covers every id and sector number ringvisor uses.
      get(this: { dv: DataView }) { return this.dv.getUint32(off, true) + this.dv.getUint32(off + 4, true) * TWO_32; },
      set(this: { dv: DataView }, v: number) { this.dv.setUint32(off, v >>> 0, true); this.dv.setUint32(off + 4, Math.floor(v / TWO_32) >>> 0, true); },
    };
  }
}
