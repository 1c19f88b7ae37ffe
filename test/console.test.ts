/*
 * The PV console end to end: a DomU on its own thread writes to its console ring (hvc_xen's
 * part, shared/kernel/console.ts), xenconsoled in Dom0 appends it to the log file the toolstack
 * named, and input typed at the console reaches the guest (which echoes it back).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootDom0 } from '../scenarios/xenstore/harness.ts';
import { openInbox } from './helpers/channel.ts';
import type { ConsoleGuestModule } from './kernels/console-guest.ts';

const GUEST = new URL('./kernels/console-guest.ts', import.meta.url).href;

type Msg = { kind: 'written'; bytes: number } | { kind: 'echoed'; bytes: number };

test('what a guest writes to its console is exactly what its log file holds, and typed input reaches it', async (t) => {
  const h = await bootDom0();
  const inbox = openInbox<Msg>();
  try {
    // 10 KiB: five times the 2 KiB out ring, so the guest waits for room and the indices wrap;
    // every byte value, so nothing is translated on the way.
    const data = new Uint8Array(10 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
    const logPath = join(h.runDir, 'vms', 'cons', 'console.log');
    const module: ConsoleGuestModule = { channel: inbox.name, data };
    const domid = await h.createGuest({ name: 'cons', vcpus: 1, memoryKiB: 2048, kernel: GUEST, module }, { consoleLog: logPath });

    await inbox.next('written');
    t.deepEqual(new Uint8Array(readFileSync(logPath)), data);

    const typed = new TextEncoder().encode('hello, console\n');
    await h.consoleInput(domid, typed);
    await inbox.next('echoed', (m) => m.bytes === typed.length);
    const expected = new Uint8Array(data.length + typed.length);
    expected.set(data);
    expected.set(typed, data.length);
    t.deepEqual(new Uint8Array(readFileSync(logPath)), expected);

    await h.destroyGuest(domid);
  } finally {
    inbox.close();
    await h.close();
  }
});
