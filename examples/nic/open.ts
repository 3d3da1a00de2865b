/**
 * Opening a port: {@linkcode openNic} picks the example driver from the PCI vendor and device ID; helpers wait for
 * the link and for the transmit ring to drain.
 *
 * ```ts
 * import { openNic, waitForLink } from "./open.ts";
 * using nic = openNic("0000:00:05.0");
 * console.log(nic.driver, nic.mac, await waitForLink(nic));
 * ```
 * @module
 */
import { hex, hexDigits } from "../../lib/hex.ts";
import { openDevice, UnsupportedError, VfioError } from "../../mod.ts";
import { E1000e } from "./e1000e.ts";
import { Igb, IGB_MAX_QUEUES } from "./igb.ts";
import { IgbVf } from "./igbvf.ts";
import type { LinkStatus, Nic } from "./nic.ts";
import { VirtioNetModern } from "./virtio_modern.ts";
import { VirtioNet } from "./virtio_net.ts";
import { hasVirtioPci } from "./virtio_pci.ts";

/** Options of {@linkcode openNic}. */
export interface NicOptions {
  /** Open the device in no-IOMMU mode (see `openDevice`). */
  noiommu?: boolean;
  /** Packet buffers in the port's pool (default 1024, and 512 per queue pair beyond two). */
  poolSize?: number;
  /**
   * Queue pairs to set up where the device has several (igb: up to 4, received flows spread by RSS); devices with
   * one queue pair ignore it. {@linkcode Nic.queues} says how many the port got. Default 1.
   */
  queues?: number;
}

/** PCI IDs of the supported devices. */
export const NIC_IDS: Readonly<Record<string, string>> = {
  "8086:10d3": "e1000e", // Intel 82574L (QEMU's e1000e)
  "8086:10c9": "igb", // Intel 82576 (QEMU's igb)
  "1af4:1000": "virtio-net", // legacy/transitional virtio network device
  "1af4:1041": "virtio-net-modern", // modern-only (virtio 1.x) virtio network device
  "8086:10ca": "igbvf", // Intel 82576 virtual function (QEMU's igbvf), its PF on the kernel's igb
};

/**
 * Opens a NIC at `address` with the driver its vendor:device ID calls for; the port is ready to send and receive
 * once {@linkcode waitForLink} says the link is up.
 *
 * ```ts
 * import { openNic } from "./open.ts";
 * using nic = openNic("0000:00:06.0", { noiommu: false });
 * console.log(nic.driver, nic.mac);
 * ```
 */
export function openNic(address: string, options: NicOptions = {}): Nic {
  const dev = openDevice(address, { noiommu: options.noiommu });
  try {
    const id = `${hexDigits(dev.config.vendorId, 4)}:${hexDigits(dev.config.deviceId, 4)}`;
    const queues = options.queues ?? 1;
    const poolSize = options.poolSize ?? Math.max(1024, 512 * queues);
    switch (NIC_IDS[id]) {
      case "e1000e":
        return new E1000e(dev, poolSize);
      case "igb":
        return new Igb(dev, poolSize, Math.min(queues, IGB_MAX_QUEUES));
      case "virtio-net": // transitional: the modern interface when it has one (it can use the IOMMU)
        return hasVirtioPci(dev) ? new VirtioNetModern(dev, poolSize) : new VirtioNet(dev, poolSize);
      case "virtio-net-modern":
        return new VirtioNetModern(dev, poolSize);
      case "igbvf":
        return new IgbVf(dev, poolSize);
    }
    throw new UnsupportedError(`${address} (${id}) is not a NIC these examples drive`, {
      remedy: `use one of ${Object.entries(NIC_IDS).map(([k, v]) => `${v} (${k})`).join(", ")}`,
    });
  } catch (e) {
    dev.close();
    throw e;
  }
}

/** Polls the link until it is up (throws after `timeoutMs`), without blocking the event loop. */
export async function waitForLink(nic: Nic, timeoutMs = 10_000): Promise<LinkStatus> {
  const t0 = Date.now();
  for (;;) {
    const link = nic.link();
    if (link.up) return link;
    if (Date.now() - t0 > timeoutMs) {
      throw new VfioError(`${nic.driver} ${nic.address}: no link after ${timeoutMs} ms`, {
        remedy: "check the cable (or the emulator's netdev), or wait longer",
      });
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One line about a port that is up: driver, address, MAC, link speed, ring sizes, and where its buffers are. */
export function portSummary(nic: Nic, link: LinkStatus): string {
  return `${nic.driver} ${nic.address} mac ${nic.mac} link up${link.speedMbps ? ` ${link.speedMbps} Mbit/s` : ""}, ` +
    `${
      nic.queues > 1 ? `${nic.queues} queue pairs, ` : ""
    }rings ${nic.rxRingSize}/${nic.txRingSize}, buffers at bus address ${hex(nic.pool.busAddress)}`;
}

/** Waits (busy, up to `timeoutMs`) until every frame queued on `nic` has left. Returns the frames still queued. */
export function drainTx(nic: Nic, timeoutMs = 1000): number {
  const t0 = performance.now();
  let pending = nic.txPending();
  while (pending > 0 && performance.now() - t0 < timeoutMs) pending = nic.txPending();
  return pending;
}
