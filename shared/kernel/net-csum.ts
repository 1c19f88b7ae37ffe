/*
 * Checksum offload across a vif: what a frame's "ip_summed" state means, and the two helpers
 * both ends of the PV path need (where the L4 checksum of a partially checksummed frame lives,
 * and how to fill it in).
 *
 * Linux: include/linux/skbuff.h (CHECKSUM_NONE 0, CHECKSUM_UNNECESSARY 1, CHECKSUM_PARTIAL 3;
 * csum_start, csum_offset), net/core/skbuff.c skb_checksum_setup_ipv4 (find the transport header
 * of an IPv4 TCP or UDP frame; a fragment or another protocol is -EPROTO), net/core/dev.c
 * skb_checksum_help (sum from csum_start to the end, fold, store at csum_start + csum_offset; a
 * result of 0 is sent as 0xffff). Xen: netif.h's NETTXF_csum_blank / NETTXF_data_validated and
 * NETRXF_csum_blank / NETRXF_data_validated carry these states over the rings.
 *
 * Why a PV guest offloads: Linux's netfront advertises NETIF_F_IP_CSUM, so its UDP stack puts only
 * the pseudo-header sum in the checksum field (CHECKSUM_PARTIAL) and sends the frame with
 * csum_blank | data_validated; netback keeps the state on the skb, and when the frame goes to
 * another vif it is passed on the same way, so the receiving guest's stack does not verify
 * either: between two guests of one host, a UDP checksum is never computed at all. It is computed
 * (in Dom0, skb_checksum_help) only when the frame leaves by a port that cannot take a partial
 * checksum: an uplink, an emulated NIC's device model, a frontend that wrote
 * feature-no-csum-offload = 1.
 *
 * Not here: GSO, IPv6 (ringvisor's stack has neither), TCP's own use (no TCP).
 */
import { ETH_HDR, ETHERTYPE_IPV4, IP_FRAG, IP_HDR, IP_PROTO, IP_VHL, IPPROTO_UDP, UDP_CSUM, csumPartial } from '../public/net/inet.ts';

/** skb->ip_summed: the frame's L4 checksum is not known to be good (verify it in software). */
export const CHECKSUM_NONE = 0;
/** The frame's checksum was verified (or need not be): the receiver skips it. */
export const CHECKSUM_UNNECESSARY = 1;
/** The checksum field holds only the pseudo-header sum; whoever puts the frame on a wire completes it. */
export const CHECKSUM_PARTIAL = 3;
export type CsumState = typeof CHECKSUM_NONE | typeof CHECKSUM_UNNECESSARY | typeof CHECKSUM_PARTIAL;

const IPPROTO_TCP = 6;
/** offsetof(struct tcphdr, check). */
const TCP_CSUM = 16;

/**
 * skb_checksum_setup_ipv4 on the first `headLen` bytes of an Ethernet frame: the offset of its
 * transport header (csum_start), or -1 if a partial checksum cannot be set up on it (not IPv4, a
 * fragment, not TCP or UDP, or the checksum field is not within the first `headLen` bytes).
 */
export function partialCsumStart(f: Uint8Array, headLen: number): number {
  if (headLen < ETH_HDR + IP_HDR || f[12] !== ETHERTYPE_IPV4 >> 8 || f[13] !== (ETHERTYPE_IPV4 & 0xff)) return -1;
  const vhl = f[ETH_HDR + IP_VHL];
  const ihl = (vhl & 15) * 4;
  if (vhl >> 4 !== 4 || ihl < IP_HDR) return -1;
  if ((((f[ETH_HDR + IP_FRAG] << 8) | f[ETH_HDR + IP_FRAG + 1]) & 0x3fff) !== 0) return -1; // MF or an offset
  const start = ETH_HDR + ihl;
  const off = l4CsumOffset(f[ETH_HDR + IP_PROTO]);
  return off < 0 || start + off + 2 > headLen ? -1 : start;
}

/** csum_offset for a transport protocol: where its checksum sits in its header, or -1. */
export function l4CsumOffset(proto: number): number {
  return proto === IPPROTO_UDP ? UDP_CSUM : proto === IPPROTO_TCP ? TCP_CSUM : -1;
}

/**
 * The 16-bit one's-complement sum of `len` bytes at `off`, added to `sum`, for a piece that starts
 * at an odd byte of the whole sum (`odd`): its bytes then pair the other way, so its sum is
 * byte-swapped (RFC 1071 §2(B)). Returns a sum below 2^17, not folded or complemented.
 */
export function csumPiece(b: Uint8Array, off: number, len: number, odd: boolean, sum: number): number {
  let s = csumPartial(b, off, len);
  s = (s & 0xffff) + (s >>> 16);
  if (odd) s = ((s & 0xff) << 8) | (s >>> 8);
  sum += s;
  return (sum & 0xffff) + (sum >>> 16);
}

/** Fold a sum to 16 bits, complement it, and turn 0 into 0xffff (CSUM_MANGLED_0), as skb_checksum_help stores it. */
export function csumStoreValue(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return (~sum & 0xffff) || 0xffff;
}

/**
 * skb_checksum_help on a flat frame of `len` bytes at `base` in `b` (a capture's copy, a linear
 * buffer): sum from csum_start to the end, over the pseudo-header sum already in the field.
 */
export function completeCsumFlat(b: Uint8Array, base: number, len: number, start: number, offset: number): void {
  const v = csumStoreValue(csumPiece(b, base + start, len - start, false, 0));
  b[base + start + offset] = v >>> 8;
  b[base + start + offset + 1] = v;
}
