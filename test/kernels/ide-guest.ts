// A DomU for the emulated-disk tests: boots, then does what the harness asks (probe the IDE disk,
// run the checked workload, single requests, register scripts), reporting on the test channel.
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { XENMAPSPACE_gmfn_foreign, type KernelEnv } from '../../shared/public/hypercall.ts';
import { XENMEM_resource_ioreq_server } from '../../shared/public/hvm/dm_op.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../shared/public/xen.ts';
import { ioRead, ioWrite } from '../../domu/block/blkdev.ts';
import { probeIde, type IdeDisk } from '../../domu/ide/disk.ts';
import type { GuestTask, IdeGuestModule, IdeMessage } from './ide-protocol.ts';
import { runPortFuzz } from './ide-fuzz.ts';
import { runScript } from './ide-scripts.ts';
import { digest, makeBuffer, rng, runWorkload } from './ide-workload.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run(); // the kernel's idle loop: events (the disk's interrupt) are taken here
  const { channel, nonce } = env.module as IdeGuestModule;
  const ch = new BroadcastChannel(channel);
  const post = (m: IdeMessage) => ch.postMessage(m);
  let disk: IdeDisk | null = null;
  const need = () => { if (disk === null) throw new Error('no disk probed'); return disk; };

  const run = async (task: GuestTask): Promise<unknown> => {
    switch (task.do) {
      case 'probe':
        disk = await probeIde(k, { mode: task.mode, pio32: task.pio32, lba48: task.lba48 });
        return { sectors: disk.sectors, path: disk.path, features: disk.features, id: disk.id };
      case 'workload':
        return runWorkload(k, need(), task.spec);
      case 'io': {
        const d = need();
        const buf = makeBuffer(k, Math.ceil((task.sectors * 512) / PAGE_SIZE), task.scatter ?? false);
        const bytes = task.sectors * 512;
        const data = new Uint8Array(bytes);
        const r = rng(task.seed ?? 1);
        for (let i = 0; i < bytes; i++) data[i] = r();
        const trapsBefore = d.stats().traps;
        if (task.op === 'write') {
          ioWrite(buf, 0, data);
          await d.write(task.sector, task.sectors, buf);
        } else {
          await d.read(task.sector, task.sectors, buf);
          ioRead(buf, 0, data);
        }
        const traps = d.stats().traps - trapsBefore;
        for (const g of buf.gfns) k.pages.release(g);
        return { traps, digest: digest(data), gfns: buf.gfns };
      }
      case 'flush':
        await need().flush();
        return null;
      case 'discard':
        try {
          await need().discard(task.sector, task.sectors);
          return { ok: true };
        } catch (e) {
          return { ok: false, error: (e as Error).message };
        }
      case 'regs':
        return runScript(k, need(), task.script);
      case 'mmio': {
        k.cpu.mmio_write(task.base + 4, 4, 0x12345678);
        const word = k.cpu.mmio_read(task.base + 4, 4);
        const byte = k.cpu.mmio_read(task.base + 4, 1);
        let fault = '';
        try { k.cpu.mmio_read(task.base + 0x10000, 4); } catch (e) { fault = (e as Error).message; }
        return { word, byte, fault };
      }
      case 'privileged-calls': {
        // A DomU has no business with the device-model calls: each must say EPERM and change nothing.
        const h = k.hypercall;
        const hole = k.pages.allocHole();
        return {
          foreign: h.memory_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign, 0, [0], [hole], new Int32Array(1), 1),
          acquire: h.memory_acquire_resource(0, XENMEM_resource_ioreq_server, 0, 1, hole),
          create: h.dm_op_create_ioreq_server(0, 0),
          irq: h.dm_op_set_isa_irq_level(0, 14, 1),
          remove: h.memory_remove_from_physmap(hole),
          selfTarget: h.dm_op_create_ioreq_server(DOMID_SELF, 0),
          present: k.memory.present(hole) ? 1 : 0,
        };
      }
      case 'port':
        k.cpu.outb(task.port, 0); // an access nobody emulates: a DomU has no I/O privilege
        return 'still here';
      case 'stats':
        return need().stats();
      case 'port-fuzz':
        need(); // the disk was probed: its channel owns IRQ 14
        return runPortFuzz(k, task.case);
      case 'close':
        await disk?.close();
        disk = null;
        return null;
    }
  };

  ch.onmessage = (ev) => {
    const m = (ev as { data: IdeMessage }).data;
    if (m.kind !== 'task' || m.nonce !== nonce) return;
    run(m.task).then(
      (result) => post({ kind: 'task-done', nonce, id: m.id, result }),
      (e: Error) => post({ kind: 'task-failed', nonce, id: m.id, error: e.stack ?? e.message }),
    );
  };
  post({ kind: 'guest-ready', nonce });
  await idle;
}
