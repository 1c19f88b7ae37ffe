/*
 * Scenario `vcpu-hotplug` (also the last step of `cpu-share`): a vCPU comes online and goes
 * offline under a running workload, with the XenStore nodes and the runstate at each step.
 *
 * Xen: `xl vcpu-set` (libxl__set_vcpuonline_xenstore) writes the guest's cpu/N/availability; the
 * guest kernel (Linux drivers/xen/cpu_hotplug.c; here shared/kernel/cpu-hotplug.ts) brings the
 * vCPU up with VCPUOP_up, or asks it to stop and waits for its VCPUOP_down; the hypervisor's
 * runstate says offline / running (hypervisor/vcpu-op.ts, hypervisor/schedule.ts). The guest is
 * the standard DomU kernel running cpu-burn, whose work units every online vCPU shares
 * (domu/workloads/cpu-smp.ts): the per-vCPU counts show who does the work. A full host (Dom0,
 * xenstored, the xl daemon), two pCPUs, about 10 seconds.
 */
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost } from '../../cli/host.ts';
import { formatVcpuList } from '../../cli/sched.ts';
import { xsOpen } from '../../dom0/lib/libxenstore.ts';
import type { CreateResult } from '../../dom0/toolstack/protocol.ts';
import type { VcpuRow } from '../../dom0/toolstack/sched.ts';
import { domainPath } from '../../shared/public/io/xenbus.ts';
import { xsCpuAvailability } from '../../shared/public/vcpu.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from '../../shared/wait.ts';

const CONFIG = `# vcpu-hotplug: one vCPU online at boot, room for two
name = "smp"
type = "pv"
memory = 32
vcpus = 1
maxvcpus = 2
workload = "cpu-burn"
`;

export async function vcpuHotplug(say: (line: string) => void, opts: { wait: WaitPolicy } = { wait: DEFAULT_WAIT_POLICY }): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'rv-hotplug-'));
  const rh = await startHost({ runDir: join(work, 'run'), memoryMiB: 96, wait: opts.wait, log: () => {}, pcpus: 2 });
  const xl = await XlClient.open(rh.runDir);
  const xs = await xsOpen(rh.xenstoredSocket);
  try {
    mkdirSync(join(work, 'smp'));
    writeFileSync(join(work, 'smp', 'vm.cfg'), CONFIG);
    const vm = await xl.call<CreateResult>({ verb: 'create', path: join(work, 'smp') });
    const consoleText = () => (existsSync(vm.consoleLog) ? readFileSync(vm.consoleLog, 'utf8') : '');
    const consoleLine = async (re: RegExp, after = 0): Promise<string> => {
      for (;;) {
        const hit = consoleText().slice(after).match(re);
        if (hit) return hit[0];
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const node = (v: number) => `${domainPath(vm.domid)}/${xsCpuAvailability(v)}`;
    const nodes = async () => {
      for (const v of [0, 1]) say(`    ${node(v)} = ${await xs.read(node(v))}`);
    };
    const vcpuList = async (): Promise<VcpuRow> => {
      const rows = await xl.call<VcpuRow[]>({ verb: 'sched', op: { op: 'vcpu-list', domains: ['smp'] } });
      for (const l of formatVcpuList(rows, 2).trimEnd().split('\n')) say(`    ${l}`);
      return rows[1]!;
    };
    const describe = (v: VcpuRow) => `  vCPU 1: runstate ${v.state}, ${v.cpu < 0 ? 'no pCPU' : `on pCPU ${v.cpu}`}, ${(v.time_ms / 1000).toFixed(1)} s of running time.`;
    const progress = async () => {
      const from = consoleText().length;
      say(`    guest: ${(await consoleLine(/cpu-burn: \d+ s, [^\n]*/, from))}`);
    };

    say('vCPU hot-plug. A guest with vcpus = 1 and maxvcpus = 2 (xl.cfg) runs cpu-burn, whose work units every');
    say('online vCPU shares. The hypervisor built both vCPUs; vCPU 1 is down (VPF_down) and the toolstack wrote');
    say('each vCPU\'s availability node in the guest\'s XenStore home:');
    await consoleLine(/cpu-burn: 1 s, /);
    await nodes();
    say(describe(await vcpuList()));
    await progress();

    say('ringvisor vcpu-set smp 2 (xl vcpu-set): the toolstack only rewrites the nodes. The guest kernel watches');
    say('`cpu` (Linux: drivers/xen/cpu_hotplug.c), reads the node that changed, and calls VCPUOP_up on vCPU 1,');
    say('which starts at the kernel\'s secondary entry and takes its share of the units.');
    const before = consoleText().length;
    await xl.call({ verb: 'sched', op: { op: 'vcpu-set', domain: 'smp', count: '2' } });
    await nodes();
    say(`    guest: ${await consoleLine(/xen cpu hotplug: [^\n]*now online/, before)}`);
    await progress();
    say(describe(await vcpuList()));

    say('ringvisor vcpu-set smp 1: vCPU 1 is asked to stop. It finishes the unit it holds, marks itself dead and');
    say('calls VCPUOP_down on itself; vCPU 0 polls VCPUOP_is_up until it is down (Linux: xen_pv_cpu_die). The');
    say('units it did stay done; vCPU 0 does the rest.');
    const before2 = consoleText().length;
    await xl.call({ verb: 'sched', op: { op: 'vcpu-set', domain: 'smp', count: '1' } });
    await nodes();
    say(`    guest: ${await consoleLine(/xen cpu hotplug: [^\n]*now offline/, before2)}`);
    const down = await vcpuList();
    say(describe(down));
    await progress();
    const later = (await xl.call<VcpuRow[]>({ verb: 'sched', op: { op: 'vcpu-list', domains: ['smp'] } }))[1]!;
    say(`  A second later: ${describe(later).trim()} Offline, it holds no pCPU and runs nothing, so its time stands still.`);
    say('  Read: dom0/toolstack/vcpu-set.ts, shared/kernel/cpu-hotplug.ts, hypervisor/vcpu-op.ts, domu/workloads/cpu-smp.ts');
    await xl.call({ verb: 'destroy', domain: 'smp' });
  } finally {
    xs.close();
    xl.close();
    await rh.close();
    rmSync(work, { recursive: true, force: true });
  }
}
