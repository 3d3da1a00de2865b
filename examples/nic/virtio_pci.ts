/**
 * The virtio 1.x PCI transport ("modern" interface, spec section 4.1; `linux/virtio_pci.h`): vendor-specific PCI
 * capabilities point at the common configuration, notification, ISR and device configuration structures inside memory
 * BARs. {@linkcode findVirtioPci} walks `dev.config`'s capability list for them and {@linkcode MmioStruct} reads and
 * writes their fields by name with accesses of each field's own width, as the spec requires.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { findVirtioPci } from "./virtio_pci.ts";
 * using dev = openDevice("0000:00:07.0");
 * const vp = findVirtioPci(dev);
 * vp.common.set("device_feature_select", 1);
 * console.log(`features 32..63: 0x${vp.common.get("device_feature").toString(16)}, ${vp.common.get("num_queues")} queues`);
 * ```
 * @module
 */
import { defineStruct, type Fields, PCI_CAP_ID_VNDR, struct, type StructDef, u16, u32, u8 } from "../../abi.ts";
import { type Device, type Region, UnsupportedError, VfioError } from "../../mod.ts";

/** `struct virtio_pci_cap`: which structure (`cfg_type`), in which BAR, where and how long. */
export const VirtioPciCap = defineStruct("virtio_pci_cap", 16, {
  cap_vndr: u8(0),
  cap_next: u8(1),
  cap_len: u8(2),
  cfg_type: u8(3),
  bar: u8(4),
  id: u8(5),
  offset: u32(8),
  length: u32(12),
});
/** `struct virtio_pci_notify_cap`: the notify capability adds the multiplier of each queue's `queue_notify_off`. */
export const VirtioPciNotifyCap = defineStruct("virtio_pci_notify_cap", 20, {
  cap: struct(VirtioPciCap, 0),
  notify_off_multiplier: u32(16),
});
/** `struct virtio_pci_common_cfg`: features, status, and the selected queue's setup. */
export const VirtioPciCommonCfg = defineStruct("virtio_pci_common_cfg", 56, {
  device_feature_select: u32(0),
  device_feature: u32(4),
  guest_feature_select: u32(8),
  guest_feature: u32(12),
  msix_config: u16(16),
  num_queues: u16(18),
  device_status: u8(20),
  config_generation: u8(21),
  queue_select: u16(22),
  queue_size: u16(24),
  queue_msix_vector: u16(26),
  queue_enable: u16(28),
  queue_notify_off: u16(30),
  queue_desc_lo: u32(32), // the spec's le64 queue_desc, as Linux splits it: written low half first
  queue_desc_hi: u32(36),
  queue_avail_lo: u32(40),
  queue_avail_hi: u32(44),
  queue_used_lo: u32(48),
  queue_used_hi: u32(52),
});

/** `cfg_type` values (VIRTIO_PCI_CAP_*_CFG). */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
/** A vector number meaning "no MSI-X vector" (VIRTIO_MSI_NO_VECTOR). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Device status bits (VIRTIO_CONFIG_S_*). */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_FAILED = 0x80;
/** Transport feature bits (bit numbers). */
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;

/**
 * Field-by-name access to a structure in a memory BAR: each read or write has the width the struct gives the field
 * (8, 16 or 32 bits), as the spec requires of drivers.
 *
 * ```ts
 * import { MmioStruct, VirtioPciCommonCfg } from "./virtio_pci.ts";
 * declare const bar4: import("../../mod.ts").Region;
 * const common = new MmioStruct(VirtioPciCommonCfg, bar4, 0);
 * common.set("queue_select", 0);
 * console.log(common.get("queue_size"));
 * ```
 */
export class MmioStruct<F extends Fields> {
  /** The layout. */
  readonly def: StructDef<F>;
  readonly #region: Region;
  readonly #base: number;

  /** Views `def` at byte `base` of `region`. */
  constructor(def: StructDef<F>, region: Region, base: number) {
    this.def = def;
    this.#region = region;
    this.#base = base;
  }

  #field(name: keyof F & string): { kind: string; at: number } {
    const f = this.def.layout[name];
    if (f.kind !== "u8" && f.kind !== "u16" && f.kind !== "u32") {
      throw new VfioError(`${this.def.cName}.${name} is a ${f.kind} field, not a register`);
    }
    return { kind: f.kind, at: this.#base + f.offset };
  }

  /** Reads a field. */
  get(name: keyof F & string): number {
    const { kind, at } = this.#field(name);
    return kind === "u8" ? this.#region.read8(at) : kind === "u16" ? this.#region.read16(at) : this.#region.read32(at);
  }

  /** Writes a field. */
  set(name: keyof F & string, value: number): void {
    const { kind, at } = this.#field(name);
    if (kind === "u8") this.#region.write8(at, value);
    else if (kind === "u16") this.#region.write16(at, value);
    else this.#region.write32(at, value);
  }
}

/** Where one virtio structure is: its BAR, offset and length. */
export interface VirtioStructure {
  bar: number;
  offset: number;
  length: number;
}

/** The modern interface of a virtio PCI device, found by {@linkcode findVirtioPci}. */
export interface VirtioPci {
  /** The common configuration structure, by field name. */
  common: MmioStruct<typeof VirtioPciCommonCfg.layout>;
  /** The notification structure's BAR and the byte where queue notify offsets start. */
  notify: { region: Region; offset: number; length: number; multiplier: number };
  /** The ISR status byte (read to acknowledge an INTx interrupt; unused with MSI-X). */
  isr: { region: Region; offset: number };
  /** The device-specific configuration structure (`null` when the device has none). */
  device: { region: Region; offset: number; length: number } | null;
}

/** Reads a vendor capability's bytes out of config space (for a struct view). */
function capBytes(dev: Device, at: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length && at + i < dev.config.size; i++) out[i] = dev.config.read8(at + i);
  return out;
}

/**
 * Finds the common, notify, ISR and device configuration structures of a virtio 1.x PCI device (the first
 * capability of each type whose BAR is a memory BAR, as the spec asks drivers to), and maps their BARs. Throws
 * `UnsupportedError` when the device has no common or notify structure (a legacy-only device).
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { findVirtioPci } from "./virtio_pci.ts";
 * using dev = openDevice("0000:00:07.0");
 * console.log(findVirtioPci(dev).notify.multiplier);
 * ```
 */
export function findVirtioPci(dev: Device): VirtioPci {
  const found = new Map<number, VirtioStructure & { multiplier: number }>();
  for (const c of dev.config.capabilities().capabilities) {
    if (c.extended || c.id !== PCI_CAP_ID_VNDR) continue;
    const cap = VirtioPciCap.view(capBytes(dev, c.offset, VirtioPciNotifyCap.size));
    if (found.has(cap.cfg_type) || cap.cap_len < VirtioPciCap.size || cap.bar > 5) continue;
    if (dev.config.bar(cap.bar).kind !== "memory") continue; // memory BARs only
    const notify = cap.cfg_type === VIRTIO_PCI_CAP_NOTIFY_CFG && cap.cap_len >= VirtioPciNotifyCap.size
      ? VirtioPciNotifyCap.view(cap.bytes).notify_off_multiplier
      : 0;
    found.set(cap.cfg_type, { bar: cap.bar, offset: cap.offset, length: cap.length, multiplier: notify });
  }
  const common = found.get(VIRTIO_PCI_CAP_COMMON_CFG), notify = found.get(VIRTIO_PCI_CAP_NOTIFY_CFG);
  const isr = found.get(VIRTIO_PCI_CAP_ISR_CFG), device = found.get(VIRTIO_PCI_CAP_DEVICE_CFG);
  if (!common || !notify || !isr) {
    throw new UnsupportedError(`${dev.name} has no virtio 1.x common/notify/ISR capabilities (a legacy-only device)`, {
      remedy: "drive it with the legacy driver (virtio_net.ts), or give QEMU's device disable-legacy=on",
    });
  }
  if (common.length < VirtioPciCommonCfg.size) {
    throw new VfioError(`${dev.name}: virtio common configuration of ${common.length} bytes is too short`);
  }
  const bar = (i: number): Region => dev.bar(i); // mapped once, cached by the device
  return {
    common: new MmioStruct(VirtioPciCommonCfg, bar(common.bar), common.offset),
    notify: { region: bar(notify.bar), offset: notify.offset, length: notify.length, multiplier: notify.multiplier },
    isr: { region: bar(isr.bar), offset: isr.offset },
    device: device ? { region: bar(device.bar), offset: device.offset, length: device.length } : null,
  };
}

/**
 * Whether a virtio device has the modern (virtio 1.x) interface: a common configuration capability in a memory BAR.
 * A transitional device (1af4:1000 without `disable-modern=on`) has both interfaces; a legacy-only one has not.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { hasVirtioPci } from "./virtio_pci.ts";
 * using dev = openDevice("0000:00:06.0");
 * console.log(hasVirtioPci(dev) ? "modern" : "legacy only");
 * ```
 */
export function hasVirtioPci(dev: Device): boolean {
  return dev.config.capabilities().capabilities.some((c) => {
    if (c.extended || c.id !== PCI_CAP_ID_VNDR) return false;
    const cap = VirtioPciCap.view(capBytes(dev, c.offset, VirtioPciCap.size));
    return cap.cfg_type === VIRTIO_PCI_CAP_COMMON_CFG && cap.bar <= 5 && dev.config.bar(cap.bar).kind === "memory";
  });
}
