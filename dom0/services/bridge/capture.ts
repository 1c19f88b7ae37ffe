/*
 * Packet capture on a vif or a bridge, written as a classic pcap file (what `tcpdump -i vif1.0
 * -w FILE` gives on a Xen Dom0), readable by tcpdump and Wireshark.
 *
 * Format: the libpcap file format (pcap-savefile(5); also the IETF draft "PCAP Capture File
 * Format"): a 24-byte global header, magic 0xa1b2c3d4 in the writer's byte order (here
 * little-endian), version 2.4, snaplen, link type 1 = LINKTYPE_ETHERNET; then per frame a 16-byte
 * record header (seconds, microseconds, captured length, original length) and the frame without
 * its FCS, as Linux captures it.
 *
 * A tap on a vif sees both directions (frames the guest sent, frames queued for it); a tap on a
 * bridge sees every frame that enters it. Records are gathered in memory and written in chunks,
 * so a busy vif costs a copy per frame, not a system call.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Packet } from '../../lib/packet.ts';
import { CHECKSUM_PARTIAL, completeCsumFlat } from '../../../shared/kernel/net-csum.ts';
import { vifByName } from '../../backends/netback/module.ts';
import { bridges } from './bridge.ts';

export const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;
const FLUSH_AT = 1 << 20;

export interface Capture {
  /** Stop, flush, close; returns the frames written. */
  stop(): number;
}

export class PcapWriter {
  private readonly fd: number;
  private buf = Buffer.alloc(FLUSH_AT + 2 * SNAPLEN);
  private at = 0;
  frames = 0;

  constructor(file: string) {
    this.fd = openSync(file, 'w');
    const h = this.buf;
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);      // thiszone: UTC
    h.writeUInt32LE(0, 12);    // sigfigs
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    this.at = 24;
  }

  /** One frame, timestamped now. */
  write(p: Packet): void {
    const t = performance.timeOrigin + performance.now();
    const sec = Math.floor(t / 1000);
    const usec = Math.floor((t - sec * 1000) * 1000);
    const b = this.buf;
    b.writeUInt32LE(sec >>> 0, this.at);
    b.writeUInt32LE(usec, this.at + 4);
    b.writeUInt32LE(p.len, this.at + 8);
    b.writeUInt32LE(p.len, this.at + 12);
    p.copyOut(b.subarray(this.at + 16, this.at + 16 + p.len));
    // A frame a PV guest offloaded carries only the pseudo-header sum; the file gets the checksum
    // the frame will have on a wire (tcpdump on a Linux vif would show it as "bad udp cksum").
    if (p.csum === CHECKSUM_PARTIAL) completeCsumFlat(b, this.at + 16, p.len, p.csumStart, p.csumOffset);
    this.at += 16 + p.len;
    this.frames++;
    if (this.at >= FLUSH_AT) this.flush();
  }

  flush(): void {
    if (this.at > 0) writeSync(this.fd, this.buf, 0, this.at);
    this.at = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/**
 * Start capturing on `port` (vif<domid>.<devid>, or a bridge name) into `file`; with `limit`,
 * `onLimit` is called once that many frames are written (tcpdump -c), and nothing more is written.
 */
export function startCapture(port: string, file: string, limit = 0, onLimit?: () => void): Capture {
  const bridge = bridges.get(port);
  const vif = bridge === undefined ? vifByName(port)?.vif ?? null : null;
  if (bridge === undefined && vif === null) {
    throw new Error(`${port}: no such interface (expected a bridge such as ${[...bridges.keys()][0] ?? 'xenbr0'} or a vif such as vif1.0)`);
  }
  const w = new PcapWriter(file);
  const tap = (p: Packet) => {
    if (limit > 0 && w.frames >= limit) return;
    w.write(p);
    if (limit > 0 && w.frames === limit) onLimit?.();
  };
  const taps = bridge !== undefined ? bridge.taps : vif!.taps;
  taps.add(tap);
  return {
    stop() {
      taps.delete(tap);
      w.close();
      return w.frames;
    },
  };
}
