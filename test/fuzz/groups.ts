/*
 * Every fuzz property group, in the order the suite and `npm run fuzz` run them.
 */
import { blkifRequestProperties } from './blkif-request.ts';
import { idePortProperties } from './ide-ports.ts';
import { ringIndexProperties } from './ring-index.ts';
import { xlcfgProperties } from './xlcfg.ts';
import { xsFramingProperties } from './xs-framing.ts';
import type { FuzzGroup } from './property.ts';

export const FUZZ_GROUPS: FuzzGroup<never>[] = [
  ringIndexProperties,
  blkifRequestProperties,
  xsFramingProperties,
  xlcfgProperties,
  idePortProperties,
] as unknown as FuzzGroup<never>[];
