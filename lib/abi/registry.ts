/**
 * The registry of everything the ABI layer defines: each constant under its exact C name, and each struct with
 * its C name, size and fields. `tests/unit/abi.test.ts` turns it into a C program, compiles that against the
 * kernel's uapi headers and compares every value.
 *
 * The registry is built from the modules' exports, so nothing can be defined without being checked: a numeric
 * export is a constant named as in C, a {@linkcode StructDef} export is a struct, functions are the encoders
 * and factories, and any other export makes this module throw on load.
 *
 * ```ts
 * import { ABI_CONSTANTS, ABI_STRUCTS } from "./registry.ts";
 * const c = ABI_CONSTANTS.find((k) => k.name === "VFIO_GROUP_GET_STATUS");
 * console.log(c?.value, c?.header, ABI_STRUCTS.length); // 15203 "linux/vfio.h" ...
 * ```
 * @module
 */

import * as capability from "./capability.ts";
import * as netif from "./if.ts";
import * as ioctl from "./ioctl.ts";
import * as iommufd from "./iommufd.ts";
import * as ioport from "./ioport.ts";
import * as pci from "./pci.ts";
import * as route from "./route.ts";
import { isStructDef, type StructDef } from "./struct.ts";
import * as vfio from "./vfio.ts";

/** One ABI module: its file in `lib/abi/`, the uapi header it mirrors, and its exports. */
export interface AbiModule {
  /** File name within `lib/abi/`. */
  readonly file: string;
  /** The header, as written in an `#include <...>`. */
  readonly header: string;
  /** `uapi` for a user-space header (the test includes it); `kernel` for a kernel-internal header whose
   * `#define` lines the test copies into its C program (such a header cannot be included from user space). */
  readonly headerKind: "uapi" | "kernel";
  /** The module namespace. */
  readonly exports: Readonly<Record<string, unknown>>;
}

/** A constant and how to read it in C. */
export interface AbiConstant {
  /** The exact C macro or enumerator name (also the TypeScript export name). */
  readonly name: string;
  /** The TypeScript value. */
  readonly value: number;
  /** The header that defines it. */
  readonly header: string;
  /** Whether that header is a uapi or a kernel-internal one (see {@linkcode AbiModule.headerKind}). */
  readonly headerKind: "uapi" | "kernel";
  /** The C expression whose value must equal {@linkcode value}: the name, or the name cast to `__u32` when the
   * C expression is wider or signed but the library uses its 32-bit unsigned reading. */
  readonly cExpr: string;
}

/** A struct definition and where it comes from. */
export interface AbiStruct {
  /** The TypeScript export name (PascalCase of the C name). */
  readonly exportName: string;
  /** The definition; `def.cName` is the C struct name. */
  readonly def: StructDef;
  /** The uapi header that defines it. */
  readonly header: string;
}

/** The modules whose exports the registry covers, with their headers. */
export const ABI_MODULES: readonly AbiModule[] = Object.freeze([
  { file: "ioctl.ts", header: "linux/ioctl.h", headerKind: "uapi", exports: ioctl },
  { file: "vfio.ts", header: "linux/vfio.h", headerKind: "uapi", exports: vfio },
  { file: "iommufd.ts", header: "linux/iommufd.h", headerKind: "uapi", exports: iommufd },
  { file: "pci.ts", header: "linux/pci_regs.h", headerKind: "uapi", exports: pci },
  { file: "capability.ts", header: "linux/capability.h", headerKind: "uapi", exports: capability },
  { file: "ioport.ts", header: "linux/ioport.h", headerKind: "kernel", exports: ioport },
  { file: "if.ts", header: "linux/if.h", headerKind: "uapi", exports: netif },
  { file: "route.ts", header: "linux/route.h", headerKind: "uapi", exports: route },
]);

/**
 * Constants whose TypeScript value is the unsigned 32-bit reading of the C expression: `(1 << 31)` and `-1`
 * (signed int in C, compared with u32 fields) and `~0x0fUL`-style masks (unsigned long in C, applied to 32-bit
 * BAR registers).
 */
const AS_U32: ReadonlySet<string> = new Set([
  "VFIO_REGION_TYPE_PCI_VENDOR_TYPE",
  "VFIO_PCI_DEVID_NOT_OWNED",
  "PCI_BASE_ADDRESS_MEM_MASK",
  "PCI_BASE_ADDRESS_IO_MASK",
]);

function collect(): { constants: AbiConstant[]; structs: AbiStruct[] } {
  const constants: AbiConstant[] = [];
  const structs: AbiStruct[] = [];
  const seen = new Set<string>();
  for (const mod of ABI_MODULES) {
    for (const [name, value] of Object.entries(mod.exports)) {
      if (typeof value === "function") continue;
      if (seen.has(name)) throw new Error(`abi registry: ${name} is exported twice`);
      seen.add(name);
      if (typeof value === "number") {
        const cExpr = AS_U32.has(name) ? `(__u32)(${name})` : name;
        constants.push({ name, value, header: mod.header, headerKind: mod.headerKind, cExpr });
      } else if (isStructDef(value) && mod.headerKind === "uapi") {
        structs.push({ exportName: name, def: value, header: mod.header });
      } else {
        throw new Error(`abi registry: ${mod.file} exports ${name}, which is neither a constant nor a uapi struct`);
      }
    }
  }
  for (const name of AS_U32) {
    if (!seen.has(name)) throw new Error(`abi registry: ${name} is listed as a u32 reading but not exported`);
  }
  return { constants, structs };
}

const collected = collect();

/** Every constant of the ABI layer, in module order. */
export const ABI_CONSTANTS: readonly AbiConstant[] = Object.freeze(collected.constants);
/** Every struct of the ABI layer, in module order. */
export const ABI_STRUCTS: readonly AbiStruct[] = Object.freeze(collected.structs);
