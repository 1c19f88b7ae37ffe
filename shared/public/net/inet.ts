/*
 * The Internet headers ringvisor's guests and Dom0 read and write: Ethernet II, ARP, IPv4, ICMP
 * echo and UDP, with their offsets declared once, and the Internet checksum.
 *
 * Not a Xen interface: these are the frames that cross a vif. RFC 894 (Ethernet II framing),
 * RFC 826 (ARP), RFC 791 (IPv4), RFC 792 (ICMP), RFC 768 (UDP), RFC 1071 (the checksum). All
 * multi-byte fields are big-endian ("network order"), so they are read with DataView's default
 * byte order, never through defineStruct (whose layouts are the little-endian Xen ABI).
 *
 *   Ethernet  @0 dst[6]  @6 src[6]  @12 ethertype u16                       (14 bytes, no FCS)
 *   ARP       @0 htype u16 (1)  @2 ptype u16 (0x0800)  @4 hlen u8 (6)  @5 plen u8 (4)
 *             @6 oper u16 (1 request, 2 reply)  @8 sha[6]  @14 spa[4]  @18 tha[6]  @24 tpa[4]  (28)
 *   IPv4      @0 version 4 | ihl 5   @1 tos   @2 total length u16   @4 id u16
 *             @6 flags|fragment offset u16 (DF = 0x4000)   @8 ttl   @9 protocol (1 ICMP, 17 UDP)
 *             @10 header checksum u16   @12 src[4]   @16 dst[4]                  (20, no options)
 *   ICMP echo @0 type (8 request, 0 reply)  @1 code 0  @2 checksum u16  @4 id u16  @6 seq u16  (8 + data)
 *   UDP       @0 src port u16  @2 dst port u16  @4 length u16  @6 checksum u16 (8 + data)
 */

export const ETH_ALEN = 6;
export const ETH_HDR = 14;
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETH_BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export const ARP_LEN = 28;
export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OPER = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export const IP_HDR = 20;
export const IP_VHL = 0;
export const IP_TOS = 1;
export const IP_LEN = 2;
export const IP_ID = 4;
export const IP_FRAG = 6;
export const IP_TTL = 8;
export const IP_PROTO = 9;
export const IP_CSUM = 10;
export const IP_SRC = 12;
export const IP_DST = 16;
export const IP_DF = 0x4000;
export const IPPROTO_ICMP = 1;
export const IPPROTO_UDP = 17;

export const ICMP_HDR = 8;
export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CSUM = 2;
export const ICMP_ID = 4;
export const ICMP_SEQ = 6;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

export const UDP_HDR = 8;
export const UDP_SPORT = 0;
export const UDP_DPORT = 2;
export const UDP_LEN = 4;
export const UDP_CSUM = 6;

/** All headers of a UDP datagram in one Ethernet frame: 14 + 20 + 8. */
export const UDP_FRAME_HDR = ETH_HDR + IP_HDR + UDP_HDR;

/**
 * RFC 1071: the 16-bit one's-complement sum of `len` bytes at `off` (an odd byte is padded with
 * zero), added to `sum`. Not folded: call fold() on the total.
 */
export function csumPartial(b: Uint8Array, off: number, len: number, sum = 0): number {
  let i = off;
  const end = off + len - 1;
  for (; i < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i === end) sum += b[i] << 8;
  // Keep the running sum small so it never loses bits (2^53 is far, but folding is cheap).
  return (sum & 0xffff) + Math.floor(sum / 0x10000);
}

/** Fold to 16 bits and complement: the value that goes in the header. */
export function csumFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Parse "a.b.c.d" (optionally "/prefix", ignored) to a 32-bit number, or null. */
export function parseIPv4(s: string): number | null {
  const m = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(\/[0-9]{1,2})?$/.exec(s.trim());
  if (m === null) return null;
  const o = [m[1], m[2], m[3], m[4]].map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
}

export function formatIPv4(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}
