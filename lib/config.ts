/**
 * PCI configuration space of a VFIO device (region `VFIO_PCI_CONFIG_REGION_INDEX`), read and written through
 * `pread`/`pwrite` on the device fd, with helpers for the registers a driver touches: ids, class, command bits,
 * BAR decoding and the capability lists.
 *
 * vfio-pci virtualises parts of config space: BARs read back what was written (sizing works, the addresses are
 * not the host's), the MSI/MSI-X enable bits do not enable anything (use VFIO_DEVICE_SET_IRQS), and some
 * capabilities are hidden. The command register's memory, I/O and bus-master bits do reach the device.
 *
 * ```ts
 * import { ConfigSpace } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * using cfg = ConfigSpace.open(dev);
 * console.log(cfg.vendorId.toString(16), cfg.deviceId.toString(16)); // "1234" "11e8" on edu
 * cfg.enableMemory();
 * cfg.enableBusMaster();
 * ```
 * @module
 */

import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_IO_MASK,
  PCI_BASE_ADDRESS_MEM_MASK,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_MEM_TYPE_MASK,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CLASS_REVISION,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MASK,
  PCI_HEADER_TYPE_MFD,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STD_NUM_BARS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "./abi/pci.ts";
import { VFIO_PCI_CONFIG_REGION_INDEX } from "./abi/vfio.ts";
import { type Capability, type CapabilityList, type ConfigReader, walkCapabilities } from "./capabilities.ts";
import { OutOfRangeError } from "./errors.ts";
import { Region } from "./region.ts";
import type { DeviceFd } from "./types.ts";

/** A decoded base address register (as vfio-pci presents it: virtualised, for information only). */
export interface BarRegister {
  /** BAR number 0-5. */
  readonly index: number;
  /** The raw 32-bit register. */
  readonly raw: number;
  /** `"io"` or `"memory"`; `"upper"` for the high half of the 64-bit BAR before it. */
  readonly kind: "io" | "memory" | "upper";
  /** A 64-bit memory BAR (it uses the next register too). */
  readonly is64: boolean;
  /** A prefetchable memory BAR. */
  readonly prefetchable: boolean;
  /** The address the register holds (both halves for a 64-bit BAR); 0n for `"upper"`. */
  readonly address: bigint;
}

/**
 * Config space of one device. Reads and writes are bounds-checked to the region's size (256, or 4096 for PCI
 * Express) and alignment-checked; each is one system call.
 *
 * ```ts
 * import { ConfigSpace } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * const cfg = ConfigSpace.open(dev);
 * cfg.command |= 0x6; // memory + bus master, same as enableMemory(); enableBusMaster()
 * cfg.close();
 * ```
 */
export class ConfigSpace implements ConfigReader {
  readonly #region: Region;

  private constructor(region: Region) {
    this.#region = region;
  }

  /**
   * Opens the config region of a device (never mmapped: the kernel does not allow it).
   *
   * ```ts
   * import { ConfigSpace } from "./config.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * using cfg = ConfigSpace.open(dev);
   * ```
   */
  static open(dev: DeviceFd): ConfigSpace {
    return new ConfigSpace(Region.open(dev, VFIO_PCI_CONFIG_REGION_INDEX, { mmap: "never" }));
  }

  /** Size in bytes: 256, or 4096 for PCI Express. */
  get size(): number {
    return this.#region.size;
  }
  /** The underlying region (pread/pwrite). */
  get region(): Region {
    return this.#region;
  }

  /** Reads a byte. */
  read8(offset: number): number {
    return this.#region.read8(offset);
  }
  /** Reads a 16-bit register (2-byte aligned). */
  read16(offset: number): number {
    return this.#region.read16(offset);
  }
  /** Reads a 32-bit register (4-byte aligned). */
  read32(offset: number): number {
    return this.#region.read32(offset);
  }
  /** Writes a byte. */
  write8(offset: number, value: number): void {
    this.#region.write8(offset, value);
  }
  /** Writes a 16-bit register (2-byte aligned). */
  write16(offset: number, value: number): void {
    this.#region.write16(offset, value);
  }
  /** Writes a 32-bit register (4-byte aligned). */
  write32(offset: number, value: number): void {
    this.#region.write32(offset, value);
  }

  /** `PCI_VENDOR_ID`. */
  get vendorId(): number {
    return this.read16(PCI_VENDOR_ID);
  }
  /** `PCI_DEVICE_ID`. */
  get deviceId(): number {
    return this.read16(PCI_DEVICE_ID);
  }
  /** `PCI_REVISION_ID`. */
  get revision(): number {
    return this.read8(PCI_REVISION_ID);
  }
  /** The 24-bit class code: base class, subclass, programming interface (e.g. 0x010802 for NVMe). */
  get classCode(): number {
    return this.read32(PCI_CLASS_REVISION) >>> 8;
  }
  /** Header layout (`PCI_HEADER_TYPE_NORMAL` = 0 for endpoints), without the multi-function bit. */
  get headerType(): number {
    return this.read8(PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK;
  }
  /** The multi-function bit of the header type. */
  get multiFunction(): boolean {
    return (this.read8(PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MFD) !== 0;
  }
  /** `PCI_SUBSYSTEM_VENDOR_ID`. */
  get subsystemVendorId(): number {
    return this.read16(PCI_SUBSYSTEM_VENDOR_ID);
  }
  /** `PCI_SUBSYSTEM_ID`. */
  get subsystemId(): number {
    return this.read16(PCI_SUBSYSTEM_ID);
  }
  /** `PCI_INTERRUPT_PIN`: 0 none, 1-4 INTA-INTD. */
  get interruptPin(): number {
    return this.read8(PCI_INTERRUPT_PIN);
  }
  /** The status register. */
  get status(): number {
    return this.read16(PCI_STATUS);
  }
  /** The command register. */
  get command(): number {
    return this.read16(PCI_COMMAND);
  }
  set command(value: number) {
    this.write16(PCI_COMMAND, value);
  }

  /** Sets `PCI_COMMAND_MEMORY`: the device decodes its memory BARs. */
  enableMemory(): void {
    this.#setCommand(PCI_COMMAND_MEMORY, true);
  }
  /** Clears `PCI_COMMAND_MEMORY`. */
  disableMemory(): void {
    this.#setCommand(PCI_COMMAND_MEMORY, false);
  }
  /** Sets `PCI_COMMAND_IO`: the device decodes its I/O BARs. */
  enableIo(): void {
    this.#setCommand(PCI_COMMAND_IO, true);
  }
  /** Clears `PCI_COMMAND_IO`. */
  disableIo(): void {
    this.#setCommand(PCI_COMMAND_IO, false);
  }
  /** Sets `PCI_COMMAND_MASTER`: the device may do DMA (and MSI, which is a DMA write). */
  enableBusMaster(): void {
    this.#setCommand(PCI_COMMAND_MASTER, true);
  }
  /** Clears `PCI_COMMAND_MASTER`. */
  disableBusMaster(): void {
    this.#setCommand(PCI_COMMAND_MASTER, false);
  }
  /** Sets `PCI_COMMAND_INTX_DISABLE`. */
  disableIntx(): void {
    this.#setCommand(PCI_COMMAND_INTX_DISABLE, true);
  }
  /** Clears `PCI_COMMAND_INTX_DISABLE`. */
  enableIntx(): void {
    this.#setCommand(PCI_COMMAND_INTX_DISABLE, false);
  }

  /**
   * Decodes base address register `i` (0-5). vfio-pci virtualises BARs: the value is for information only; use
   * the region info for sizes and mmap.
   *
   * ```ts
   * import { ConfigSpace } from "./config.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * using cfg = ConfigSpace.open(dev);
   * const { kind, is64, address } = cfg.bar(0);
   * ```
   */
  bar(i: number): BarRegister {
    if (!Number.isInteger(i) || i < 0 || i >= PCI_STD_NUM_BARS) {
      throw new OutOfRangeError(`BAR ${i} does not exist`, {
        remedy: `BARs are numbered 0 to ${PCI_STD_NUM_BARS - 1}`,
      });
    }
    if (i > 0) {
      const prev = this.read32(PCI_BASE_ADDRESS_0 + 4 * (i - 1));
      if (
        (prev & PCI_BASE_ADDRESS_SPACE_IO) === 0 &&
        (prev & PCI_BASE_ADDRESS_MEM_TYPE_MASK) === PCI_BASE_ADDRESS_MEM_TYPE_64
      ) {
        // Only if the previous one is not itself an upper half.
        if (this.bar(i - 1).kind !== "upper") {
          const raw = this.read32(PCI_BASE_ADDRESS_0 + 4 * i);
          return { index: i, raw, kind: "upper", is64: false, prefetchable: false, address: 0n };
        }
      }
    }
    const raw = this.read32(PCI_BASE_ADDRESS_0 + 4 * i);
    if ((raw & PCI_BASE_ADDRESS_SPACE_IO) !== 0) {
      return {
        index: i,
        raw,
        kind: "io",
        is64: false,
        prefetchable: false,
        address: BigInt((raw & PCI_BASE_ADDRESS_IO_MASK) >>> 0),
      };
    }
    const is64 = (raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < PCI_STD_NUM_BARS;
    let address = BigInt((raw & PCI_BASE_ADDRESS_MEM_MASK) >>> 0);
    if (is64) address |= BigInt(this.read32(PCI_BASE_ADDRESS_0 + 4 * (i + 1))) << 32n;
    return { index: i, raw, kind: "memory", is64, prefetchable: (raw & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0, address };
  }

  /**
   * Walks the standard and extended capability lists (see `walkCapabilities`): never hangs on a bad list, reports
   * why it stopped in `malformed`.
   *
   * ```ts
   * import { ConfigSpace } from "./config.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * using cfg = ConfigSpace.open(dev);
   * for (const c of cfg.capabilities().capabilities) console.log(c.name, c.offset);
   * ```
   */
  capabilities(): CapabilityList {
    return walkCapabilities(this);
  }

  /** The first capability with this id (standard by default, or extended), if the device has one. */
  findCapability(id: number, extended = false): Capability | undefined {
    return this.capabilities().capabilities.find((c) => c.id === id && c.extended === extended);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#region.closed;
  }
  /** Closes; idempotent. Later accesses throw a `ClosedError`. */
  close(): void {
    this.#region.close();
  }
  /** Same as {@linkcode close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #setCommand(bits: number, on: boolean): void {
    const cmd = this.command;
    const next = on ? cmd | bits : cmd & ~bits;
    if (next !== cmd) this.command = next & 0xffff;
  }
}
