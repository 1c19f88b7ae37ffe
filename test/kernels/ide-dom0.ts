// Dom0 for the emulated-disk tests: starts and stops one IDE device model per guest on request,
// as libxl starts QEMU for an HVM guest before unpausing it and kills it at destroy.
import { BroadcastChannel } from 'node:worker_threads';
import { startIdeModel, type IdeModel } from '../../dom0/device-models/ide/piix.ts';
import { IoreqServer } from '../../dom0/device-models/xen-hvm.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import type { IdeDom0Module, IdeMessage } from './ide-protocol.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const { channel } = env.module as IdeDom0Module;
  const ch = new BroadcastChannel(channel);
  const post = (m: IdeMessage) => ch.postMessage(m);
  const models = new Map<number, IdeModel>();
  ch.onmessage = (ev) => {
    const m = (ev as { data: IdeMessage }).data;
    if (m.kind === 'start-model') {
      const { spec } = m;
      try {
        const model = startIdeModel(k, {
          domid: spec.domid, image: spec.image, vcpus: spec.vcpus, readOnly: spec.readOnly, discard: spec.discard,
          mapcacheBuckets: spec.mapcacheBuckets,
        });
        models.set(spec.domid, model);
        if (spec.mmioEcho) startMmioEcho(k, spec.domid, spec.vcpus, spec.mmioEcho, model);
        post({ kind: 'model-started', domid: spec.domid, sectors: model.sectors });
      } catch (e) {
        post({ kind: 'model-failed', domid: spec.domid, error: (e as Error).message });
      }
    } else if (m.kind === 'stop-model') {
      const model = models.get(m.domid);
      if (!model) return;
      models.delete(m.domid);
      model.stop();
      post({ kind: 'model-stopped', domid: m.domid, stats: JSON.parse(JSON.stringify(model.stats())) });
    } else if (m.kind === 'model-stats') {
      const model = models.get(m.domid);
      if (model) post({ kind: 'model-stats-reply', domid: m.domid, stats: JSON.parse(JSON.stringify(model.stats())) });
    }
  };
  post({ kind: 'dom0-ready' });
  await k.events.run();
}

/**
 * A second ioreq server for the same guest with one MMIO "echo" device: a 32-bit register file
 * the guest writes and reads back, XORed with 0xA5A5A5A5 on the way out so a read proves the
 * model answered. Stopped with the IDE model.
 */
function startMmioEcho(k: Kernel, domid: number, vcpus: number, range: { base: number; bytes: number }, model: IdeModel): void {
  const regs = new Uint32Array(range.bytes / 4);
  const server = new IoreqServer(k, domid, vcpus);
  server.mapMmio(range.base, range.bytes, {
    read: (off, size) => ((regs[off >>> 2] ^ 0xa5a5a5a5) >>> 0) & (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1),
    write: (off, _size, v) => { regs[off >>> 2] = v; },
  });
  server.enable();
  const stop = model.stop;
  (model as { stop: () => void }).stop = () => { server.close(); stop(); };
}
