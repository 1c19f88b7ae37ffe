/*
 * Completing a partial checksum on a Dom0 packet, before it goes where a partial one means
 * nothing: out of an uplink, into an emulated NIC, to a frontend without checksum offload.
 *
 * Linux: net/core/dev.c skb_checksum_help, called from validate_xmit_skb when the device a frame
 * is sent to lacks NETIF_F_IP_CSUM (a tap without a vnet header behind QEMU's e1000, a vif whose
 * frontend wrote feature-no-csum-offload = 1). The sum runs from csum_start over the linear part
 * and then the frags (netback's read-only mappings of the sender's pages) and is stored in the
 * linear part, which is Dom0's own copy: the checksum field is within its first 128 bytes
 * (netback checked that when it set the state up). Afterwards the frame is CHECKSUM_NONE, an
 * ordinary frame, whoever else it is flooded to. The states: shared/kernel/net-csum.ts.
 */
import { CHECKSUM_NONE, CHECKSUM_PARTIAL, csumPiece, csumStoreValue } from '../../shared/kernel/net-csum.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import type { Packet } from './packet.ts';

/** skb_checksum_help: fill in the L4 checksum of a CHECKSUM_PARTIAL frame (nothing to do otherwise). */
export function checksumHelp(p: Packet): void {
  if (p.csum !== CHECKSUM_PARTIAL) return;
  let sum = 0;
  let pos = 0; // byte position in the frame of the piece being summed
  for (let i = 0; pos < p.linLen; i++) {
    const n = Math.min(PAGE_SIZE, p.linLen - pos);
    const from = Math.max(p.csumStart, pos);
    if (from < pos + n) sum = csumPiece(p.pages[i], from - pos, pos + n - from, ((from - p.csumStart) & 1) === 1, sum);
    pos += n;
  }
  for (let f = 0; f < p.nFrags; f++) {
    const v = p.fragView[f];
    const n = p.fragLen[f];
    // A frag with no view reads as zeros (Packet.copyOut): it adds nothing to the sum.
    if (v !== null) sum = csumPiece(v, p.fragOff[f], n, ((pos - p.csumStart) & 1) === 1, sum);
    pos += n;
  }
  const at = p.csumStart + p.csumOffset;
  const v = csumStoreValue(sum);
  const page = p.pages[at >> 12];
  page[at & (PAGE_SIZE - 1)] = v >>> 8;
  page[(at + 1) & (PAGE_SIZE - 1)] = v; // the field never straddles a page: netback put it in the first 128 bytes
  p.csum = CHECKSUM_NONE;
}
