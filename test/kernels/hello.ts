import type { KernelEnv } from '../../shared/public/hypercall.ts';
export async function main(env: KernelEnv) {
  env.hypercall.console_io_write(`hello from vcpu ${env.vcpu_id}, reservation ${env.hypercall.memory_current_reservation()}`);
  const r = await env.hypercall.domctl_pausedomain(0);
  env.hypercall.console_io_write(`domctl from domU -> ${r}`);
}
