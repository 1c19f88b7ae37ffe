// A test kernel that does one thing, named in its boot module, and reports on the hypervisor console.
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { ACPI_PM1A_CNT, ACPI_SLP_EN, RESET_CONTROL } from '../../shared/public/platform.ts';
import { PageFault } from '../../shared/public/memory.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../shared/public/xen.ts';

export interface ProbeModule {
  action:
    | 'return' | 'throw' | 'acpi-off' | 'reset' | 'port80' | 'cli-hlt' | 'domctl' | 'spin' | 'hold-resources'
    | 'page-fault-caught' | 'page-fault' | 'idle';
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const say = (s: string) => k.log(s);
  const { action } = env.module as ProbeModule;
  switch (action) {
    case 'return':
      say('returning from main');
      return;
    case 'throw':
      throw new Error('kernel BUG at probe.ts: deliberate');
    case 'acpi-off':
      say('writing S5 to the ACPI PM1a control register');
      k.cpu.outw(ACPI_PM1A_CNT, ACPI_SLP_EN);
      say('still here after poweroff?!');
      return;
    case 'reset':
      k.cpu.outb(RESET_CONTROL, 0x06);
      return;
    case 'port80':
      k.cpu.outb(0x80, 0x42);
      say('still here after a port write?!');
      return;
    case 'cli-hlt':
      k.cpu.cli_hlt();
      return;
    case 'domctl': {
      say(`pausedomain(0) = ${await k.hypercall.domctl_pausedomain(0)}`);
      say(`destroydomain(0) = ${await k.hypercall.domctl_destroydomain(0)}`);
      say(`alloc_unbound(dom 0) = ${k.hypercall.evtchn_alloc_unbound(0, DOMID_SELF)}`);
      await k.events.run();
      return;
    }
    case 'spin':
      say('spinning');
      for (;;) {
        k.hypercall.sched_yield();
        await new Promise(setImmediate);
      }
    case 'hold-resources': {
      // Take a little of everything a domain can hold, then idle until destroyed.
      for (let i = 0; i < 3; i++) k.hypercall.evtchn_alloc_unbound(DOMID_SELF, 0);
      for (let i = 0; i < 10; i++) k.gnttab.grant(0, k.pages.alloc(), i % 2 === 0);
      say('holding');
      await k.events.run();
      return;
    }
    case 'page-fault-caught': {
      const hole = k.si.nr_pages + 5000;
      try {
        k.memory.read(hole * PAGE_SIZE + 12, new Uint8Array(4));
        say('no fault?!');
      } catch (e) {
        say(e instanceof PageFault ? `caught: ${e.message}` : `other error: ${e}`);
      }
      return;
    }
    case 'page-fault':
      k.memory.writeU32((k.si.nr_pages + 5000) * PAGE_SIZE, 1);
      return;
    case 'idle':
      say('idle');
      await k.events.run();
      return;
  }
}
