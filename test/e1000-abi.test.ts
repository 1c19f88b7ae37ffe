/*
 * The e1000 and buffered-ioreq layouts, checked against the numbers in QEMU and Xen: the coalesced
 * zones of BAR0 are exactly QEMU's e1000_mmio_setup list, a buf_ioreq word keeps Xen's bit layout
 * and round-trips, and the legacy descriptors are 16 bytes with the fields where [SDM] puts them.
 */
import test from 'ava';
import {
  BUF_ADDR_SHIFT, IOREQ_BUFFER_SLOT_NUM, IOREQ_TYPE_COPY, buf_ioreq_addr, buf_ioreq_size, buf_ioreq_type, buf_ioreq_word0,
  buffered_iopage,
} from '../shared/public/hvm/ioreq.ts';
import {
  E1000_MMIO_SIZE, E1000_SYNC_WRITE_REGS, e1000CoalescedZones, e1000RxBufSize, e1000_rx_desc, e1000_tx_desc,
  E1000_RCTL_BSEX, E1000_RCTL_BSIZE_SHIFT,
} from '../shared/public/hw/e1000.ts';

test('coalesced zones are all of BAR0 but MDIC, ICR, ICS, IMS, IMC, TCTL and TDT (QEMU e1000_mmio_setup)', (t) => {
  t.deepEqual(e1000CoalescedZones(), [
    [0, 0x20], [0x24, 0x9c], [0xc4, 4], [0xcc, 4], [0xd4, 4], [0xdc, 0x324], [0x404, 0x3414], [0x381c, E1000_MMIO_SIZE - 0x381c],
  ]);
  const covered = new Set<number>();
  for (const [off, bytes] of e1000CoalescedZones()) for (let a = off; a < off + bytes; a += 4) covered.add(a);
  for (const reg of E1000_SYNC_WRITE_REGS) t.false(covered.has(reg), `0x${reg.toString(16)} stays synchronous`);
  t.is(covered.size + E1000_SYNC_WRITE_REGS.length, E1000_MMIO_SIZE / 4);
});

test('buf_ioreq keeps Xen\'s layout: type in bits 0-7, dir 9, size 10-11, addr 12-31; the page holds 511 slots after two pointers', (t) => {
  const w = buf_ioreq_word0(IOREQ_TYPE_COPY, 4, 0xf2818);
  t.is(buf_ioreq_type(w), IOREQ_TYPE_COPY);
  t.is(buf_ioreq_size(w), 4);
  t.is(buf_ioreq_addr(w), 0xf2818);
  t.is((w >>> 9) & 1, 0, 'dir = IOREQ_WRITE');
  t.is(BUF_ADDR_SHIFT, 12);
  t.is(buf_ioreq_size(buf_ioreq_word0(IOREQ_TYPE_COPY, 1, 0)), 1);
  t.is(buf_ioreq_size(buf_ioreq_word0(IOREQ_TYPE_COPY, 2, 0)), 2);
  t.is(buf_ioreq_addr(buf_ioreq_word0(IOREQ_TYPE_COPY, 4, 0xf0012345)), 0x12345, 'only the low 20 bits travel');
  t.is(buffered_iopage.buf_ioreq + IOREQ_BUFFER_SLOT_NUM * 8, 4096);
});

test('legacy descriptors are 16 bytes; rx buffer sizes follow RCTL.BSIZE and BSEX', (t) => {
  t.is(e1000_rx_desc.size, 16);
  t.is(e1000_tx_desc.size, 16);
  t.is(e1000_rx_desc.fields.status[1], 12);
  t.is(e1000_tx_desc.fields.cmd[1], 11);
  t.is(e1000RxBufSize(0), 2048);
  t.is(e1000RxBufSize(1 << E1000_RCTL_BSIZE_SHIFT), 1024);
  t.is(e1000RxBufSize(3 << E1000_RCTL_BSIZE_SHIFT), 256);
  t.is(e1000RxBufSize(E1000_RCTL_BSEX | (1 << E1000_RCTL_BSIZE_SHIFT)), 16384);
  t.is(e1000RxBufSize(E1000_RCTL_BSEX | (3 << E1000_RCTL_BSIZE_SHIFT)), 4096);
});
