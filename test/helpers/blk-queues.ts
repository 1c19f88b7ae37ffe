// blkfront on four rings for a one-vCPU test guest. Its default is one ring per vCPU (Linux's
// xlblk_init caps max_queues at the CPUs), so the tests about multi-queue ask for four explicitly.
import type { BlkfrontOptions } from '../../domu/blkfront/blkfront.ts';

export const FOUR_QUEUES: BlkfrontOptions = { maxQueues: 4 };
