/**
 * `vfio info <device>`: what VFIO reports about a device on vfio-pci — the IOMMU path, regions (size, flags,
 * mmappable areas), IRQ indexes and counts, reset support — and its decoded PCI capabilities.
 *
 * ```sh
 * vfio info 0000:00:04.0 --json
 * ```
 * @module
 */

import { MalformedReplyError } from "../../lib/errors.ts";
import { hex } from "../../lib/hex.ts";
import { byteSize } from "../../lib/inspect.ts";
import { irqInfoAll } from "../../lib/irq_info.ts";
import { type RegionInfo, regionInfo } from "../../lib/region.ts";
import { loadPciIds } from "../../lib/sysfs/pci_ids.ts";
import { type Command, EXIT, expectArgs, print, resolveDevice, type Values, writeJson } from "../common.ts";
import { decodeCapabilities, formatCapability } from "../decode.ts";
import { deviceName } from "../describe.ts";
import { OPEN_HELP, OPEN_OPTIONS, openWithOptions } from "../open_device.ts";

function regionFlags(r: RegionInfo): string {
  const f = [r.readable ? "read" : "", r.writable ? "write" : "", r.mmappable ? "mmap" : ""].filter(Boolean);
  if (r.msixMappable) f.push("msix-mappable");
  return f.join(",");
}

/** The `info` command. */
export const info: Command = {
  name: "info",
  summary: "what VFIO reports: regions, IRQs, reset, capabilities",
  help: `usage: vfio info <device> [--iommu PATH] [--noiommu] [--json]

Opens the device (it must be on vfio-pci: \`vfio bind\` it first) and shows the IOMMU path it was opened through,
each region (BARs, ROM, config: size, read/write/mmap, the mmappable areas of a sparse BAR), each IRQ index with
its vector count and flags, whether VFIO can reset it, and its PCI capabilities decoded.
${OPEN_HELP}`,
  options: OPEN_OPTIONS,
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 1, 1, "vfio info <device>");
    const d = resolveDevice(positionals[0]);
    using dev = openWithOptions(d, values);
    const device = dev.info();
    const regions: RegionInfo[] = [];
    const undecodable: { index: number; problem: string }[] = [];
    for (let i = 0; i < device.numRegions; i++) {
      try {
        regions.push(regionInfo(dev, i));
      } catch (e) {
        // A reply vfio-ts refuses is shown; an index the kernel does not describe (VGA on a non-VGA device) is not.
        if (e instanceof MalformedReplyError) undecodable.push({ index: i, problem: e.message });
      }
    }
    const irqs = irqInfoAll(dev).slice(0, device.numIrqs);
    const caps = decodeCapabilities(dev.config);
    if (values.json) {
      writeJson({ address: d.address, iommu: dev.iommu, device, regions, undecodable, irqs, ...caps });
      return EXIT.ok;
    }
    print(`${d.address}  ${deviceName(d, loadPciIds())}`);
    print(`  IOMMU path: ${dev.iommu}   group ${d.iommuGroup ?? "-"}   reset: ${device.resetSupported ? "yes" : "no"}`);
    print("regions:");
    for (const r of regions.filter((r) => r.size > 0)) {
      print(`  ${`${r.index} ${r.name}`.padEnd(11)} ${byteSize(r.size).padStart(9)}  ${regionFlags(r)}`);
      for (const a of r.sparseAreas ?? []) print(`      mmappable ${hex(a.offset)} +${byteSize(a.size)}`);
    }
    for (const u of undecodable) print(`  ${u.index} (undecodable: ${u.problem})`);
    print("interrupts:");
    for (const q of irqs) {
      const flags = [q.eventfd ? "eventfd" : "", q.maskable ? "maskable" : "", q.automasked ? "automasked" : ""];
      print(`  ${q.name.padEnd(6)} ${String(q.count).padStart(4)} ${flags.filter(Boolean).join(",")}`);
    }
    print("capabilities:");
    for (const c of caps.capabilities) print(`  ${formatCapability(c)}`);
    if (caps.malformed) print(`  (the list stops early: ${caps.malformed})`);
    return EXIT.ok;
  },
};
