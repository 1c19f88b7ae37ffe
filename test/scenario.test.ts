/*
 * `npm start`: the default scenario runs from a clean checkout (it copies the example VMs to a
 * temporary directory and creates their images itself), narrates the boot, the PV disk's
 * XenStore handshake, both guests' consoles, and ends with a summary whose figures come from this
 * run. Checked for its key lines and for leaving the repository as it was, not for its numbers.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_SCENARIO, SCENARIOS } from '../scenarios/registry.ts';
import { pvVsEmulated } from '../scenarios/pv-vs-emulated.ts';
import { cpuShare } from '../scenarios/cpu-share.ts';
import { tour } from '../scenarios/tour.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('the default scenario boots both example VMs, narrates the PV handshake and both paths, and summarises', async (t) => {
  t.is(DEFAULT_SCENARIO, 'pv-vs-emulated');
  t.is(SCENARIOS.find((s) => s.name === DEFAULT_SCENARIO)?.run, pvVsEmulated);
  const image = new URL('../examples/vms/guest-pv/disk.img', import.meta.url);
  const hadImage = existsSync(image);
  const lines: string[] = [];
  await pvVsEmulated((l) => lines.push(l));
  const text = lines.join('\n');
  t.regex(text, /^1\. The host is up/m);
  t.regex(text, /^3\. ringvisor create guest-pv/m);
  t.regex(text, /^4\. ringvisor create guest-hvm/m);
  for (const state of ['InitWait', 'Connected']) t.regex(text, new RegExp(`xenstore \\| backend .*/backend/vbd/\\d+/51712: ${state}`));
  // A watch event names the node, not the value (as in Xen): on a loaded machine the narrator may
  // read Initialised after blkfront has already moved on, so either early state shows the handshake.
  t.regex(text, /xenstore \| frontend .*\/device\/vbd\/51712: Initialis(ed|ing)/);
  t.regex(text, /guest-pv \| blkfront: xvda connected/);
  t.regex(text, /guest-hvm \| ata_piix: hda: /);
  t.is(text.match(/OK, every byte read back as written/g)?.length, 2);
  t.regex(text, /hypervisor \| domain \d+ stopped \(poweroff\) by SCHEDOP_shutdown/, 'the PV guest asks Xen to stop it');
  t.regex(text, /hypervisor \| domain \d+ stopped \(poweroff\) by outw port 0x604 .*ACPI soft-off/, 'the HVM guest writes ACPI\'s register');
  t.regex(text, /dom0 \| xl: domain \d+ \(guest-pv\) has shut down, reason poweroff; on_poweroff = destroy/);
  t.regex(text, /^Summary: /m);
  t.regex(text, /^ {2}read MB\/s +\d+\.\d +\d+\.\d/m);
  t.regex(text, /^ {2}data check +every byte OK +every byte OK/m);
  t.regex(text, /^ {2}traps per request +0\.000 +(1[0-9])\.\d{3}/m, 'a dozen traps per emulated request, none for PV');
  t.is(existsSync(image), hadImage, 'the scenario works on copies: the repository is left as it was');
});

test('npm start -- --list names the scenarios and marks the default', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scenarios/main.ts', '--list'], { cwd: ROOT });
  t.regex(stdout, /^pv-vs-emulated .*\(default\)$/m);
  t.regex(stdout, /^ring-tour /m);
  t.regex(stdout, /^tour /m);
});

test('npm start -- tour: the opening concepts in order on a live host, each with what to read next', async (t) => {
  const lines: string[] = [];
  await tour((l) => lines.push(l));
  const text = lines.join('\n');
  const at = (re: RegExp) => { const m = re.exec(text); t.truthy(m, `missing ${re}`); return m?.index ?? -1; };
  const order = [
    at(/^1\. The hypervisor is below everything else \(a Type-1/m),
    at(/^2\. Dom0 and DomU/m),
    at(/^3\. A hypercall and a trapped privileged instruction/m),
    at(/^4\. A VM is files/m),
    at(/^Done in [\d.]+ s\. Next:/m),
  ];
  t.deepEqual([...order].sort((a, b) => a - b), order, 'in the lecture\'s order');
  t.regex(text, /If ringvisor were hosted \(Type-2/);
  t.regex(text, /Domain-0 +id 0 .*privileged/);
  t.regex(text, /guest-pv +id \d+/);
  t.regex(text, /hypercall: guest-pv's kernel called HYPERVISOR_event_channel_op\(EVTCHNOP_send, port \d+\)/, 'taken from the trace');
  t.regex(text, /trap: guest-hvm's IDE driver executed (OUT|IN) on port 0x1f[0-7]/, 'an IDE register, trapped');
  t.regex(text, /All of guest-pv's hypercalls, as the one entry recorded them: [1-9]\d*, most often\n.*event_channel_op\(EVTCHNOP_send\) ×\d+/, 'TRC_PV_HYPERCALL');
  t.regex(text, /the hypervisor's control thread took [1-9]\d* timer ticks \(csched_tick/, 'the control thread\'s track');
  const web = [...text.matchAll(/web[12]: name (web[12]), uuid ([0-9a-f-]{36}), vif ([0-9a-f:]{17})/g)];
  t.is(web.length, 2);
  t.deepEqual(web.map((m) => m[1]), ['web1', 'web2']);
  t.not(web[0]![2], web[1]![2], 'a clone gets its own UUID');
  t.not(web[0]![3], web[1]![3], 'and its own MAC');
  t.regex(text, /ringvisor create web1 → domain \d+; its disk image appeared beside its config: disk\.img/);
  t.is(text.match(/^ {3}Read next: /gm)?.length, 4, 'every concept says what to read');
  for (const next of ['pv-vs-emulated', 'ring-tour', '--trace', 'ringvisor top', 'host --http', 'npm run docs']) t.true(text.includes(next), next);
});

test('cpu-share: weights, a cap, BOOST and a pin, narrated second by second', async (t) => {
  const lines: string[] = [];
  await cpuShare((l) => lines.push(l));
  const text = lines.join('\n');
  t.regex(text, /weights 256 \/ 256 \/ 512/);
  t.regex(text, /xl sched-credit -d gamma -c 20/);
  t.regex(text, /^\s+\d+s\s+gamma\s+512\s+20\s/m, 'the table shows the cap');
  const boost = /with BOOST\s*: (\d+) wake-ups.*; (\d+) wake-ups at BOOST, (\d+) early/.exec(text);
  const noBoost = /without BOOST: (\d+) wake-ups.*; (\d+) wake-ups at BOOST, (\d+) early/.exec(text);
  t.truthy(boost && noBoost);
  t.true(Number(boost![2]) > 0, 'with BOOST, the waker woke boosted');
  t.is(Number(noBoost![2]), 0, 'without, never');
  t.is(boost![3], '0', 'and no timer fired early');
  t.is(noBoost![3], '0');
  // gamma, pinned to a pCPU of its own, runs all the time (its runstate; the host OS may be slower).
  const pinned = [...text.matchAll(/^\s+\d+s\s+gamma\s+\d+\s+\d+\s+1\s+(\d+)%/gm)].map((m) => Number(m[1]));
  t.true(pinned.length >= 1 && pinned.every((s) => s >= 90), `gamma on pCPU 1: ${pinned.join(', ')}%`);
  // vCPU hot-plug: the node, the guest's word for it, the runstate, at each step.
  const hp = text.slice(text.indexOf('vCPU hot-plug.'));
  t.regex(hp, /cpu\/1\/availability = offline\n[^]*vCPU 1: runstate offline, no pCPU, 0\.0 s of running time/);
  t.regex(hp, /ringvisor vcpu-set smp 2[^]*cpu\/1\/availability = online\n\s+guest: xen cpu hotplug: cpu\/1\/availability = online: VCPUOP_up; CPU 1 is now online/);
  t.regex(hp, /CPU 1 is now online\n\s+guest: cpu-burn: \d+ s, \d+ units in the last second; by vCPU \d+ \/ [1-9]\d*; online: 0, 1/, 'vCPU 1 does units');
  t.regex(hp, /ringvisor vcpu-set smp 1[^]*cpu\/1\/availability = offline\n\s+guest: xen cpu hotplug: [^\n]*CPU 1 is now offline/);
  const downs = [...hp.matchAll(/vCPU 1: runstate offline, no pCPU, ([0-9.]+) s of running time/g)].map((m) => m[1]);
  t.is(downs.length, 3, 'offline at boot, after going down, and a second later');
  t.is(downs[1], downs[2], 'no running time while offline');
  t.regex(hp, /vCPU 1: runstate (running|runnable|blocked), on pCPU [01]/, 'online: on a pCPU');
});
