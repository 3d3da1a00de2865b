/**
 * What both example virtio-net drivers (legacy `virtio_net.ts`, modern `virtio_modern.ts`) share: the split
 * virtqueue of the virtio 1.x spec (section 2.7; `linux/virtio_ring.h`) and the receive/transmit queue pair built on
 * two of them. The drivers differ only in how they find and set up the queues, which addresses they hand the device,
 * how they notify it and how long its per-packet header is; the rings themselves are the same.
 *
 * The used ring's index and entries are read with `deviceLoad` (DmaBuffer.read32), and the avail index is published
 * with `Atomics.store`, so neither runtime's JIT reorders or hoists them.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { modernQueueLayout, splitQueueBytes, Virtqueue } from "./virtio_queue.ts";
 * using dev = openDevice("0000:00:07.0");
 * const mem = dev.allocDma(splitQueueBytes(256, modernQueueLayout));
 * const vq = new Virtqueue(mem, modernQueueLayout(0, 256), 256);
 * console.log(vq.size, mem.busAddress(vq.layout.desc));
 * ```
 * @module
 */
import { defineStruct, u16, u32, u64, u8 } from "../../abi.ts";
import { type DmaBuffer, OutOfRangeError, VfioError } from "../../mod.ts";
import { HEADROOM, type LinkStatus, MAX_FRAME, type Nic, type NicStats, type Packet, type PacketPool } from "./nic.ts";
import { NicPort } from "./port.ts";

/** `struct vring_desc`: one buffer (guest address, length, flags, index of the next in a chain). */
export const VringDesc = defineStruct("vring_desc", 16, { addr: u64(0), len: u32(8), flags: u16(12), next: u16(14) });
/** `struct vring_avail` without its ring: the driver's flags and next free index, then `ring[size]` (u16 each). */
export const VringAvail = defineStruct("vring_avail", 4, { flags: u16(0), idx: u16(2) });
/** `struct vring_used_elem`: the id of a descriptor chain the device is done with, and the bytes it wrote. */
export const VringUsedElem = defineStruct("vring_used_elem", 8, { id: u32(0), len: u32(4) });
/** `struct vring_used` without its ring: the device's flags and next index, then `ring[size]` of used elements. */
export const VringUsed = defineStruct("vring_used", 4, { flags: u16(0), idx: u16(2) });
/** `struct virtio_net_hdr_v1` (VIRTIO_F_VERSION_1: `num_buffers` is always there); 10 bytes without it (legacy). */
export const VirtioNetHdrV1 = defineStruct("virtio_net_hdr_v1", 12, {
  flags: u8(0),
  gso_type: u8(1),
  hdr_len: u16(2),
  gso_size: u16(4),
  csum_start: u16(6),
  csum_offset: u16(8),
  num_buffers: u16(10),
});

/** VRING_DESC_F_WRITE: the device writes this buffer. */
export const VRING_DESC_F_WRITE = 2;
/** VRING_AVAIL_F_NO_INTERRUPT: the driver asks for no interrupt when the device uses a buffer. */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** VRING_USED_F_NO_NOTIFY: the device asks for no notification when the driver adds a buffer. */
export const VRING_USED_F_NO_NOTIFY = 1;

// Field offsets from the structs above, for the hot paths (no DataView per access).
const DESC_SIZE = VringDesc.size;
const DESC_LEN = VringDesc.layout.len.offset;
const DESC_FLAGS = VringDesc.layout.flags.offset;
const AVAIL_IDX = VringAvail.layout.idx.offset;
const USED_IDX = VringUsed.layout.idx.offset;
const USED_ELEM = VringUsedElem.size;
const ELEM_ID = VringUsedElem.layout.id.offset;
const ELEM_LEN = VringUsedElem.layout.len.offset;

const PAGE = 4096;
const TWO32 = 2 ** 32;
const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Where the three parts of a split virtqueue start, as byte offsets in its DMA buffer. */
export interface VirtqueueLayout {
  /** The descriptor table (16-byte aligned). */
  desc: number;
  /** The avail (driver) ring (2-byte aligned). */
  avail: number;
  /** The used (device) ring (4-byte aligned; 4 KiB aligned for legacy devices). */
  used: number;
}

/**
 * The legacy layout (virtio 1.x section 2.7.2, "Legacy Interfaces"): the three parts back to back from `base`, the
 * used ring on the next 4 KiB boundary, so the device finds all of them from one page frame number.
 */
export function legacyQueueLayout(base: number, size: number): VirtqueueLayout {
  const avail = base + DESC_SIZE * size;
  return { desc: base, avail, used: roundUp(avail + VringAvail.size + 2 * size + 2, PAGE) };
}

/**
 * The layout of the modern driver: each part on its own 4 KiB page from `base` (which must be page aligned). With up
 * to 256 entries every part fits in one page, so each has one bus address even where pages are not contiguous
 * (no-IOMMU mode without hugepages); the device is told the three addresses separately.
 */
export function modernQueueLayout(base: number, size: number): VirtqueueLayout {
  const avail = base + roundUp(DESC_SIZE * size, PAGE);
  return { desc: base, avail, used: avail + roundUp(VringAvail.size + 2 * size + 2, PAGE) };
}

/** Bytes a queue of `size` entries takes in `layout` (a multiple of 4 KiB). */
export function splitQueueBytes(size: number, layout: (base: number, size: number) => VirtqueueLayout): number {
  return roundUp(layout(0, size).used + VringUsed.size + USED_ELEM * size + 2, PAGE);
}

/** One split virtqueue in a DMA buffer: descriptor table, avail ring, used ring. */
export class Virtqueue {
  /** Entries (a power of 2). */
  readonly size: number;
  /** Where its parts are in {@linkcode mem}. */
  readonly layout: VirtqueueLayout;
  /** The DMA buffer holding it. */
  readonly mem: DmaBuffer;
  readonly #u32: Uint32Array;
  readonly #u16: Uint16Array;
  readonly #availFlagsAt: number; // u16 index of avail.flags
  readonly #availIdxAt: number; // u16 index of avail.idx
  readonly #availRingAt: number; // u16 index of avail.ring[0]
  readonly #usedAt: number; // byte offset of the used ring
  #availIdx = 0;
  /** The used index up to which the driver has taken buffers back. */
  lastUsed = 0;

  /** Lays the queue out in `mem` (zeroed by the allocation); interrupts start suppressed. */
  constructor(mem: DmaBuffer, layout: VirtqueueLayout, size: number) {
    if (!(size > 0 && (size & (size - 1)) === 0 && size <= 32768)) {
      throw new VfioError(`virtqueue size ${size} is not a power of 2 up to 32768`);
    }
    this.size = size;
    this.layout = layout;
    this.mem = mem;
    this.#u32 = mem.u32;
    this.#u16 = mem.u16;
    this.#availFlagsAt = (layout.avail + VringAvail.layout.flags.offset) / 2;
    this.#availIdxAt = (layout.avail + AVAIL_IDX) / 2;
    this.#availRingAt = (layout.avail + VringAvail.size) / 2;
    this.#usedAt = layout.used;
    this.interrupts = false;
  }

  /** Whether the device should interrupt when it uses a buffer (clears or sets VRING_AVAIL_F_NO_INTERRUPT). */
  set interrupts(on: boolean) {
    Atomics.store(this.#u16, this.#availFlagsAt, on ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
  }

  /** Writes descriptor `i`: a buffer at bus address `addr` of `len` bytes, no chain. */
  setDesc(i: number, addr: number, len: number, flags: number): void {
    const w = (this.layout.desc + i * DESC_SIZE) / 4, u32 = this.#u32;
    u32[w] = addr % TWO32;
    u32[w + 1] = Math.floor(addr / TWO32);
    u32[w + DESC_LEN / 4] = len;
    u32[w + DESC_FLAGS / 4] = flags; // next = 0
  }

  /** Puts descriptor `id` in the avail ring (not yet visible to the device). */
  offer(id: number): void {
    this.#u16[this.#availRingAt + (this.#availIdx % this.size)] = id;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
  }

  /** Makes the offered descriptors visible; returns true when the device asks to be notified. */
  publish(): boolean {
    Atomics.store(this.#u16, this.#availIdxAt, this.#availIdx); // ordered after the descriptor and ring stores
    return (this.mem.read32(this.#usedAt) & VRING_USED_F_NO_NOTIFY) === 0;
  }

  /** The device's used index (deviceLoad). */
  usedIdx(): number {
    return this.mem.read32(this.#usedAt) >>> (8 * USED_IDX); // flags in the low half, idx in the high half
  }

  /** Whether the device has used buffers the driver has not taken back. */
  pending(): boolean {
    return this.usedIdx() !== this.lastUsed;
  }

  /** The descriptor id in used ring slot `slot`. */
  usedId(slot: number): number {
    return this.mem.read32(this.#usedAt + VringUsed.size + USED_ELEM * slot + ELEM_ID);
  }

  /** The bytes the device wrote, in used ring slot `slot`. */
  usedLen(slot: number): number {
    return this.mem.read32(this.#usedAt + VringUsed.size + USED_ELEM * slot + ELEM_LEN);
  }
}

/** What a driver tells {@linkcode VirtioNetQueues} about its device. */
export interface VirtioNetQueuesOptions {
  /** The receive queue (virtio-net queue 0). */
  rx: Virtqueue;
  /** The transmit queue (virtio-net queue 1). */
  tx: Virtqueue;
  /** The pool the receive queue takes its buffers from. */
  pool: PacketPool;
  /** Bytes of the per-packet header in front of every frame: 10 (legacy) or 12 (VIRTIO_F_VERSION_1). */
  headerBytes: number;
  /** The address the device is given for a packet's `data[0]` (an IOVA or a physical address). */
  addressOf(p: Packet): number;
  /** Kicks the device about queue `index` (0 receive, 1 transmit). */
  notify(index: number): void;
  /** For messages: `virtio-net 0000:00:06.0`. */
  name: string;
}

/**
 * virtio-net's first queue pair, as both example drivers run it: every receive descriptor holds one pool buffer
 * (the header at the end of the headroom, then room for a whole frame; no mergeable buffers), transmit descriptors
 * are one buffer each (header and frame together: VIRTIO_F_ANY_LAYOUT or VERSION_1), an all-zero header (no offloads).
 *
 * ```ts
 * import type { VirtioNetQueues } from "./virtio_queue.ts";
 * declare const queues: VirtioNetQueues;
 * const bufs = new Array(32);
 * const n = queues.rxBatch(bufs, 32);
 * queues.txBatch(bufs, n); // echo them back
 * ```
 */
export class VirtioNetQueues {
  /** The receive queue. */
  readonly rx: Virtqueue;
  /** The transmit queue. */
  readonly tx: Virtqueue;
  /** The pool receive buffers come from. */
  readonly pool: PacketPool;
  /** Counters kept by the driver (virtio-net has none of its own). */
  readonly stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "driver" };
  readonly #o: VirtioNetQueuesOptions;
  readonly #hdr: number;
  readonly #rxBufs: Packet[] = [];
  readonly #txBufs: (Packet | null)[];
  readonly #txFree: Uint16Array; // stack of free transmit descriptor ids
  #txFreeTop: number;

  /** Gives every receive descriptor a buffer and publishes them (call before DRIVER_OK; notify after it). */
  constructor(options: VirtioNetQueuesOptions) {
    this.#o = options;
    this.rx = options.rx;
    this.tx = options.tx;
    this.pool = options.pool;
    this.#hdr = options.headerBytes;
    for (let i = 0; i < this.rx.size; i++) {
      const p = options.pool.alloc();
      if (!p) {
        throw new VfioError(
          `${options.name}: a pool of ${options.pool.size} buffers cannot fill a ${this.rx.size}-entry queue`,
          { remedy: `give a pool of at least ${2 * this.rx.size} buffers` },
        );
      }
      this.#rxBufs.push(p);
      this.#postRx(i, p);
    }
    this.rx.publish();
    this.#txBufs = new Array(this.tx.size).fill(null);
    this.#txFree = Uint16Array.from({ length: this.tx.size }, (_, i) => this.tx.size - 1 - i);
    this.#txFreeTop = this.tx.size;
  }

  #postRx(id: number, p: Packet): void {
    this.rx.setDesc(id, this.#o.addressOf(p) - this.#hdr, this.#hdr + MAX_FRAME, VRING_DESC_F_WRITE);
    this.rx.offer(id);
  }

  /** Takes up to `n` received frames into `bufs[0..]` and puts fresh buffers in their place; returns how many. */
  rxBatch(bufs: Packet[], n: number): number {
    const q = this.rx, used = q.usedIdx();
    let k = 0;
    while (k < n && q.lastUsed !== used) {
      const fresh = this.#o.pool.alloc();
      if (!fresh) break; // no buffer to put back: leave the frame for the next call
      const slot = q.lastUsed % q.size;
      const id = q.usedId(slot);
      const p = this.#rxBufs[id];
      p.length = q.usedLen(slot) - this.#hdr;
      bufs[k++] = p;
      this.stats.rxBytes += p.length;
      this.#rxBufs[id] = fresh;
      this.#postRx(id, fresh);
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    if (k > 0) {
      this.stats.rxPackets += k;
      if (q.publish()) this.#o.notify(0);
    }
    return k;
  }

  /** Frees the buffers the device has sent. */
  #clean(): void {
    const q = this.tx, used = q.usedIdx();
    while (q.lastUsed !== used) {
      const id = q.usedId(q.lastUsed % q.size);
      this.#txBufs[id]!.free();
      this.#txBufs[id] = null;
      this.#txFree[this.#txFreeTop++] = id;
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
  }

  /** Queues `bufs[0..n)` for sending; returns how many fit. */
  txBatch(bufs: Packet[], n: number): number {
    this.#clean();
    const q = this.tx, hdr = this.#hdr;
    let k = 0;
    for (; k < n && this.#txFreeTop > 0; k++) {
      const p = bufs[k], id = this.#txFree[--this.#txFreeTop];
      p.entry.fill(0, HEADROOM - hdr, HEADROOM); // no offloads: an all-zero header
      q.setDesc(id, this.#o.addressOf(p) - hdr, hdr + p.length, 0);
      this.#txBufs[id] = p;
      q.offer(id);
      this.stats.txBytes += p.length;
    }
    if (k > 0) {
      this.stats.txPackets += k;
      if (q.publish()) this.#o.notify(1);
    }
    return k;
  }

  /** Frees sent buffers; returns the transmit descriptors still in flight. */
  txPending(): number {
    this.#clean();
    return this.tx.size - this.#txFreeTop;
  }
}

/**
 * The part of a virtio-net port that does not depend on the interface (legacy or modern): one queue pair, driver
 * counters, stop by device reset, close with the device. A driver sets {@linkcode VirtioNetPort.queuePair} at the end
 * of its constructor and implements `link()` and `resetDevice()`.
 *
 * ```ts
 * import type { VirtioNetPort } from "./virtio_queue.ts";
 * declare const nic: VirtioNetPort;
 * console.log(nic.rxRingSize, nic.stats());
 * nic.close();
 * ```
 */
export abstract class VirtioNetPort extends NicPort implements Nic {
  abstract readonly driver: string;
  abstract readonly mac: string;
  readonly queues = 1;
  /** The queue pair, once the driver has set it up. */
  protected queuePair!: VirtioNetQueues;

  get pool(): PacketPool {
    return this.queuePair.pool;
  }

  get rxRingSize(): number {
    return this.queuePair.rx.size;
  }

  get txRingSize(): number {
    return this.queuePair.tx.size;
  }

  abstract link(): LinkStatus;

  /** Writes 0 to the device status: the device lets go of every queue. */
  protected abstract resetDevice(): void;

  /** Throws when stopped or `queue` is not 0. */
  protected check(queue: number): void {
    this.checkRunning(this.driver);
    if (queue !== 0) {
      throw new OutOfRangeError(`${this.driver} ${this.address} has one queue pair, not queue ${queue}`, {
        remedy: "use queue 0",
      });
    }
  }

  rxBatch(bufs: Packet[], n: number, queue = 0): number {
    this.check(queue);
    return this.queuePair.rxBatch(bufs, n);
  }

  txBatch(bufs: Packet[], n: number, queue = 0): number {
    this.check(queue);
    return this.queuePair.txBatch(bufs, n);
  }

  txPending(): number {
    if (this.stopped) return 0;
    return this.queuePair.txPending();
  }

  stats(): NicStats {
    return { ...this.queuePair.stats };
  }

  /** Resets the device (it lets go of every queue), once it has queues. */
  protected halt(): void {
    if (this.queuePair) this.resetDevice();
  }
}
