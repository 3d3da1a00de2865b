/**
 * What the system's network stack does with an interface, read from procfs files only (no socket, no `ip`):
 * its IPv6 addresses (`/proc/net/if_inet6`), its IPv4 addresses, and whether it carries a default route
 * (`/proc/net/route`, `/proc/net/ipv6_route`).
 *
 * IPv4 addresses have no per-interface file: they are the `/32 host LOCAL` entries of `/proc/net/fib_trie`,
 * each attributed to the interface of the most specific directly connected route of `/proc/net/route` that
 * contains it (the prefix route the kernel adds with the address). An address without such a route (a `/32`,
 * `noprefixroute`) is not attributed; the interface still counts as in use while it is up. Everything is read in
 * the caller's network namespace.
 *
 * ```ts
 * import { readNetState } from "./net_use.ts";
 * const net = readNetState();
 * console.log(net.addresses.get("eth0"), net.defaultRoutes.get("eth0")); // ["192.0.2.2/24", "fd00::2/64"] ["via 192.0.2.1"]
 * ```
 * @module
 */

import { RTF_REJECT, RTF_UP } from "../abi/route.ts";
import { hexDigits } from "../hex.ts";
import type { SysfsOptions } from "./attr.ts";
import { readTextFile } from "./proc_scan.ts";

/** Addresses and default routes per interface name. */
export interface NetState {
  /** `interface → ["192.0.2.2/24", "fd00::2/64"]`. */
  readonly addresses: ReadonlyMap<string, readonly string[]>;
  /** `interface → ["via 192.0.2.1", "via fd00::1"]`, one entry per default route it carries. */
  readonly defaultRoutes: ReadonlyMap<string, readonly string[]>;
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else if (!list.includes(value)) list.push(value);
}

/** `/proc/net/route` writes IPv4 addresses as the hex of the 32-bit value in host (little-endian) order. */
function ipv4(hex: string): number {
  const le = parseInt(hex, 16);
  return (((le & 0xff) << 24) | ((le & 0xff00) << 8) | ((le >>> 8) & 0xff00) | (le >>> 24)) >>> 0;
}

function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

function prefixLength(mask: number): number {
  let n = 0;
  while (n < 32 && (mask & (0x80000000 >>> n)) !== 0) n++;
  return n;
}

/** 32 hex digits as an IPv6 address, the longest run of zero groups written `::`. */
function ipv6Text(digits: string): string {
  const groups = (digits.match(/.{4}/g) ?? []).map((g) => hexDigits(parseInt(g, 16)));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

interface Route4 {
  iface: string;
  dest: number;
  gateway: number;
  flags: number;
  mask: number;
}

function routes4(text: string): Route4[] {
  return text.split("\n").slice(1).flatMap((line) => {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) return [];
    return [{ iface: f[0], dest: ipv4(f[1]), gateway: ipv4(f[2]), flags: parseInt(f[3], 16), mask: ipv4(f[7]) }];
  });
}

/** The `/32 host LOCAL` addresses of `/proc/net/fib_trie`'s tables, loopback left out. */
function localAddresses(fibTrie: string): number[] {
  const out = new Set<number>();
  let last: string | null = null;
  for (const line of fibTrie.split("\n")) {
    const leaf = line.match(/\|-- (\d+\.\d+\.\d+\.\d+)\s*$/);
    if (leaf) {
      last = leaf[1];
      continue;
    }
    if (last !== null && /\/32 host LOCAL/.test(line) && !last.startsWith("127.")) {
      const n = last.split(".").reduce((a, b) => a * 256 + Number(b), 0);
      out.add(n);
    }
  }
  return [...out];
}

/**
 * Reads the addresses and default routes of every interface in the caller's network namespace.
 *
 * ```ts
 * import { readNetState } from "./net_use.ts";
 * for (const [name, via] of readNetState().defaultRoutes) console.log(`${name} carries the default route ${via}`);
 * ```
 */
export function readNetState(options: SysfsOptions = {}): NetState {
  const addresses = new Map<string, string[]>();
  const defaultRoutes = new Map<string, string[]>();
  const table = routes4(readTextFile("/proc/net/route", options));
  for (const r of table) {
    if ((r.flags & RTF_UP) === 0 || (r.flags & RTF_REJECT) !== 0) continue;
    if (r.dest === 0 && r.mask === 0) {
      push(defaultRoutes, r.iface, r.gateway === 0 ? "on link" : `via ${ipv4Text(r.gateway)}`);
    }
  }
  const connected = table.filter((r) => r.gateway === 0 && (r.flags & RTF_UP) !== 0 && r.mask !== 0);
  for (const a of localAddresses(readTextFile("/proc/net/fib_trie", options))) {
    const fits = connected.filter((r) => ((a & r.mask) >>> 0) === r.dest).sort((x, y) => y.mask - x.mask);
    if (fits.length > 0) push(addresses, fits[0].iface, `${ipv4Text(a)}/${prefixLength(fits[0].mask)}`);
  }
  for (const line of readTextFile("/proc/net/if_inet6", options).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/i.test(f[0])) continue;
    push(addresses, f[5], `${ipv6Text(f[0])}/${parseInt(f[2], 16)}`);
  }
  for (const line of readTextFile("/proc/net/ipv6_route", options).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^0{32}$/.test(f[0]) || f[1] !== "00") continue;
    const flags = parseInt(f[8], 16);
    if ((flags & RTF_UP) === 0 || (flags & RTF_REJECT) !== 0 || f[9] === "lo") continue;
    push(defaultRoutes, f[9], /^0{32}$/.test(f[4]) ? "on link" : `via ${ipv6Text(f[4])}`);
  }
  return { addresses, defaultRoutes };
}
