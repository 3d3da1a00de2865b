/**
 * An ixy-style driver for a modern (virtio 1.x) virtio network device: 1af4:1041 (QEMU's `virtio-net-pci` with
 * `disable-legacy=on`), or a transitional 1af4:1000 driven through its modern interface. After the virtio 1.x spec:
 * the structures found through vendor capabilities in memory BARs (`virtio_pci.ts`), feature negotiation with
 * FEATURES_OK, split virtqueues set up through the common configuration (`virtio_queue.ts`, shared with the legacy
 * driver), a 12-byte `virtio_net_hdr_v1` in front of every frame, and one MSI-X vector each for configuration
 * changes, the receive queue and the transmit queue.
 *
 * Addresses: with VIRTIO_F_ACCESS_PLATFORM negotiated the device DMAs through the platform's IOMMU, so every address
 * it is given is the DMA buffer's bus address: an IOVA in iommu and iommufd modes (no root, no pagemap, no
 * hugepages). In no-IOMMU mode bus addresses are physical ones, which is what a device without ACCESS_PLATFORM
 * wants. A device that lacks ACCESS_PLATFORM behind an IOMMU bypasses it: it gets physical addresses from
 * /proc/self/pagemap (root), as the legacy driver does.
 *
 * Receive is polled; {@linkcode VirtioNetModern.waitRx} turns the receive queue's interrupt on (clears
 * VRING_AVAIL_F_NO_INTERRUPT), sleeps on its MSI-X vector, and turns it off again, for poll → sleep → poll loops.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { VirtioNetModern } from "./virtio_modern.ts";
 * using nic = new VirtioNetModern(openDevice("0000:00:07.0"), 1024);
 * console.log(nic.mac, nic.link(), nic.addressing);
 * ```
 * @module
 */
import { bytes, defineStruct, u16 } from "../../abi.ts";
import { hex } from "../../lib/hex.ts";
import {
  type Device,
  type DmaBuffer,
  IrqIndex,
  type IrqSet,
  physicalAddressOf,
  UnsupportedError,
  VfioError,
} from "../../mod.ts";
import { formatMac, type LinkStatus, type Packet, PacketPool } from "./nic.ts";
import {
  findVirtioPci,
  MmioStruct,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_VERSION_1,
  type VirtioPci,
} from "./virtio_pci.ts";
import {
  modernQueueLayout,
  splitQueueBytes,
  VirtioNetHdrV1,
  VirtioNetPort,
  VirtioNetQueues,
  Virtqueue,
  type VirtqueueLayout,
} from "./virtio_queue.ts";

/** `struct virtio_net_config` (the fields this driver reads). */
export const VirtioNetConfig = defineStruct("virtio_net_config", 12, {
  mac: bytes(0, 6),
  status: u16(6),
  max_virtqueue_pairs: u16(8),
  mtu: u16(10),
});

// virtio-net feature bits (bit numbers)
const VIRTIO_NET_F_MAC = 5;
const VIRTIO_NET_F_STATUS = 16;
const VIRTIO_NET_S_LINK_UP = 1;

const RX_QUEUE = 0;
const TX_QUEUE = 1;
const MAX_QUEUE_SIZE = 256; // each ring part then fits in one 4 KiB page (see modernQueueLayout)
// MSI-X vectors: the config vector, then one per queue (as Linux's virtio_pci assigns them)
const CONFIG_VECTOR = 0;
const RX_VECTOR = 1;
const TX_VECTOR = 2;

const bit = (n: number): bigint => 1n << BigInt(n);

/** How the device is given addresses. */
export type VirtioAddressing = "iova" | "physical (no IOMMU)" | "physical (bypasses the IOMMU)";

/**
 * One modern virtio-net port.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { VirtioNetModern } from "./virtio_modern.ts";
 * using nic = new VirtioNetModern(openDevice("0000:00:07.0"), 1024);
 * const bufs = new Array(32);
 * let n = nic.rxBatch(bufs, 32);
 * if (n === 0 && await nic.waitRx(0, 100)) n = nic.rxBatch(bufs, 32);
 * ```
 */
export class VirtioNetModern extends VirtioNetPort {
  readonly driver = "virtio-net-modern";
  readonly mac: string;
  /** The features both sides agreed on. */
  readonly features: bigint;
  /** What addresses the device is given. */
  readonly addressing: VirtioAddressing;
  readonly #vp: VirtioPci;
  readonly #cfg: MmioStruct<typeof VirtioNetConfig.layout> | null;
  readonly #irqs: IrqSet;
  readonly #rings: DmaBuffer;
  readonly #notifyAt: number[] = []; // per queue: byte offset of its notify register in the notify BAR

  /** Resets, negotiates and starts the port; the device is owned (and closed) by the driver from here on. */
  constructor(dev: Device, poolSize: number) {
    super(dev);
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const vp = this.#vp = findVirtioPci(dev);
    const common = vp.common;
    const dc = vp.device;
    this.#cfg = dc && dc.length >= VirtioNetConfig.size ? new MmioStruct(VirtioNetConfig, dc.region, dc.offset) : null;

    // 3.1.1 Driver Requirements: Device Initialization
    this.#reset();
    common.set("device_status", VIRTIO_CONFIG_S_ACKNOWLEDGE);
    common.set("device_status", VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const offered = this.#deviceFeatures();
    if (!(offered & bit(VIRTIO_F_VERSION_1))) {
      this.#fail();
      throw new UnsupportedError(`virtio-net ${dev.name} does not offer VIRTIO_F_VERSION_1`, {
        remedy: "drive it with the legacy driver (virtio_net.ts)",
      });
    }
    const wanted = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ACCESS_PLATFORM) | bit(VIRTIO_NET_F_MAC) |
      bit(VIRTIO_NET_F_STATUS);
    this.features = offered & wanted;
    common.set("guest_feature_select", 0);
    common.set("guest_feature", Number(this.features & 0xffffffffn));
    common.set("guest_feature_select", 1);
    common.set("guest_feature", Number(this.features >> 32n));
    common.set("device_status", VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(common.get("device_status") & VIRTIO_CONFIG_S_FEATURES_OK)) {
      this.#fail();
      throw new VfioError(`virtio-net ${dev.name} refused features ${hex(this.features)} (FEATURES_OK)`);
    }
    const sizes = [RX_QUEUE, TX_QUEUE].map((q) => this.#queueSize(q));
    const bytesOf = sizes.map((s) => splitQueueBytes(s, modernQueueLayout));
    this.#rings = dev.allocDma(bytesOf[0] + bytesOf[1]); // no hugepage needed: see modernQueueLayout
    const noiommu = this.#rings.kind === "noiommu";
    this.addressing = noiommu
      ? "physical (no IOMMU)"
      : this.features & bit(VIRTIO_F_ACCESS_PLATFORM)
      ? "iova"
      : "physical (bypasses the IOMMU)";
    const physical = this.addressing === "physical (bypasses the IOMMU)";
    this.mac = formatMac(this.#cfg && this.features & bit(VIRTIO_NET_F_MAC) ? this.#readMac() : new Uint8Array(6));

    // MSI-X first, so the vectors the queues are given exist.
    this.#irqs = dev.enableIrqs(IrqIndex.MSIX, { count: 3 });
    common.set("msix_config", CONFIG_VECTOR);
    if (common.get("msix_config") !== CONFIG_VECTOR) throw this.#noVector("the configuration");

    const pool = new PacketPool(dev, poolSize);
    if (physical) pool.translate();
    const rx = this.#setupQueue(RX_QUEUE, modernQueueLayout(0, sizes[0]), sizes[0], RX_VECTOR, physical);
    const tx = this.#setupQueue(TX_QUEUE, modernQueueLayout(bytesOf[0], sizes[1]), sizes[1], TX_VECTOR, physical);
    const notify = vp.notify;
    this.queuePair = new VirtioNetQueues({
      rx,
      tx,
      pool,
      headerBytes: VirtioNetHdrV1.size,
      addressOf: physical
        ? (p: Packet): number => {
          if (p.phys < 0) p.pool.translate(); // a buffer of another port's pool, seen for the first time
          return p.phys;
        }
        : (p: Packet): number => p.bus,
      notify: (index: number): void => notify.region.write16(this.#notifyAt[index], index),
      name: `virtio-net ${dev.name}`,
    });
    common.set(
      "device_status",
      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
        VIRTIO_CONFIG_S_DRIVER_OK,
    );
    notify.region.write16(this.#notifyAt[RX_QUEUE], RX_QUEUE);
  }

  #deviceFeatures(): bigint {
    const common = this.#vp.common;
    common.set("device_feature_select", 0);
    const lo = common.get("device_feature");
    common.set("device_feature_select", 1);
    return BigInt(lo) | (BigInt(common.get("device_feature")) << 32n);
  }

  /** The MAC, read byte by byte as the spec asks, again while config_generation changes meanwhile. */
  #readMac(): Uint8Array {
    const common = this.#vp.common, { region, offset } = this.#vp.device!;
    const at = offset + VirtioNetConfig.layout.mac.offset, mac = new Uint8Array(6);
    for (;;) {
      const generation = common.get("config_generation");
      for (let i = 0; i < mac.length; i++) mac[i] = region.read8(at + i);
      if (common.get("config_generation") === generation) return mac;
    }
  }

  #reset(): void {
    const common = this.#vp.common;
    common.set("device_status", 0);
    const t0 = performance.now();
    while (common.get("device_status") !== 0) {
      if (performance.now() - t0 > 1000) throw new VfioError(`virtio-net ${this.address}: reset did not complete`);
    }
  }

  #fail(): void {
    this.#vp.common.set("device_status", this.#vp.common.get("device_status") | VIRTIO_CONFIG_S_FAILED);
  }

  #noVector(what: string): VfioError {
    return new VfioError(`virtio-net ${this.address} has no MSI-X vector for ${what}`, {
      remedy: "give QEMU's device vectors=3 or more",
    });
  }

  #queueSize(index: number): number {
    const common = this.#vp.common;
    common.set("queue_select", index);
    const max = common.get("queue_size");
    if (max === 0) throw new VfioError(`virtio-net ${this.address}: queue ${index} does not exist`);
    return Math.min(max, MAX_QUEUE_SIZE);
  }

  /** 4.1.5.1.3 Virtqueue Configuration: size, vector, the three addresses, then queue_enable. */
  #setupQueue(index: number, layout: VirtqueueLayout, size: number, vector: number, physical: boolean): Virtqueue {
    const common = this.#vp.common, rings = this.#rings;
    const addr = (offset: number): bigint =>
      physical ? physicalAddressOf(rings.vaddr + BigInt(offset)) : rings.busAddress(offset);
    common.set("queue_select", index);
    common.set("queue_size", size);
    common.set("queue_msix_vector", vector);
    if (common.get("queue_msix_vector") !== vector) throw this.#noVector(`queue ${index}`);
    for (const [part, at] of [["desc", layout.desc], ["avail", layout.avail], ["used", layout.used]] as const) {
      const a = addr(at);
      common.set(`queue_${part}_lo`, Number(a & 0xffffffffn));
      common.set(`queue_${part}_hi`, Number(a >> 32n));
    }
    const at = this.#vp.notify.offset + common.get("queue_notify_off") * this.#vp.notify.multiplier;
    if (at + 2 > this.#vp.notify.offset + this.#vp.notify.length) {
      throw new VfioError(`virtio-net ${this.address}: queue ${index}'s notify address lies outside its structure`);
    }
    this.#notifyAt[index] = at;
    const vq = new Virtqueue(rings, layout, size);
    common.set("queue_enable", 1);
    return vq;
  }

  link(): LinkStatus {
    const up = this.#cfg && this.features & bit(VIRTIO_NET_F_STATUS)
      ? (this.#cfg.get("status") & VIRTIO_NET_S_LINK_UP) !== 0
      : true;
    return { up, speedMbps: null };
  }

  /**
   * Arms the receive queue's interrupt (clears VRING_AVAIL_F_NO_INTERRUPT), waits for its MSI-X vector up to
   * `timeoutMs`, and suppresses the interrupt again. Resolves at once when frames are already waiting.
   */
  async waitRx(queue: number, timeoutMs: number): Promise<boolean> {
    this.check(queue);
    const rx = this.queuePair.rx;
    this.#irqs.poll(RX_VECTOR); // forget interrupts from before
    rx.interrupts = true; // a sequentially consistent store: ordered before the check below
    try {
      if (rx.pending()) return true;
      return await this.#irqs.wait(RX_VECTOR, { timeoutMs }) > 0 || rx.pending();
    } finally {
      if (!this.stopped) rx.interrupts = false;
    }
  }

  protected resetDevice(): void {
    this.#reset();
  }
}
