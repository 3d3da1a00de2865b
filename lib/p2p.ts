/**
 * Peer-to-peer DMA: one device's BAR as a DMA target of another. {@linkcode mapPeerRegion} gives a bus address at
 * which the device behind `mapper` reaches a mmapped region (a BAR) of another device:
 * - **type1**: the BAR's mapping (a PFN map of MMIO, no struct pages) is mapped into the container with
 *   `VFIO_IOMMU_MAP_DMA`; type1 follows the PFN map, so the IOVA leads to the peer's BAR.
 * - **iommufd** (Linux 6.12): `IOMMU_IOAS_MAP` pins user pages, and MMIO has none: the kernel refuses the BAR
 *   (`EFAULT`), so this throws an {@linkcode UnsupportedError}; use the type1 path (or its compat form is
 *   iommufd too, with the same limit) for peer-to-peer on this kernel.
 * - **no-IOMMU**: the bus address is the BAR's own bus address from sysfs (nothing to map).
 *
 * ```ts ignore
 * const cmb = nvme.bar(2);
 * using peer = mapPeerRegion(edu.dmaMapper, cmb, nvme.name);
 * edu.bar(0).write64(0x88, peer.busAddress(0)); // edu's DMA destination: nvme's controller memory buffer
 * ```
 * @module
 */
import { SystemError, UnsupportedError, VfioError } from "./errors.ts";
import type { DmaMapper, DmaMapping } from "./iommu/types.ts";
import type { Region } from "./region.ts";
import { pciDevice } from "./sysfs/pci.ts";

/** A peer region made reachable for DMA: its bus addresses for the mapper's devices, and the unmap. */
export interface PeerMapping extends Disposable {
  /** The bus address (IOVA, or physical address without an IOMMU) of the byte at `offset` of the region. */
  busAddress(offset?: number): bigint;
  /** The region's size in bytes. */
  readonly sizeBytes: number;
  /** Removes the mapping (idempotent); do it before closing the region. */
  close(): void;
}

/**
 * Makes `region` (a mmapped BAR of device `peer`, its PCI address) reachable by the DMA of the devices behind
 * `mapper`; see the module documentation for what each IOMMU path allows.
 *
 * ```ts ignore
 * using peer = mapPeerRegion(edu.dmaMapper, nvme.bar(2), nvme.name);
 * ```
 */
export function mapPeerRegion(mapper: DmaMapper, region: Region, peer: string): PeerMapping {
  const size = region.size;
  if (mapper.kind === "noiommu") {
    const bar = pciDevice(peer).bars.find((b) => b.index === region.index);
    if (!bar || bar.kind !== "memory") {
      throw new UnsupportedError(`${peer} ${region.name} is not a memory BAR`, {
        remedy: "peer-to-peer DMA reaches memory BARs only",
      });
    }
    return peerMapping(null, (offset) => bar.start + BigInt(offset), size);
  }
  if (!region.mapped) {
    throw new UnsupportedError(`${peer} ${region.name} is not mmapped`, {
      remedy: "only an mmapped BAR can be mapped for peer-to-peer DMA",
    });
  }
  let mapping: DmaMapping;
  try {
    mapping = mapper.map(region.unsafeAddress, size);
  } catch (e) {
    const sys = e instanceof SystemError ? e : (e as { cause?: unknown })?.cause;
    if (mapper.kind === "iommufd" && sys instanceof SystemError) {
      throw new UnsupportedError(
        `iommufd cannot map ${peer} ${region.name} for peer-to-peer DMA (${sys.code}): IOMMU_IOAS_MAP pins pages, ` +
          "and a BAR (MMIO) has none (Linux 6.12)",
        { remedy: "open both devices through the type1 path (iommu: type1) for peer-to-peer DMA", cause: e },
      );
    }
    throw e;
  }
  return peerMapping(mapping, (offset) => mapping.busAddress(offset), size);
}

function peerMapping(mapping: DmaMapping | null, at: (offset: number) => bigint, size: number): PeerMapping {
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    mapping?.unmap();
  };
  return {
    sizeBytes: size,
    busAddress(offset = 0): bigint {
      if (closed) throw new VfioError("the peer mapping is closed");
      if (!Number.isSafeInteger(offset) || offset < 0 || offset >= size) {
        throw new VfioError(`offset ${offset} is outside the peer region (${size} bytes)`);
      }
      return at(offset);
    },
    close,
    [Symbol.dispose]: close,
  };
}
