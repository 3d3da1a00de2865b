/**
 * What the VM rig tells an integration test about its guest (see tests/vm/README.md), read in one place: the
 * mode, the devices of each kind, the devices left on kernel drivers, the hubs, the DMA address options; a device
 * opener for the mode that releases what a failed test left open; skips that print their reason.
 *
 * ```ts
 * import { afterEach, test } from "node:test";
 * import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";
 * afterEach(releaseDevices);
 * test("edu", { skip: skipIf(guest.edu, "edu") }, () => {
 *   using dev = openInGuest(guest.edu!);
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import process from "node:process";
import type { Device } from "../../lib/device.ts";
import { openDevice, type OpenDeviceOptions } from "../../lib/open.ts";
import { skipBecause } from "../skip.ts";

export { skipBecause };

const env = process.env;
const all = (v: string | undefined): string[] => (v ?? "").split(",").filter(Boolean);
const first = (v: string | undefined): string | undefined => all(v)[0];

function iovaBase(v: string | undefined): bigint | undefined {
  return v ? BigInt(v.replaceAll("_", "")) : undefined;
}

/** The guest as the rig describes it (all `undefined`/empty outside the VM). */
export const guest = {
  /** Running inside the rig's guest. */
  inVm: env.VFIO_TS_IN_VM === "1",
  /** `noiommu`, `iommu` or `iommufd`. */
  mode: env.VFIO_TS_MODE ?? "",
  /** `deno` or `bun`: the runtime the rig started. */
  runtime: env.VFIO_TS_RUNTIME ?? "",
  /** The runtime binaries in the guest (`VFIO_TS_DENO`, `VFIO_TS_BUN`). */
  bins: { deno: env.VFIO_TS_DENO ?? "deno", bun: env.VFIO_TS_BUN ?? "bun" },
  /** Interrupt remapping of the emulated IOMMU: `on` or `off`. */
  intremap: env.VFIO_TS_INTREMAP ?? "",
  /** The first edu on vfio-pci. */
  edu: first(env.VFIO_TS_EDU),
  /** Every device on vfio-pci, by kind. */
  devices: {
    edu: all(env.VFIO_TS_EDU),
    nvme: all(env.VFIO_TS_NVME),
    e1000e: all(env.VFIO_TS_E1000E),
    virtioNet: all(env.VFIO_TS_VIRTIO_NET),
    virtioNetModern: all(env.VFIO_TS_VIRTIO_NET_MODERN),
  },
  /** The first nvme on vfio-pci. */
  nvme: first(env.VFIO_TS_NVME),
  /** The first e1000e on vfio-pci. */
  e1000e: first(env.VFIO_TS_E1000E),
  /** The first legacy virtio-net on vfio-pci. */
  virtioNet: first(env.VFIO_TS_VIRTIO_NET),
  /** Devices the rig left on their kernel drivers. */
  kernelDevices: all(env.VFIO_TS_KERNEL_DEVICES),
  /** The QEMU hubs (`VFIO_TS_HUBS` "0=addr,addr;1=addr"): the NIC addresses on each, by hub number order. */
  hubs: (env.VFIO_TS_HUBS ?? "").split(";").filter(Boolean).map((h) => all(h.split("=")[1])),
  /** The IOVA base the rig asked for (`--iova-base`; the library reads `VFIO_TS_IOVA_BASE` itself). */
  iovaBase: iovaBase(env.VFIO_TS_IOVA_BASE),
  /** `--high-dma`: every DMA bus address must be at or above 4 GiB (IOVAs by the base, physical by the RAM layout). */
  highDma: env.VFIO_TS_HIGH_DMA === "1",
  /** `["--noiommu"]` in the no-IOMMU mode, for the examples' command lines. */
  noiommuFlag: env.VFIO_TS_MODE === "noiommu" ? ["--noiommu"] : [],
  /** The first ivshmem-plain on vfio-pci (the rig's `--devices ivshmem`). */
  ivshmem: first(env.VFIO_TS_IVSHMEM),
  /** The soak test's counts (`VFIO_TS_SOAK_DMA`, `VFIO_TS_SOAK_IRQS`; 0 or unset: its defaults). */
  soak: { dma: Number(env.VFIO_TS_SOAK_DMA) || 0, irqs: Number(env.VFIO_TS_SOAK_IRQS) || 0 },
};

/** 4 GiB: a DMA address at or above it has non-zero upper 32 bits. */
export const FOUR_GIB = 1n << 32n;

/**
 * With the rig's `--high-dma`, checks that every bus address `pattern` (first group: hex) finds in an example's
 * output is at or above 4 GiB (and at or above the IOVA base with an IOMMU), and that there is one. Without it, nothing.
 */
export function assertHighDma(out: string, pattern: RegExp): void {
  if (!guest.highDma) return;
  const found = [
    ...out.matchAll(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`)),
  ];
  assert.ok(found.length > 0, `--high-dma: no bus address matching ${pattern} in the output:\n${out}`);
  const floor = guest.mode !== "noiommu" && guest.iovaBase !== undefined ? guest.iovaBase : FOUR_GIB;
  for (const m of found) {
    assert.ok(
      BigInt(m[1]) >= floor,
      `--high-dma: bus address ${m[1]} is below 0x${floor.toString(16)} (${guest.mode})`,
    );
  }
}

/**
 * A `skip` value for `node:test`: outside the guest, or when the guest has no `what` at `address`. The reason is
 * printed (`SKIP: file: name: reason`).
 */
export function skipIf(address: string | undefined, what: string, name = ""): string | false {
  return skipBecause(
    !guest.inVm ? "outside the VM rig (VFIO_TS_IN_VM unset)" : !address && `no ${what} in the guest`,
    name,
  );
}

/** A `skip` value: outside the guest, else `reason` (or `false`); printed as {@linkcode skipBecause} does. */
export function skipUnless(reason: string | false | undefined | null, name = ""): string | false {
  return skipBecause(!guest.inVm ? "outside the VM rig (VFIO_TS_IN_VM unset)" : reason, name);
}

/** Devices opened by {@linkcode openInGuest} and not closed yet. */
const held = new Map<string, Device>();

/**
 * Closes every device {@linkcode openInGuest} opened that is still open, and returns how many there were. Register
 * it with `afterEach` so a failing test does not leave a device open for the next ("already open").
 */
export function releaseDevices(): number {
  let n = 0;
  for (const [address, dev] of [...held]) {
    held.delete(address);
    if (dev.closed) continue;
    n++;
    console.log(`RELEASED: ${address} was left open by a test (closed after it)`);
    try {
      dev.close();
    } catch (e) {
      console.log(`RELEASED: closing ${address} failed: ${e}`);
    }
  }
  return n;
}

/**
 * Opens a device through the library on the IOMMU path the rig's mode offers (no-IOMMU opted into there), and
 * remembers it so {@linkcode releaseDevices} (in `afterEach`) closes it when the test forgets, or fails before it
 * closes the device itself.
 */
export function openInGuest(address: string, options: OpenDeviceOptions = {}): Device {
  const dev = openDevice(address, { noiommu: guest.mode === "noiommu", ...options });
  held.set(address, dev);
  return dev;
}
