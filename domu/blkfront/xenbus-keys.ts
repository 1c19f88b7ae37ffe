/*
 * The blkif handshake's XenStore keys, as blkfront writes and reads them: its rings, event
 * channels and protocol under its own device directory (one ring-ref, or ring-refN with
 * ring-page-order, per queue; queue-N/ directories with multi-queue-num-queues), and what the
 * backend offers under its directory once Connected (a missing feature key counts as "0").
 *
 * Linux: xen-blkfront.c, talk_to_blkback and write_per_ring_nodes (what the frontend writes,
 * in one transaction), blkfront_connect and blkfront_gather_backend_features (what it reads).
 * The key names are shared/public/io/blkif.ts's XS_BLK.
 */
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { VDISK_READONLY, XEN_IO_PROTO_ABI_X86_64, XS_BLK } from '../../shared/public/io/blkif.ts';

/** What a ring contributes to the keys: its grant references and its event channel. */
interface RingKeys { readonly ringRefs: readonly number[]; readonly port: number }

/** talk_to_blkback: every ring's keys, the protocol and feature-persistent, in transaction `t`. */
export async function writeFrontendKeys(xs: XenbusClient, nodename: string, queues: readonly RingKeys[], order: number,
  persistent: boolean, t: number): Promise<void> {
  const writeQueue = async (dir: string, q: RingKeys) => {
    if (order === 0) await xs.write(`${dir}/${XS_BLK.ring_ref}`, String(q.ringRefs[0]), t);
    else for (let i = 0; i < q.ringRefs.length; i++) await xs.write(`${dir}/${XS_BLK.ring_ref}${i}`, String(q.ringRefs[i]), t);
    await xs.write(`${dir}/${XS_BLK.event_channel}`, String(q.port), t);
  };
  if (order > 0) await xs.write(`${nodename}/${XS_BLK.ring_page_order}`, String(order), t);
  if (queues.length === 1) {
    await writeQueue(nodename, queues[0]!);
  } else {
    await xs.write(`${nodename}/${XS_BLK.multi_queue_num_queues}`, String(queues.length), t);
    for (let q = 0; q < queues.length; q++) await writeQueue(`${nodename}/queue-${q}`, queues[q]!);
  }
  await xs.write(`${nodename}/${XS_BLK.protocol}`, XEN_IO_PROTO_ABI_X86_64, t);
  await xs.write(`${nodename}/${XS_BLK.feature_persistent}`, persistent ? '1' : '0', t);
}

/** What the backend says of the disk and offers, once Connected. */
export interface BackendKeys {
  sectors: number;
  sectorSize: number;
  readOnly: boolean;
  flush: boolean;
  discard: boolean;
  persistent: boolean;
  maxIndirectSegments: number;
}

/** blkfront_connect + blkfront_gather_backend_features: the backend's keys under `be`. */
export async function readBackendKeys(xs: XenbusClient, be: string): Promise<BackendKeys> {
  return {
    sectors: await xs.readUnsigned(`${be}/${XS_BLK.sectors}`, 0),
    sectorSize: await xs.readUnsigned(`${be}/${XS_BLK.sector_size}`, 512),
    readOnly: ((await xs.readUnsigned(`${be}/${XS_BLK.info}`, 0)) & VDISK_READONLY) !== 0,
    flush: (await xs.readUnsigned(`${be}/${XS_BLK.feature_flush_cache}`, 0)) === 1,
    discard: (await xs.readUnsigned(`${be}/${XS_BLK.feature_discard}`, 0)) === 1,
    persistent: (await xs.readUnsigned(`${be}/${XS_BLK.feature_persistent}`, 0)) === 1,
    maxIndirectSegments: await xs.readUnsigned(`${be}/${XS_BLK.feature_max_indirect_segments}`, 0),
  };
}
