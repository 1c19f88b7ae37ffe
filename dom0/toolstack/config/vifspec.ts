/*
 * Network interface specifications: one entry of `vif = [ ... ]`.
 *
 * Xen: docs/man/xl-network-configuration.5.pod.in (the syntax) and parse_nic_config in
 * tools/xl/xl_parse.c (what xl reads), with libxl__device_nic_setdefault in
 * tools/libs/light/libxl_nic.c for the defaults: bridge xenbr0, mtu 1500, model rtl8139, and a
 * random MAC in Xen's OUI 00:16:3e with the fourth octet below 0x80.
 *
 * A spec is `key=value` pairs and flags separated by commas; empty pieces are skipped, so '' is
 * a vif with every default. xl prints "unrecognized argument" for a piece it does not know and
 * carries on, and does the same for a malformed mac=; ringvisor carries on for the former (a
 * warning) but refuses the latter, because a half-parsed MAC is a wrong MAC.
 *
 * This is parsed and kept now for the network devices that come later; nothing here opens a
 * bridge or a backend.
 */

export interface VifSpec {
  /** Lower-case aa:bb:cc:dd:ee:ff, or null to have one generated (provisioning writes one). */
  mac: string | null;
  bridge: string | null;
  /** Emulated NIC model (HVM, type=ioemu). */
  model: string | null;
  /** 'ioemu': emulated and PV (Xen's HVM default); 'vif': PV only. */
  type: 'vif' | 'ioemu' | null;
  ip: string | null;
  vifname: string | null;
  script: string | null;
  backend: string | null;
  rate: string | null;
  mtu: number | null;
  devid: number | null;
  vlan: string | null;
  gatewaydev: string | null;
  trusted: boolean | null;
  /**
   * ringvisor's own key, bufioreq=0|1: an emulated NIC's register writes go through Xen's
   * buffered ioreq page where QEMU would coalesce them (dom0/device-models/e1000/e1000.ts).
   * xl has no such key; its default (0) is xl's behaviour.
   */
  bufioreq: boolean | null;
  /** Pieces accepted but not modelled (colo_*, accel): name=value as written. */
  ignored: string[];
}

export type VifSpecResult = { ok: true; vif: VifSpec; warnings: string[] } | { ok: false; error: string };

/** Xen's OUI: libxl generates addresses in 00:16:3e:00:00:00 - 00:16:3e:7f:ff:ff. */
export const XEN_OUI = '00:16:3e';

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const STRING_KEYS = ['bridge', 'model', 'ip', 'vifname', 'script', 'backend', 'rate', 'vlan', 'gatewaydev'] as const;

export function parseVifSpec(spec: string): VifSpecResult {
  const vif: VifSpec = {
    mac: null, bridge: null, model: null, type: null, ip: null, vifname: null, script: null, backend: null,
    rate: null, mtu: null, devid: null, vlan: null, gatewaydev: null, trusted: null, bufioreq: null, ignored: [],
  };
  const warnings: string[] = [];
  for (const raw of spec.split(',')) {
    const piece = raw.replace(/^ +/, ''); // xl skips leading blanks of each piece only
    if (piece === '') continue;
    if (piece === 'trusted' || piece === 'untrusted') { vif.trusted = piece === 'trusted'; continue; }
    const eq = piece.indexOf('=');
    const key = eq < 0 ? piece : piece.slice(0, eq);
    const value = eq < 0 ? '' : piece.slice(eq + 1);
    if (eq < 0) {
      warnings.push(`unrecognized vif argument \`${piece}' ignored (expected key=value, trusted or untrusted)`);
      continue;
    }
    switch (key) {
      case 'mac': {
        if (!MAC.test(value)) {
          return { ok: false, error: `invalid mac \`${value}' (expected six hex octets such as ${XEN_OUI}:12:34:56)` };
        }
        if (parseInt(value.slice(0, 2), 16) & 1) {
          return { ok: false, error: `mac ${value} is a multicast address (expected a unicast MAC: first octet even)` };
        }
        vif.mac = value.toLowerCase();
        break;
      }
      case 'type':
        if (value !== 'vif' && value !== 'ioemu') return { ok: false, error: `invalid type \`${value}' (expected vif or ioemu)` };
        vif.type = value;
        break;
      case 'mtu': case 'devid': {
        if (!/^[0-9]+$/.test(value)) return { ok: false, error: `invalid ${key} \`${value}' (expected a decimal number)` };
        vif[key] = Number(value);
        break;
      }
      case 'bufioreq':
        if (value !== '0' && value !== '1') return { ok: false, error: `invalid bufioreq \`${value}' (expected 0 or 1)` };
        vif.bufioreq = value === '1';
        break;
      case 'netdev':
        warnings.push('vif netdev= is deprecated; it is read as gatewaydev=');
        vif.gatewaydev = value;
        break;
      case 'accel':
        vif.ignored.push(piece);
        warnings.push('vif accel= is not supported (xl ignores it too)');
        break;
      default:
        if ((STRING_KEYS as readonly string[]).includes(key)) {
          vif[key as typeof STRING_KEYS[number]] = value;
        } else if (key.startsWith('colo_') || key === 'forwarddev') {
          vif.ignored.push(piece);
          warnings.push(`vif ${key}= is a COLO setting, not modelled; ignored`);
        } else {
          warnings.push(`unrecognized vif argument \`${piece}' ignored (expected mac=, bridge=, model=, type=, ip=, ` +
            'vifname=, script=, backend=, rate=, mtu=, devid=, vlan=, gatewaydev=, bufioreq=)');
        }
    }
  }
  return { ok: true, vif, warnings };
}

/** Puts `mac=` into a vif spec, replacing one that is there: what provisioning writes. */
export function withMac(spec: string, mac: string): string {
  const pieces = spec.split(',');
  const i = pieces.findIndex((p) => p.replace(/^ +/, '').startsWith('mac='));
  if (i >= 0) {
    const lead = /^ */.exec(pieces[i]!)![0];
    pieces[i] = `${lead}mac=${mac}`;
    return pieces.join(',');
  }
  return spec.trim() === '' ? `mac=${mac}` : `mac=${mac},${spec}`;
}

/** A fresh MAC as libxl makes one: Xen's OUI, then 23 random bits. */
export function randomXenMac(random: (n: number) => Uint8Array): string {
  const r = random(3);
  const octets = [r[0]! & 0x7f, r[1]!, r[2]!].map((b) => b.toString(16).padStart(2, '0'));
  return `${XEN_OUI}:${octets.join(':')}`;
}
