/**
 * vfio-ts: drive a PCI device from user space through Linux VFIO, from Deno or Bun.
 *
 * ```ts
 * import { IrqIndex, openDevice } from "@vfio-ts/vfio";
 * using dev = openDevice("0000:00:03.0");              // iommufd, type1, or (with { noiommu: true }) no-IOMMU
 * const bar0 = dev.bar(0);                              // mmapped, bounds-checked 8/16/32/64-bit access
 * console.log(bar0.read32(0).toString(16));
 * const buf = dev.allocDma(4096);                       // locked memory with a bus address for the device
 * using irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
 * await irqs.wait(0, { timeoutMs: 1000 });              // does not block the event loop
 * ```
 *
 * @module
 */
export * from "./iommu.ts";
export {
  type Capability,
  type CapabilityList,
  capabilityName,
  CapabilityView,
  type ConfigReader,
  configReaderFromBytes,
  findCapability,
  MsiCapability,
  MsixCapability,
  PciExpressCapability,
  PowerManagementCapability,
  walkCapabilities,
} from "./lib/capabilities.ts";
export { type BarRegister, ConfigSpace } from "./lib/config.ts";
export {
  Device,
  type DeviceFromFdOptions,
  type DeviceInfo,
  type DeviceParts,
  type DeviceSummary,
  type HotResetDependent,
  type Owned,
} from "./lib/device.ts";
export { deviceLoad } from "./lib/device_load.ts";
export { allocDma, DmaBuffer, type DmaBufferOptions, type DmaBufferSummary, type DmaView } from "./lib/dma/buffer.ts";
export { DmaMemory, type DmaMemoryOptions, HUGEPAGE_SIZE, type HugepagePolicy } from "./lib/dma/memory.ts";
export { physicalAddressOf, translatePages } from "./lib/dma/pagemap.ts";
export { allocDmaPool, DmaPool, type DmaPoolOptions } from "./lib/dma/pool.ts";
export * from "./lib/errors.ts";
export {
  createIovaSpace,
  IovaSpace,
  type IovaSpaceKind,
  type IovaSpaceLease,
  type IovaSpaceOptions,
} from "./lib/iova_space.ts";
export {
  type IrqEnableOptions,
  IrqEventFd,
  IrqIndex,
  type IrqIndexName,
  irqIndexName,
  type IrqInfo,
  irqInfo,
  irqInfoAll,
  IrqSet,
  type IrqSetSummary,
  type IrqWaitOptions,
  type IrqWaitSyncOptions,
  type SpinOptions,
  type WaitOptions,
} from "./lib/irq.ts";
export { type IommuChoice, openDevice, type OpenDeviceOptions } from "./lib/open.ts";
export { type MdevIommuChoice, openMediatedDevice, type OpenMediatedDeviceOptions } from "./lib/open_mdev.ts";
export { mapPeerRegion, type PeerMapping } from "./lib/p2p.ts";
export {
  DEFAULT_MAX_SPINS,
  type PacketQueue,
  type PolledRing,
  Poller,
  type PollerOptions,
  pollHelperStatus,
  type PollTarget,
  type QueueLayout,
  queueStateBytes,
  type RingLayout,
  spinUntil,
} from "./lib/poll.ts";
export {
  Region,
  type RegionInfo,
  regionInfo,
  regionName,
  type RegionOptions,
  type RegionSummary,
  type RegionType,
  type SparseMmapArea,
} from "./lib/region.ts";
export {
  openSharedWindow,
  type SharedWindow,
  type SharedWindowView,
  shareWindow,
  viewSharedWindow,
  windowBusAddress,
} from "./lib/shared_window.ts";
export { disableTrace, enableTrace, mmioTraced, tracedRegion, type TraceOptions } from "./lib/trace.ts";
export type { DeviceFd } from "./lib/types.ts";
export { checkVfToken, deviceNameWithToken, setVfToken, vfTokenBytes } from "./lib/vf_token.ts";
export * from "./sysfs.ts";
