/**
 * Config space for people: the header fields, the capabilities with the details the library decodes (MSI,
 * MSI-X, PCI Express, power management), and an `lspci -xxx`-style hex dump. Reads go through a `ConfigReader`,
 * so the same code shows VFIO's view (`ConfigSpace`) and sysfs' `config` file (`configReaderFromBytes`).
 *
 * ```ts
 * import { configReaderFromBytes } from "@vfio-ts/vfio";
 * import { decodeCapabilities, configDump } from "./decode.ts";
 * const cfg = configReaderFromBytes(new Uint8Array(256));
 * console.log(configDump(cfg), decodeCapabilities(cfg));
 * ```
 * @module
 */

import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CLASS_REVISION,
  PCI_COMMAND,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "../lib/abi/pci.ts";
import {
  type ConfigReader,
  MsiCapability,
  MsixCapability,
  PciExpressCapability,
  PowerManagementCapability,
  walkCapabilities,
} from "../lib/capabilities.ts";
import { hex, hexDigits } from "../lib/hex.ts";

/** One capability with its decoded fields. */
export interface DecodedCapability {
  id: number;
  name: string;
  offset: number;
  extended: boolean;
  version: number;
  /** Decoded fields (MSI, MSI-X, PCIe, PM), empty for the others. */
  details: Record<string, number | string | boolean>;
  /** Why its fields could not be decoded (e.g. they run past config space); the other capabilities still are. */
  undecodable?: string;
}

function details(cfg: ConfigReader, id: number, offset: number): Record<string, number | string | boolean> {
  if (id === PCI_CAP_ID_MSIX) {
    const c = new MsixCapability(cfg, offset);
    return {
      vectors: c.tableSize,
      enabled: c.enabled,
      functionMasked: c.functionMasked,
      tableBar: c.tableBir,
      tableOffset: c.tableOffset,
      pbaBar: c.pbaBir,
      pbaOffset: c.pbaOffset,
    };
  }
  if (id === PCI_CAP_ID_MSI) {
    const c = new MsiCapability(cfg, offset);
    return {
      vectors: c.multipleMessageCapable,
      enabledVectors: c.multipleMessageEnable,
      enabled: c.enabled,
      is64Bit: c.is64Bit,
      perVectorMasking: c.perVectorMasking,
    };
  }
  if (id === PCI_CAP_ID_EXP) {
    const c = new PciExpressCapability(cfg, offset);
    return {
      type: c.typeName,
      version: c.version,
      maxPayloadSupported: c.maxPayloadSupported,
      maxPayload: c.maxPayload,
      maxReadRequest: c.maxReadRequest,
      flr: c.flr,
      linkSpeed: c.linkSpeed,
      linkWidth: c.linkWidth,
      maxLinkSpeed: c.maxLinkSpeed,
      maxLinkWidth: c.maxLinkWidth,
    };
  }
  if (id === PCI_CAP_ID_PM) {
    const c = new PowerManagementCapability(cfg, offset);
    return { version: c.version, powerState: c.powerStateName, noSoftReset: c.noSoftReset };
  }
  return {};
}

/** Walks both capability lists and decodes what the library knows; `malformed` says why a walk stopped early. */
export function decodeCapabilities(cfg: ConfigReader): { capabilities: DecodedCapability[]; malformed: string | null } {
  const { capabilities, malformed } = walkCapabilities(cfg);
  return {
    capabilities: capabilities.map((c) => {
      const out: DecodedCapability = {
        id: c.id,
        name: c.name,
        offset: c.offset,
        extended: c.extended,
        version: c.version,
        details: {},
      };
      try {
        if (!c.extended) out.details = details(cfg, c.id, c.offset);
      } catch (e) {
        // One capability whose fields cannot be read must not hide the others (nor the header and the dump).
        out.undecodable = e instanceof Error ? e.message : String(e);
      }
      return out;
    }),
    malformed,
  };
}

/** One line per capability: `[70] MSIX  vectors=65 enabled=false tableBar=0 tableOffset=0x2000 …`. */
export function formatCapability(c: DecodedCapability): string {
  const fields = Object.entries(c.details).map(([k, v]) =>
    `${k}=${typeof v === "number" && /Offset$/.test(k) ? hex(v) : String(v)}`
  );
  const ext = c.extended ? ` (extended, v${c.version})` : "";
  if (c.undecodable) fields.push(`(undecodable: ${c.undecodable})`);
  return `[${hexDigits(c.offset, c.extended ? 3 : 2)}] ${c.name}${ext}${fields.length ? `  ${fields.join(" ")}` : ""}`;
}

/** The header fields of config space. */
export interface ConfigHeader {
  vendor: number;
  device: number;
  command: number;
  status: number;
  revision: number;
  class: number;
  headerType: number;
  subsystemVendor: number;
  subsystem: number;
  interruptLine: number;
  interruptPin: number;
}

/** Reads the header fields at their `pci_regs.h` offsets. */
export function decodeHeader(cfg: ConfigReader): ConfigHeader {
  return {
    vendor: cfg.read16(PCI_VENDOR_ID),
    device: cfg.read16(PCI_DEVICE_ID),
    command: cfg.read16(PCI_COMMAND),
    status: cfg.read16(PCI_STATUS),
    revision: cfg.read8(PCI_REVISION_ID),
    class: cfg.read32(PCI_CLASS_REVISION) >>> 8,
    headerType: cfg.read8(PCI_HEADER_TYPE),
    subsystemVendor: cfg.read16(PCI_SUBSYSTEM_VENDOR_ID),
    subsystem: cfg.read16(PCI_SUBSYSTEM_ID),
    interruptLine: cfg.read8(PCI_INTERRUPT_LINE),
    interruptPin: cfg.read8(PCI_INTERRUPT_PIN),
  };
}

/** Config space as `lspci -xxx` dumps it: 16 bytes a line, the offset first (the shell's `hexdump` is xxd-style). */
export function configDump(cfg: ConfigReader, length = cfg.size): string {
  const lines: string[] = [];
  for (let off = 0; off < length; off += 16) {
    const bytes: string[] = [];
    for (let i = off; i < Math.min(off + 16, length); i++) bytes.push(hexDigits(cfg.read8(i), 2));
    lines.push(`${hexDigits(off, 3)}: ${bytes.join(" ")}`);
  }
  return lines.join("\n");
}
