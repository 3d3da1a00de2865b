/**
 * An ixy-style poll-mode driver for a legacy virtio network device (1af4:1000; QEMU's `virtio-net-pci` with
 * `disable-modern=on`), after the virtio 1.x spec's legacy-interface sections: the register block in I/O BAR0
 * (which vfio-ts reaches through pread/pwrite on the device fd), split virtqueues in one 2 MiB hugepage, a 10-byte
 * `virtio_net_hdr` in front of every frame (no mergeable receive buffers), interrupts suppressed.
 *
 * Addresses: a legacy device cannot negotiate VIRTIO_F_ACCESS_PLATFORM, so it DMAs to physical addresses and
 * bypasses any IOMMU (QEMU then gives it the plain memory address space; Linux's virtio_ring uses physical
 * addresses for the same reason). This driver therefore hands it physical addresses (from /proc/self/pagemap; root
 * only) in every mode, and keeps its queues in a hugepage, whose physical addresses are contiguous. The memory is
 * still mapped for the device through the IOMMU like any DMA buffer, and pinned. The rings and the queue pair are
 * `virtio_queue.ts`'s, shared with the modern driver (`virtio_modern.ts`), which a 1af4:1041 device needs.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { VirtioNet } from "./virtio_net.ts";
 * const nic = new VirtioNet(openDevice("0000:00:06.0"), 1024);
 * console.log(nic.mac, nic.link());
 * nic.close();
 * ```
 * @module
 */
import { type Device, type DmaBuffer, type Region, translatePages, VfioError } from "../../mod.ts";
import { formatMac, type LinkStatus, type Packet, PacketPool } from "./nic.ts";
import { legacyQueueLayout, splitQueueBytes, VirtioNetPort, VirtioNetQueues, Virtqueue } from "./virtio_queue.ts";

// Legacy virtio PCI registers (I/O BAR0)
const DEVICE_FEATURES = 0x00; // u32, read-only
const GUEST_FEATURES = 0x04; // u32
const QUEUE_PFN = 0x08; // u32: address of the selected queue >> 12 (a physical address: see above)
const QUEUE_NUM = 0x0c; // u16, read-only: size of the selected queue
const QUEUE_SEL = 0x0e; // u16
const QUEUE_NOTIFY = 0x10; // u16: write a queue index to kick it
const DEVICE_STATUS = 0x12; // u8: 0 resets the device
const NET_MAC = 0x14; // device config without MSI-X: mac[6], then status u16
const NET_STATUS = 0x1a;

// Device status bits
const STATUS_ACKNOWLEDGE = 1;
const STATUS_DRIVER = 2;
const STATUS_DRIVER_OK = 4;
// Feature bits
const NET_F_MAC = 1 << 5;
const NET_F_STATUS = 1 << 16;
const F_ANY_LAYOUT = 1 << 27; // header and frame may share a descriptor
const NET_S_LINK_UP = 1;

const RX_QUEUE = 0;
const TX_QUEUE = 1;
const QUEUE_ALIGN = 4096; // legacy: QUEUE_PFN counts 4 KiB pages
const NET_HDR_SIZE = 10; // struct virtio_net_hdr without num_buffers

/**
 * One legacy virtio-net port.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { VirtioNet } from "./virtio_net.ts";
 * using nic = new VirtioNet(openDevice("0000:00:06.0"), 1024);
 * const bufs = new Array(32);
 * const n = nic.rxBatch(bufs, 32);
 * ```
 */
export class VirtioNet extends VirtioNetPort {
  readonly driver = "virtio-net";
  readonly mac: string;
  readonly #bar0: Region;
  readonly #features: number;
  readonly #rings: DmaBuffer;
  readonly #ringsPhys: number;

  /** Resets and starts the port; the device is owned (and closed) by the driver from here on. */
  constructor(dev: Device, poolSize: number) {
    super(dev);
    dev.config.enableIo();
    dev.config.enableBusMaster();
    const io = this.#bar0 = dev.bar(0);

    io.write8(DEVICE_STATUS, 0); // reset
    const t0 = performance.now();
    while (io.read8(DEVICE_STATUS) !== 0) {
      if (performance.now() - t0 > 1000) throw new VfioError(`virtio-net ${dev.name}: reset did not complete`);
    }
    io.write8(DEVICE_STATUS, STATUS_ACKNOWLEDGE);
    io.write8(DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.#features = io.read32(DEVICE_FEATURES) & (NET_F_MAC | NET_F_STATUS | F_ANY_LAYOUT);
    io.write32(GUEST_FEATURES, this.#features);
    const mac = this.#features & NET_F_MAC ? io.readBytes(NET_MAC, 6) : new Uint8Array(6);
    this.mac = formatMac(mac);

    const pool = new PacketPool(dev, poolSize);
    pool.translate();
    // Both queues in one hugepage: physically contiguous, as a device that bypasses the IOMMU needs.
    const sizes = [RX_QUEUE, TX_QUEUE].map((q) => this.#queueSize(q));
    const rxBytes = splitQueueBytes(sizes[0], legacyQueueLayout);
    this.#rings = dev.allocDma(rxBytes + splitQueueBytes(sizes[1], legacyQueueLayout), { hugepages: "require" });
    const pages = translatePages(this.#rings.vaddr, this.#rings.size);
    this.#ringsPhys = Number(pages[0]);
    this.queuePair = new VirtioNetQueues({
      rx: this.#queue(RX_QUEUE, 0, sizes[0]),
      tx: this.#queue(TX_QUEUE, rxBytes, sizes[1]),
      pool,
      headerBytes: NET_HDR_SIZE,
      addressOf: (p: Packet): number => {
        if (p.phys < 0) p.pool.translate(); // a buffer of another port's pool, seen for the first time
        return p.phys;
      },
      notify: (index: number): void => io.write16(QUEUE_NOTIFY, index),
      name: `virtio-net ${dev.name}`,
    });

    io.write8(DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    io.write16(QUEUE_NOTIFY, RX_QUEUE);
  }

  #queueSize(index: number): number {
    this.#bar0.write16(QUEUE_SEL, index);
    const size = this.#bar0.read16(QUEUE_NUM);
    if (size === 0) throw new VfioError(`virtio-net ${this.address}: queue ${index} does not exist`);
    return size;
  }

  #queue(index: number, base: number, size: number): Virtqueue {
    const io = this.#bar0;
    io.write16(QUEUE_SEL, index);
    io.write32(QUEUE_PFN, (this.#ringsPhys + base) / QUEUE_ALIGN); // legacy: 32-bit page frame number
    return new Virtqueue(this.#rings, legacyQueueLayout(base, size), size);
  }

  link(): LinkStatus {
    const up = this.#features & NET_F_STATUS ? (this.#bar0.read16(NET_STATUS) & NET_S_LINK_UP) !== 0 : true;
    return { up, speedMbps: null };
  }

  protected resetDevice(): void {
    this.#bar0.write8(DEVICE_STATUS, 0);
  }
}
