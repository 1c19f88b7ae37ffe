/*
 * The device model's end of the ioreq protocol: one ioreq server for one guest, routing each
 * access it receives to the emulated device that owns the address.
 *
 * QEMU: hw/xen/xen-hvm-common.c (xen_register_ioreq, cpu_get_ioreq, handle_ioreq,
 * cpu_handle_ioreq, xen_set_ioreq_server_state) with libxendevicemodel's dm_op calls and
 * hw/i386/xen/xen-hvm.c's ISA IRQ plumbing; the ABI is shared/public/hvm/ioreq.ts and dm_op.ts.
 *
 * Set-up follows QEMU's order (dm_op.ts has it step by step): create the server, map its ioreq
 * page with acquire_resource, bind each vCPU's vp_eport, claim port and MMIO ranges, enable.
 * Devices plug in as IoDevice objects (QEMU's MemoryRegionOps: read and write at an offset in
 * their region); a flat 64K-entry table says which device owns each I/O port, so dispatching an
 * access costs two array loads, as v86's port table does.
 *
 * Servicing: an event on any vp_eport, or the kernel's idle poll (IdlePoller, see
 * shared/kernel/events.ts), scans the slots for STATE_IOREQ_READY. A request is taken
 * (INPROCESS), its fields copied out once, handed to the device, answered (IORESP_READY) and the
 * waiting vCPU woken with a futex notify on the state word. How both sides wait is the run's
 * waiting policy (shared/wait.ts): under `irq` Dom0 sleeps until a vp_eport event and the vCPU
 * sleeps on its slot, so every access costs two wake-ups; under `poll` this side keeps looking
 * at the slots, and the vCPU at its state word, for the policy's budget, so a guest in a tight
 * register loop makes round trips with no sleep on either side (hypervisor/ioreq-send.ts has
 * the vCPU's half).
 *
 * Buffered writes (opts.bufioreq): the server also maps Xen's buffered ioreq page and binds its
 * bufioreq_port; the zones the device names (addBufferedZone) then send their writes there, and the
 * vCPU does not wait. Before it handles a synchronous request it has taken, the server takes the
 * buffered entries, in order (QEMU's cpu_handle_ioreq: cpu_get_ioreq, then handle_buffered_iopage,
 * then handle_ioreq), so a guest's buffered writes always reach the device before its next read. QEMU only arms a 100 ms timer
 * when the bufioreq event arrives and otherwise waits for the next synchronous request; ringvisor
 * drains on the event itself (no timer, no delay added to what the benchmark measures).
 *
 * A device that throws is a bug in the model, not the guest's doing. It must not take Dom0 down
 * with it (QEMU dying does not kill Dom0 either): the server logs it once, marks itself broken,
 * and from then on answers every access with all ones, like an empty bus.
 */
import type { IdlePoller } from '../../shared/kernel/events.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  HVM_IOREQSRV_BUFIOREQ_ATOMIC, HVM_IOREQSRV_BUFIOREQ_OFF, XENMEM_resource_ioreq_server,
  XENMEM_resource_ioreq_server_frame_bufioreq, XENMEM_resource_ioreq_server_frame_ioreq, XEN_DMOP_IO_RANGE_MEMORY,
  XEN_DMOP_IO_RANGE_PORT, XEN_DMOP_no_gfns, type DmIoreqServerInfo,
} from '../../shared/public/hvm/dm_op.ts';
import {
  BUFIOREQ_W, IOREQ_BUFFER_SLOT_NUM, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_W, STATE_IOREQ_INPROCESS,
  STATE_IOREQ_READY, STATE_IORESP_READY, buf_ioreq_addr, buf_ioreq_size, buf_ioreq_type, ioreq_dir, ioreq_is_string,
  ioreq_slot_word, ioreq_state, ioreq_type, ioreq_with_state,
} from '../../shared/public/hvm/ioreq.ts';
import { errnoName } from '../../shared/public/xen.ts';
import * as trace from '../../shared/public/trace.ts';
// Copied once: an imported binding read per request costs some 15 ns under tsx (hypervisor/trace.ts).
const { TRC_BEGIN, TRC_END, TRC_GUEST_DM_IOREQ } = trace;

/** An emulated device's registers (QEMU's MemoryRegionOps): offsets are relative to its region. */
export interface IoDevice {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

export interface IoreqServerStats {
  ioreqs: number;      // accesses answered
  events: number;      // vp_eport events that woke us
  polled: number;      // accesses found by the idle poll before their event was handled
  unhandled: number;   // accesses to an address no device here owns (answered with all ones)
  irqRaises: number;   // rising edges of an interrupt line (one event to the guest each)
  modelFaults: number; // exceptions thrown by a device (the server is broken after the first)
  buffered: number;    // writes taken from the buffered ioreq page
  bufEvents: number;   // bufioreq_port events that woke us
}

export interface IoreqServerOptions {
  /** Ask for Xen's buffered ioreq page (HVM_IOREQSRV_BUFIOREQ_ATOMIC), for addBufferedZone. */
  bufioreq?: boolean;
}

interface Region { first: number; last: number; dev: IoDevice }

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff];

function check(what: string, rc: number): number {
  if (rc < 0) throw new Error(`ioreq server: ${what} failed: ${errnoName(rc)}`);
  return rc;
}

export class IoreqServer implements IdlePoller {
  readonly id: number;
  readonly stats: IoreqServerStats = { ioreqs: 0, events: 0, polled: 0, unhandled: 0, irqRaises: 0, modelFaults: 0, buffered: 0, bufEvents: 0 };
  private readonly pageGfn: number;
  private readonly page: Int32Array;
  /** The buffered ioreq page and its event channel (-1 / null: none). */
  private bufGfn = -1;
  private bufPage: Int32Array | null = null;
  private bufPort = -1;
  /** The 1 MiB window the buffered zones lie in (buf_ioreq keeps only the low 20 address bits). */
  private bufWindow = -1;
  private readonly onBufEvent = (): void => {
    this.stats.bufEvents++;
    this.drainBuffered();
  };
  private readonly ports: number[] = [];
  /** Port → index + 1 in `regions` (0: not ours). */
  private readonly portOwner = new Uint8Array(0x10000);
  private readonly regions: Region[] = [];
  private readonly mmio: Region[] = [];
  private irqLevels = 0;
  private broken = false;
  private closed = false;
  private inEvent = false;
  private readonly onEvent = (): void => {
    this.stats.events++;
    this.inEvent = true;
    this.service();
    this.inEvent = false;
  };

  constructor(private readonly k: Kernel, readonly domid: number, readonly nrVcpus: number, opts: IoreqServerOptions = {}) {
    const h = k.hypercall;
    this.id = check('create_ioreq_server', h.dm_op_create_ioreq_server(domid, opts.bufioreq ? HVM_IOREQSRV_BUFIOREQ_ATOMIC : HVM_IOREQSRV_BUFIOREQ_OFF));
    this.pageGfn = k.pages.allocHole();
    try {
      check('acquire_resource(ioreq page)', h.memory_acquire_resource(domid, XENMEM_resource_ioreq_server, this.id,
        XENMEM_resource_ioreq_server_frame_ioreq(0), this.pageGfn));
      this.page = k.memory.pageWords(this.pageGfn, true);
      // Xen fills vp_eport for each vCPU the guest has, and leaves the other slots zero.
      if (this.page[ioreq_slot_word(nrVcpus, IOREQ_W.vp_eport)] !== 0) throw new Error(`ioreq server: d${domid} has more than ${nrVcpus} vCPU(s)`);
      for (let v = 0; v < nrVcpus; v++) {
        const vp_eport = this.page[ioreq_slot_word(v, IOREQ_W.vp_eport)];
        if (vp_eport === 0) throw new Error(`ioreq server: d${domid} has no vCPU ${v}`);
        this.ports.push(k.events.bindInterdomain(domid, vp_eport, this.onEvent));
      }
      if (opts.bufioreq) {
        // QEMU's xen_map_ioreq_server: the buffered page (frame 0) and bufioreq_port.
        const info: DmIoreqServerInfo = { bufioreq_port: 0 };
        check('get_ioreq_server_info', h.dm_op_get_ioreq_server_info(domid, this.id, XEN_DMOP_no_gfns, info));
        this.bufGfn = k.pages.allocHole();
        check('acquire_resource(bufioreq page)', h.memory_acquire_resource(domid, XENMEM_resource_ioreq_server, this.id,
          XENMEM_resource_ioreq_server_frame_bufioreq, this.bufGfn));
        this.bufPage = k.memory.pageWords(this.bufGfn, true);
        this.bufPort = k.events.bindInterdomain(domid, info.bufioreq_port, this.onBufEvent);
      }
    } catch (e) {
      if (this.bufPort >= 0) k.events.close(this.bufPort);
      if (this.bufGfn >= 0) {
        h.memory_remove_from_physmap(this.bufGfn);
        k.pages.releaseHole(this.bufGfn);
      }
      for (const port of this.ports) k.events.close(port);
      h.dm_op_destroy_ioreq_server(domid, this.id);
      h.memory_remove_from_physmap(this.pageGfn); // fails harmlessly if the page was never mapped
      k.pages.releaseHole(this.pageGfn);
      throw e;
    }
    k.events.addPoller(this);
  }

  /** Claim `count` I/O ports from `first` for `dev` (XEN_DMOP_map_io_range_to_ioreq_server). */
  mapPorts(first: number, count: number, dev: IoDevice): void {
    check(`map ports 0x${first.toString(16)}+${count}`,
      this.k.hypercall.dm_op_map_io_range_to_ioreq_server(this.domid, this.id, XEN_DMOP_IO_RANGE_PORT, first, first + count - 1));
    this.regions.push({ first, last: first + count - 1, dev });
    this.portOwner.fill(this.regions.length, first, first + count);
  }

  /** Claim `bytes` of MMIO from guest-physical `first` for `dev`. */
  mapMmio(first: number, bytes: number, dev: IoDevice): void {
    check(`map MMIO 0x${first.toString(16)}+${bytes}`,
      this.k.hypercall.dm_op_map_io_range_to_ioreq_server(this.domid, this.id, XEN_DMOP_IO_RANGE_MEMORY, first, first + bytes - 1));
    this.mmio.push({ first, last: first + bytes - 1, dev });
  }

  /** Writes to `bytes` from guest-physical `first` go to the buffered page (RINGVISOR_DMOP_add_buffered_zone). */
  addBufferedZone(first: number, bytes: number): void {
    if (this.bufPage === null) throw new Error('ioreq server: addBufferedZone needs a server made with bufioreq');
    check(`buffered zone 0x${first.toString(16)}+${bytes}`,
      this.k.hypercall.dm_op_add_buffered_zone(this.domid, this.id, first, first + bytes - 1));
    this.bufWindow = (first >>> 20) * 0x100000;
  }

  /** XEN_DMOP_set_ioreq_server_state(1): from now on the claimed accesses arrive here. */
  enable(): void {
    check('set_ioreq_server_state', this.k.hypercall.dm_op_set_ioreq_server_state(this.domid, this.id, true));
  }

  /** Drive ISA IRQ `irq` to `level`; only changes reach the hypervisor (XEN_DMOP_set_isa_irq_level). */
  setIsaIrq(irq: number, level: boolean): void {
    const bit = 1 << irq;
    if (((this.irqLevels & bit) !== 0) === level || this.closed) return;
    this.irqLevels ^= bit;
    if (level) this.stats.irqRaises++;
    this.k.hypercall.dm_op_set_isa_irq_level(this.domid, irq, level ? 1 : 0);
  }

  /** IdlePoller: look for requests; true if there were some. */
  poll(): boolean {
    return this.service();
  }

  /**
   * IdlePoller: the vCPU whose accesses we wait for (a one-vCPU guest's; with more, we cannot
   * name one, and the spin is bounded by its budget alone). See shared/wait.ts.
   */
  peerPort(): number {
    return this.ports.length === 1 ? this.ports[0] : -1;
  }

  /** IdlePoller: nothing to arm (every access sends its event), so just look once more. */
  prepareToSleep(): boolean {
    return this.service();
  }

  /**
   * handle_buffered_iopage: apply every buffered write, in order. The fields are read after the
   * write_pointer that published them, and read_pointer is advanced after the entry is used, so
   * the hypervisor never reuses a slot we are still reading.
   */
  drainBuffered(): boolean {
    const b = this.bufPage;
    if (b === null || this.closed) return false;
    let found = false;
    for (;;) {
      const rp = Atomics.load(b, BUFIOREQ_W.read_pointer) >>> 0;
      const wp = Atomics.load(b, BUFIOREQ_W.write_pointer) >>> 0;
      if (rp === wp) break;
      found = true;
      const slot = BUFIOREQ_W.slots + (rp % IOREQ_BUFFER_SLOT_NUM) * 2;
      const w0 = b[slot];
      const data = b[slot + 1] >>> 0;
      const size = buf_ioreq_size(w0);
      const addr = this.bufWindow + buf_ioreq_addr(w0);
      this.stats.buffered++;
      const region = !this.broken && (size === 1 || size === 2 || size === 4) ? this.lookup(buf_ioreq_type(w0), addr, size) : null;
      if (region === null) this.stats.unhandled++;
      else this.access(region, addr, size as 1 | 2 | 4, true, data);
      Atomics.add(b, BUFIOREQ_W.read_pointer, 1);
    }
    return found;
  }

  /** cpu_handle_ioreq: the buffered writes first, then every synchronous request that is waiting. */
  service(): boolean {
    if (this.closed) return false;
    let found = this.drainBuffered();
    for (let v = 0; v < this.nrVcpus; v++) {
      const ctrlIdx = ioreq_slot_word(v, IOREQ_W.ctrl);
      const ctrl = Atomics.load(this.page, ctrlIdx);
      if (ioreq_state(ctrl) !== STATE_IOREQ_READY) continue;
      Atomics.store(this.page, ctrlIdx, ioreq_with_state(ctrl, STATE_IOREQ_INPROCESS));
      found = true;
      if (!this.inEvent) this.stats.polled++;
      // QEMU's order: the request is fetched first, then the buffered page drained, then the
      // request handled. A write the vCPU buffered before this access was published before this
      // slot's READY, so having seen READY we see it now (draining only before the scan could
      // miss a write that arrived between the two, and answer a read before it).
      this.drainBuffered();
      this.k.hypercall.xentrace(TRC_GUEST_DM_IOREQ | TRC_BEGIN, this.domid, v, 0, 0);
      this.handle(v, ctrl);
      this.k.hypercall.xentrace(TRC_GUEST_DM_IOREQ | TRC_END, this.domid, v, 0, 0);
      Atomics.store(this.page, ctrlIdx, ioreq_with_state(ctrl, STATE_IORESP_READY));
      Atomics.notify(this.page, ctrlIdx, 1);
    }
    return found;
  }

  /** handle_ioreq for vCPU v's slot (the fields after the state word announced them). */
  private handle(v: number, ctrl: number): void {
    const base = ioreq_slot_word(v, 0);
    const p = this.page;
    const addr = p[base + IOREQ_W.addr] >>> 0;
    const size = p[base + IOREQ_W.size];
    const read = ioreq_dir(ctrl) === IOREQ_READ;
    this.stats.ioreqs++;
    let value = ALL_ONES[size === 1 || size === 2 || size === 4 ? size : 4];
    const region = p[base + IOREQ_W.count] === 1 && !ioreq_is_string(ctrl) && (size === 1 || size === 2 || size === 4) && !this.broken
      ? this.lookup(ioreq_type(ctrl), addr, size) : null;
    if (region === null) {
      this.stats.unhandled++;
    } else {
      const v = this.access(region, addr, size as 1 | 2 | 4, !read, p[base + IOREQ_W.data] >>> 0);
      if (read && v >= 0) value = v;
    }
    if (read) {
      p[base + IOREQ_W.data] = value;
      p[base + IOREQ_W.data + 1] = 0;
    }
  }

  /**
   * One device access: the value read (0 for a write), or -1 if the device threw, which is a bug in
   * the model: logged once, and the server goes broken (see the header).
   */
  private access(region: Region, addr: number, size: 1 | 2 | 4, write: boolean, data: number): number {
    try {
      if (write) {
        region.dev.write(addr - region.first, size, data);
        return 0;
      }
      return region.dev.read(addr - region.first, size) >>> 0;
    } catch (e) {
      this.stats.modelFaults++;
      this.broken = true;
      this.k.log(`ioreq server d${this.domid}: device model fault at 0x${addr.toString(16)}, answering all ones from now on: ${(e as Error).stack ?? e}`);
      return -1;
    }
  }

  private lookup(type: number, addr: number, size: number): Region | null {
    if (type === IOREQ_TYPE_PIO) {
      const i = addr <= 0xffff ? this.portOwner[addr] : 0;
      const r = i === 0 ? null : this.regions[i - 1];
      return r !== null && addr + size - 1 <= r.last ? r : null;
    }
    if (type === IOREQ_TYPE_COPY) {
      for (const r of this.mmio) if (addr >= r.first && addr + size - 1 <= r.last) return r;
    }
    return null;
  }

  /**
   * Tear down in the reverse order: stop polling, close our ends of the vCPU channels, destroy
   * the server (the hypervisor closes the guest's ends and releases the ranges), unmap the page.
   * Safe when the guest is already gone: the hypervisor destroyed the server then, and the calls
   * that name it just fail.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.k.events.removePoller(this);
    for (const port of this.ports) this.k.events.close(port);
    if (this.bufPort >= 0) this.k.events.close(this.bufPort);
    this.k.hypercall.dm_op_destroy_ioreq_server(this.domid, this.id);
    check('remove_from_physmap(ioreq page)', this.k.hypercall.memory_remove_from_physmap(this.pageGfn));
    this.k.pages.releaseHole(this.pageGfn);
    if (this.bufGfn >= 0) {
      check('remove_from_physmap(bufioreq page)', this.k.hypercall.memory_remove_from_physmap(this.bufGfn));
      this.k.pages.releaseHole(this.bufGfn);
    }
  }
}
