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
 * still mapped for the device through the IOMMU like any DMA buffer, and pinned. The used ring's index and entries are read with `Atomics.load` (DmaBuffer.read32), and the avail
 * index is published with `Atomics.store`, so neither runtime's JIT reorders or hoists them.
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
import {
  formatMac,
  HEADROOM,
  type LinkStatus,
  MAX_FRAME,
  type Nic,
  type NicStats,
  type Packet,
  PacketPool,
} from "./nic.ts";

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
const QUEUE_ALIGN = 4096; // legacy: the used ring starts on the next 4 KiB boundary
const DESC_F_WRITE = 2; // the device writes this buffer
const AVAIL_F_NO_INTERRUPT = 1;
const USED_F_NO_NOTIFY = 1;
const NET_HDR_SIZE = 10; // struct virtio_net_hdr without num_buffers

const TWO32 = 2 ** 32;

/** Bytes a legacy split virtqueue of `size` entries takes: descriptors, avail ring, then the 4 KiB-aligned used ring. */
function queueBytes(size: number): number {
  return Math.ceil((16 * size + 6 + 2 * size) / QUEUE_ALIGN) * QUEUE_ALIGN +
    Math.ceil((6 + 8 * size) / QUEUE_ALIGN) * QUEUE_ALIGN;
}

/** One split virtqueue at byte `base` of a DMA buffer: descriptor table, avail ring, used ring. */
class Virtqueue {
  readonly size: number;
  readonly mem: DmaBuffer;
  readonly u32: Uint32Array;
  readonly u16: Uint16Array;
  readonly descAt: number; // u32 index of desc[0]
  readonly availIdxAt: number; // u16 index of avail.idx
  readonly availRingAt: number; // u16 index of avail.ring[0]
  readonly usedAt: number; // byte offset of the used ring (flags u16, idx u16, then {id u32, len u32}[size])
  availIdx = 0;
  lastUsed = 0;

  constructor(mem: DmaBuffer, base: number, size: number) {
    this.size = size;
    this.mem = mem;
    this.u32 = mem.u32;
    this.u16 = mem.u16;
    const availAt = base + 16 * size;
    this.descAt = base / 4;
    this.usedAt = base + Math.ceil((16 * size + 6 + 2 * size) / QUEUE_ALIGN) * QUEUE_ALIGN;
    this.availIdxAt = (availAt + 2) / 2;
    this.availRingAt = (availAt + 4) / 2;
    this.u16[availAt / 2] = AVAIL_F_NO_INTERRUPT; // we poll
  }

  setDesc(i: number, addr: number, len: number, flags: number): void {
    const w = this.descAt + i * 4, u32 = this.u32;
    u32[w] = addr % TWO32;
    u32[w + 1] = Math.floor(addr / TWO32);
    u32[w + 2] = len;
    u32[w + 3] = flags; // next = 0
  }

  /** Puts descriptor `id` in the avail ring (not yet visible to the device). */
  offer(id: number): void {
    this.u16[this.availRingAt + (this.availIdx % this.size)] = id;
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  /** Makes the offered descriptors visible; returns true when the device asks to be notified. */
  publish(): boolean {
    Atomics.store(this.u16, this.availIdxAt, this.availIdx); // ordered after the descriptor and ring stores
    return (this.mem.read32(this.usedAt) & USED_F_NO_NOTIFY) === 0;
  }

  /** The device's used index (Atomics.load). */
  usedIdx(): number {
    return this.mem.read32(this.usedAt) >>> 16;
  }

  usedId(slot: number): number {
    return this.mem.read32(this.usedAt + 4 + 8 * slot);
  }

  usedLen(slot: number): number {
    return this.mem.read32(this.usedAt + 8 + 8 * slot);
  }
}

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
export class VirtioNet implements Nic {
  readonly driver = "virtio-net";
  readonly queues = 1;
  readonly address: string;
  readonly mac: string;
  readonly pool: PacketPool;
  readonly rxRingSize: number;
  readonly txRingSize: number;
  readonly #dev: Device;
  readonly #bar0: Region;
  readonly #features: number;
  readonly #rings: DmaBuffer;
  readonly #ringsPhys: number;
  readonly #rxq: Virtqueue;
  readonly #txq: Virtqueue;
  readonly #rxBufs: Packet[] = [];
  readonly #txBufs: (Packet | null)[];
  readonly #txFree: Uint16Array; // stack of free transmit descriptor ids
  #txFreeTop: number;
  #stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "driver" };
  #stopped = false;
  #closed = false;

  /** Resets and starts the port; the device is owned (and closed) by the driver from here on. */
  constructor(dev: Device, poolSize: number) {
    this.#dev = dev;
    this.address = dev.name;
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

    this.pool = new PacketPool(dev, poolSize);
    this.pool.translate();
    // Both queues in one hugepage: physically contiguous, as a device that bypasses the IOMMU needs.
    const sizes = [RX_QUEUE, TX_QUEUE].map((q) => this.#queueSize(q));
    this.#rings = dev.allocDma(queueBytes(sizes[0]) + queueBytes(sizes[1]), { hugepages: "require" });
    const pages = translatePages(this.#rings.vaddr, this.#rings.sizeBytes);
    this.#ringsPhys = Number(pages[0]);
    this.#rxq = this.#queue(RX_QUEUE, 0, sizes[0]);
    this.#txq = this.#queue(TX_QUEUE, queueBytes(sizes[0]), sizes[1]);
    this.rxRingSize = this.#rxq.size;
    this.txRingSize = this.#txq.size;

    // Every receive descriptor gets a buffer: header in the headroom's last 10 bytes, then room for a frame.
    for (let i = 0; i < this.#rxq.size; i++) {
      const p = this.pool.alloc();
      if (!p) {
        throw new VfioError(`virtio-net: a pool of ${poolSize} buffers cannot fill a ${this.#rxq.size}-entry queue`);
      }
      this.#rxBufs.push(p);
      this.#rxq.setDesc(i, p.phys - NET_HDR_SIZE, NET_HDR_SIZE + MAX_FRAME, DESC_F_WRITE);
      this.#rxq.offer(i);
    }
    this.#rxq.publish();
    this.#txBufs = new Array(this.#txq.size).fill(null);
    this.#txFree = Uint16Array.from({ length: this.#txq.size }, (_, i) => this.#txq.size - 1 - i);
    this.#txFreeTop = this.#txq.size;

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
    return new Virtqueue(this.#rings, base, size);
  }

  #check(): void {
    if (this.#stopped) throw new VfioError(`virtio-net ${this.address} is stopped`);
  }

  link(): LinkStatus {
    const up = this.#features & NET_F_STATUS ? (this.#bar0.read16(NET_STATUS) & NET_S_LINK_UP) !== 0 : true;
    return { up, speedMbps: null };
  }

  rxBatch(bufs: Packet[], n: number): number {
    this.#check();
    const q = this.#rxq, used = q.usedIdx();
    let k = 0;
    while (k < n && q.lastUsed !== used) {
      const fresh = this.pool.alloc();
      if (!fresh) break; // no buffer to put back: leave the frame for the next call
      const slot = q.lastUsed % q.size;
      const id = q.usedId(slot);
      const p = this.#rxBufs[id];
      p.length = q.usedLen(slot) - NET_HDR_SIZE;
      bufs[k++] = p;
      this.#stats.rxBytes += p.length;
      this.#rxBufs[id] = fresh;
      q.setDesc(id, fresh.phys - NET_HDR_SIZE, NET_HDR_SIZE + MAX_FRAME, DESC_F_WRITE);
      q.offer(id);
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    if (k > 0) {
      this.#stats.rxPackets += k;
      if (q.publish()) this.#bar0.write16(QUEUE_NOTIFY, RX_QUEUE);
    }
    return k;
  }

  #clean(): void {
    const q = this.#txq, used = q.usedIdx();
    while (q.lastUsed !== used) {
      const id = q.usedId(q.lastUsed % q.size);
      this.#txBufs[id]!.free();
      this.#txBufs[id] = null;
      this.#txFree[this.#txFreeTop++] = id;
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
  }

  txBatch(bufs: Packet[], n: number): number {
    this.#check();
    this.#clean();
    const q = this.#txq;
    let k = 0;
    for (; k < n && this.#txFreeTop > 0; k++) {
      const p = bufs[k], id = this.#txFree[--this.#txFreeTop];
      if (p.phys < 0) p.pool.translate(); // a buffer of another port's pool, seen for the first time
      p.entry.fill(0, HEADROOM - NET_HDR_SIZE, HEADROOM); // no offloads: an all-zero header
      q.setDesc(id, p.phys - NET_HDR_SIZE, NET_HDR_SIZE + p.length, 0);
      this.#txBufs[id] = p;
      q.offer(id);
      this.#stats.txBytes += p.length;
    }
    if (k > 0) {
      this.#stats.txPackets += k;
      if (q.publish()) this.#bar0.write16(QUEUE_NOTIFY, TX_QUEUE);
    }
    return k;
  }

  txPending(): number {
    if (this.#stopped) return 0;
    this.#clean();
    return this.#txq.size - this.#txFreeTop;
  }

  stats(): NicStats {
    return { ...this.#stats };
  }

  stop(): void {
    if (this.#stopped || this.#closed) return;
    this.#stopped = true;
    this.#bar0.write8(DEVICE_STATUS, 0); // reset: the device lets go of both queues
  }

  close(): void {
    if (this.#closed) return;
    try {
      this.stop();
    } finally {
      this.#closed = true;
      this.#dev.close(); // frees the queues and the pool with it
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
