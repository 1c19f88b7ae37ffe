/*
 * The toolstack daemon's network verbs: network-list, network-attach, network-detach (xl's), and
 * capture (what `tcpdump -i vifN.M -w FILE` is on a Xen Dom0).
 *
 * Xen: tools/xl/xl_nic.c (main_networklist, main_networkattach, main_networkdetach) over
 * libxl_nic.c; the device work is ./nic.ts. A capture runs in Dom0 beside netback and the bridge
 * (dom0/services/bridge/capture.ts), writes the file itself, and ends when `count` frames are in
 * or a capture-stop names the same port; the reply is the number of frames written.
 */
import type { Dom0 } from '../dom0.ts';
import { startCapture, type Capture } from '../services/bridge/capture.ts';
import { networkAttach, networkDetach, networkList } from './nic.ts';
import type { XlVerb } from './protocol.ts';

type NetworkVerb = Extract<XlVerb, { verb: 'network-list' | 'network-attach' | 'network-detach' | 'capture' | 'capture-stop' }>;

const captures = new Map<string, { cap: Capture; done: (frames: number) => void }>();

export function isNetworkVerb(r: { verb: string }): r is NetworkVerb {
  return ['network-list', 'network-attach', 'network-detach', 'capture', 'capture-stop'].includes(r.verb);
}

export async function runNetworkVerb(dom0: Dom0, resolve: (domain: string) => Promise<number>, r: NetworkVerb): Promise<unknown> {
  switch (r.verb) {
    case 'network-list': return networkList(dom0.xs, await resolve(r.domain));
    case 'network-attach': return networkAttach(dom0.toolstack, dom0.xs, await resolve(r.domain), r.spec);
    case 'network-detach': return networkDetach(dom0.toolstack, dom0.xs, await resolve(r.domain), r.device);
    case 'capture': {
      if (captures.has(r.port)) throw new Error(`a capture on ${r.port} is running already`);
      return new Promise<number>((done, fail) => {
        try {
          const finish = () => {
            const c = captures.get(r.port);
            captures.delete(r.port);
            done(c?.cap.stop() ?? 0);
          };
          const cap = startCapture(r.port, r.file, r.count ?? 0, () => queueMicrotask(finish));
          captures.set(r.port, { cap, done: () => finish() });
        } catch (e) {
          fail(e);
        }
      });
    }
    case 'capture-stop': {
      const c = captures.get(r.port);
      if (c === undefined) return 0;
      c.done(0);
      return 1;
    }
  }
}
