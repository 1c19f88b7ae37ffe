/*
 * The guard on page views in a guest's thread: a view of machine memory gives out its page, not
 * the machine.
 *
 * Xen: the page tables. A PV guest's mapping of a frame reaches that frame and nothing beside it;
 * the MMU refuses the rest. Here a page view is a typed array over the hypervisor's
 * SharedArrayBuffers (DESIGN.md section 3: machine memory is one buffer), and the language lets
 * any typed array give out its whole buffer through `.buffer`. Each vCPU thread is its own
 * JavaScript realm with its own copies of the built-in prototypes, so before a DomU's kernel is
 * imported, its thread replaces the `buffer` getters of %TypedArray%.prototype and
 * DataView.prototype with ones that refuse, as a page fault, any view over one of the hypervisor's
 * buffers (a TypeError, which the kernel may catch like any fault), and answer every other view as before (a guest's own heap arrays, Node's Buffers).
 * The replacements cannot be undone: they are non-configurable, and the original getters live
 * only in this module's scope and in shared/view.ts, which uses them to re-view exactly a view's
 * own bytes (wordsOf, dataViewOf), never more.
 *
 * Cost: nothing on any access; `.buffer` itself costs one set lookup. Dom0's threads are not
 * guarded: the control domain may map any frame (Xen's privcmd foreign mappings), and its
 * backends hand views to Node's file calls.
 */
import '../shared/view.ts'; // evaluated first: it keeps the language's own getters (see its header)

let installed = false;

/** Refuse `.buffer` on any view over one of `buffers`, in this thread, from now on. */
export function guardPageViews(buffers: Iterable<ArrayBufferLike>): void {
  if (installed) throw new Error('page views are already guarded in this thread');
  installed = true;
  const hidden = new Set<ArrayBufferLike>(buffers);
  const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
  for (const proto of [TypedArrayProto, DataView.prototype]) {
    const original = Object.getOwnPropertyDescriptor(proto, 'buffer')!.get!;
    Object.defineProperty(proto, 'buffer', {
      configurable: false,
      enumerable: false,
      get(this: ArrayBufferView): ArrayBufferLike {
        const b = original.call(this) as ArrayBufferLike;
        if (hidden.has(b)) {
          throw new TypeError('a page view reaches only its own bytes, not the buffer behind it (re-view it with wordsOf / dataViewOf / viewAs from shared/view.ts)');
        }
        return b;
      },
    });
  }
}
