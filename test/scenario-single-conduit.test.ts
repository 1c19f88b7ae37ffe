/*
 * `npm start -- single-conduit`: Dom0's blkback fails under four guests and comes back, each
 * guest's stall printed and no byte lost; the same guests split across two storage driver domains,
 * one of which crashes and is restarted, and only its guests pause; a
 * passed-through controller's stray DMA is refused by the IOMMU. Checked for its key lines, not its
 * numbers.
 */
import test from 'ava';
import { SCENARIOS } from '../scenarios/registry.ts';
import { singleConduit } from '../scenarios/single-conduit.ts';

test('single-conduit narrates the conduit failing, a storage driver domain failing alone, and the IOMMU refusing a DMA', async (t) => {
  t.is(SCENARIOS.find((s) => s.name === 'single-conduit')?.run, singleConduit);
  const lines: string[] = [];
  await singleConduit((l) => lines.push(l));
  const text = lines.join('\n');
  const part = (n: number) => text.split(/\n(?=\d\. )/)[n - 1] ?? '';
  for (const name of ['web', 'db', 'mail', 'build']) {
    t.regex(part(1), new RegExp(`${name}: 32 requests, each answered once, no byte lost; stood still \\d+\\.\\d ms \\(\\d+ re-issued`));
  }
  t.regex(part(2), /pci = \[ '00:1f\.1' \] and \[ '00:1f\.2' \]/);
  for (const name of ['web', 'db']) {
    t.regex(part(2), new RegExp(`${name}: 32 requests, each answered once, no byte lost; stood still \\d+\\.\\d ms \\(\\d+ re-issued; \\d+\\.\\d ms after the new backend's InitWait\\)`));
  }
  for (const name of ['mail', 'build']) t.regex(part(2), new RegExp(`${name}: 32 requests, each answered once, no byte lost; never noticed anything`));
  t.regex(part(2), /storage-a came back as d\d+ and took over its disks; mail and build, on storage-b, never noticed/);
  t.regex(part(2), /Only storage-a's guests paused \(web, db\): a failure is confined/);
  t.regex(part(2), /0000:00:1f\.1 and 0000:00:1f\.2 are Dom0's again/);
  t.regex(part(3), /reads it back by DMA: identical/);
  t.regex(part(3), /"sc1n\d+: IOMMU fault \(a DMA address outside this domain\)"/);
  t.regex(part(3), /The hypervisor's log: \(XEN\) \[VT-D\] DMAR: .* fault from device 0000:00:1f\.1/);
  t.regex(part(3), /IOMMU faults on 0000:00:1f\.1: 1; Dom0's frame is unchanged/);
  t.regex(part(3), /the controller is not assigned to this domain/);
  t.regex(part(3), /0000:00:1f\.1 belongs to d0 again/);
});
