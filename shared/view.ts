/*
 * Re-viewing a page: the same bytes as words, doubles or a DataView, without touching `.buffer`.
 *
 * Xen: nothing by this name. A C kernel casts a page pointer to the struct it wants; the MMU
 * already limits that pointer to the page. Here a page view is a typed array over machine
 * memory, and in a guest's thread its `.buffer` is refused (hypervisor/view-guard.ts), since the
 * buffer is all of machine memory. Code that wants the page's bytes as another type asks here:
 * every function below makes a view over exactly the byte range of the view it is given, never
 * more, so it is safe to hand to a guest.
 *
 * Why the getters are captured: this module is evaluated in every thread before its guard is
 * installed, so it keeps the language's own `buffer`, `byteOffset` and `byteLength` getters. It
 * reads all three through them, never through the object, because a guest can give a view an
 * own `byteOffset` property that lies. Constructors are checked against the ones captured here,
 * because `new Ctor(buffer, ...)` hands the buffer to whatever `Ctor` is.
 */

type AnyView = ArrayBufferView;
type TypedArrayCtor =
  | typeof Uint8Array | typeof Int8Array | typeof Uint16Array | typeof Int16Array
  | typeof Uint32Array | typeof Int32Array | typeof Float32Array | typeof Float64Array
  | typeof BigInt64Array | typeof BigUint64Array;

const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
const getter = (proto: object, name: string) => Object.getOwnPropertyDescriptor(proto, name)!.get!;
const ta = { buffer: getter(TypedArrayProto, 'buffer'), byteOffset: getter(TypedArrayProto, 'byteOffset'), byteLength: getter(TypedArrayProto, 'byteLength') };
const dv = { buffer: getter(DataView.prototype, 'buffer'), byteOffset: getter(DataView.prototype, 'byteOffset'), byteLength: getter(DataView.prototype, 'byteLength') };
const call = Function.prototype.call;

/** The typed-array constructors this thread started with; a guest's replacement is not among them. */
const CTORS: ReadonlySet<unknown> = new Set<unknown>([
  Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array,
  BigInt64Array, BigUint64Array,
]);
const NewDataView = DataView;
const isView = ArrayBuffer.isView;

/** Buffer, offset and length of a real view, read through the language's own getters. */
function rangeOf(v: AnyView): [ArrayBufferLike, number, number] {
  if (!isView(v)) throw new TypeError('not an ArrayBuffer view');
  const g = v instanceof NewDataView ? dv : ta;
  return [call.call(g.buffer, v) as ArrayBufferLike, call.call(g.byteOffset, v) as number, call.call(g.byteLength, v) as number];
}

/**
 * The bytes of `v` as a `Ctor` array: exactly its range, rounded down to whole elements. The range
 * must start on an element boundary (a page always does).
 */
export function viewAs<C extends TypedArrayCtor>(v: AnyView, Ctor: C): InstanceType<C> {
  if (!CTORS.has(Ctor)) throw new TypeError('viewAs: not a typed-array constructor');
  const [buf, off, len] = rangeOf(v);
  return new Ctor(buf as ArrayBuffer, off, Math.floor(len / Ctor.BYTES_PER_ELEMENT)) as InstanceType<C>;
}

/** The bytes of `v` as 32-bit words (a ring's indices, a checksum's input). */
export function wordsOf(v: AnyView): Int32Array {
  return viewAs(v, Int32Array);
}

/** A DataView over exactly the bytes of `v`, for fields at odd offsets (packet headers, descriptors). */
export function dataViewOf(v: AnyView, offset = 0, length?: number): DataView {
  const [buf, off, len] = rangeOf(v);
  if (offset < 0 || offset > len || (length !== undefined && (length < 0 || offset + length > len))) {
    throw new RangeError(`dataViewOf: [${offset}, +${length ?? len - offset}) is outside the view's ${len} bytes`);
  }
  return new NewDataView(buf, off + offset, length ?? len - offset);
}
