/**
 * `vfio config <device>`: config space as a hex dump plus the decoded header, BARs and capabilities — through
 * VFIO for a device on vfio-pci (what a user-space driver sees), else from sysfs' `config` file.
 *
 * ```sh
 * vfio config 0000:00:03.0
 * ```
 * @module
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ConfigReader, configReaderFromBytes } from "../../lib/capabilities.ts";
import type { Device } from "../../lib/device.ts";
import { VfioError } from "../../lib/errors.ts";
import { hex } from "../../lib/hex.ts";
import { byteSize } from "../../lib/inspect.ts";
import { loadPciIds } from "../../lib/sysfs/pci_ids.ts";
import { type Command, EXIT, expectArgs, print, resolveDevice, type Values, writeJson } from "../common.ts";
import { configDump, decodeCapabilities, decodeHeader, formatCapability } from "../decode.ts";
import { deviceName } from "../describe.ts";
import { OPEN_HELP, OPEN_OPTIONS, openWithOptions } from "../open_device.ts";

/** The `config` command. */
export const config: Command = {
  name: "config",
  summary: "config space: hex dump, decoded header and capabilities",
  help: `usage: vfio config <device> [--iommu PATH] [--noiommu] [--json]

Shows config space like \`lspci -vvv -xxx\` for one device: the header (ids, command, status, class, interrupt
pin), the BARs with sizes, the capabilities decoded, and a hex dump of all of it (256 bytes, or 4 KiB for PCI
Express). A device on vfio-pci is read through VFIO (its virtualised view); any other from
/sys/bus/pci/devices/<address>/config (the first 64 bytes only, unless root).
${OPEN_HELP}`,
  options: OPEN_OPTIONS,
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 1, 1, "vfio config <device>");
    const d = resolveDevice(positionals[0]);
    let dev: Device | null = null;
    try {
      let cfg: ConfigReader;
      let source: string;
      if (d.driver === "vfio-pci") {
        dev = openWithOptions(d, values);
        const space = dev.config;
        cfg = configReaderFromBytes(space.region.readBytes(0, space.size));
        source = `VFIO (${dev.iommu})`;
      } else {
        const path = join(d.sysfsPath, "config");
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(readFileSync(path));
        } catch (e) {
          throw new VfioError(`cannot read ${path}: ${(e as Error).message}`, { remedy: "run as root", cause: e });
        }
        cfg = configReaderFromBytes(bytes);
        source = path;
      }
      const header = decodeHeader(cfg);
      const caps = cfg.size > 64 ? decodeCapabilities(cfg) : { capabilities: [], malformed: "only 64 bytes readable" };
      const bytes: number[] = [];
      for (let i = 0; i < cfg.size; i++) bytes.push(cfg.read8(i));
      if (values.json) {
        writeJson({ address: d.address, source, size: cfg.size, header, bars: d.bars, ...caps, bytes });
        return EXIT.ok;
      }
      print(`${d.address}  ${deviceName(d, loadPciIds())}   (read through ${source})`);
      print(
        `  command ${hex(header.command, 4)}  status ${hex(header.status, 4)}  revision ${hex(header.revision, 2)}` +
          `  header type ${hex(header.headerType, 2)}  subsystem ${hex(header.subsystemVendor, 4)}:` +
          `${hex(header.subsystem, 4).slice(2)}  interrupt pin ${header.interruptPin || "-"}`,
      );
      for (const b of d.bars) {
        const kind = b.kind === "io"
          ? "I/O ports"
          : `memory (${b.is64Bit ? "64" : "32"}-bit, ${b.prefetchable ? "prefetchable" : "non-prefetchable"})`;
        print(`  BAR${b.index}: ${kind} at ${hex(b.start)} [size=${byteSize(b.size)}]`);
      }
      print("capabilities:");
      for (const c of caps.capabilities) print(`  ${formatCapability(c)}`);
      if (caps.malformed) print(`  (the list stops early: ${caps.malformed})`);
      print(configDump(cfg));
      return EXIT.ok;
    } finally {
      dev?.close();
    }
  },
};
