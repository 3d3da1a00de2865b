/**
 * The advanced descriptor rings of Intel's igb family (82576 datasheet section 7.1.5 receive, 7.2.2.3 transmit),
 * shared by the 82576 physical function driver (`igb.ts`) and its virtual function driver: the descriptor layouts,
 * the per-queue register block, its bits and its start sequence, and (for the virtual function) ring bookkeeping in
 * the manner of ixy's ixgbe driver. The physical function's queue pairs run on the library's fast path instead
 * (`fast_queue.ts`), over the same descriptor layouts.
 *
 * A receive ring hands every descriptor a pool buffer in the read format (`pkt_addr`, `hdr_addr` = 0); the device
 * writes the frame and then the write-back format over the same 16 bytes (status DD/EOP, length). A transmit ring
 * queues advanced data descriptors (DTYP = data, DEXT, EOP, IFCS, RS, PAYLEN) and frees a buffer once the device
 * has set DD. Descriptor status is read with `deviceLoad` (DmaBuffer.read32) so a polling loop sees write-backs on
 * every runtime. The rings know nothing of where their registers are: the caller passes the queue's register block
 * ({@linkcode RxQueueRegs}, {@linkcode TxQueueRegs}) and the BAR.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { AdvRxRing, pfRxQueueRegs } from "./igb_ring.ts";
 * import { PacketPool } from "./nic.ts";
 * using dev = openDevice("0000:00:05.0");
 * const pool = new PacketPool(dev, 1024);
 * const rx = new AdvRxRing(dev, pool, 256);
 * rx.start(dev.bar(0), pfRxQueueRegs(0));
 * ```
 * @module
 */
import { defineStruct, u16, u32, u64 } from "../../abi.ts";
import { type Device, type DmaBuffer, type Region, VfioError } from "../../mod.ts";
import { MAX_FRAME, type Packet, type PacketPool } from "./nic.ts";

/** Advanced receive descriptor, read format (what the driver writes): `union e1000_adv_rx_desc.read`. */
export const AdvRxDescRead = defineStruct("e1000_adv_rx_desc_read", 16, {
  pkt_addr: u64(0), // packet buffer bus address
  hdr_addr: u64(8), // header buffer bus address (0: no header split); its low word is the write-back status
});

/** Advanced receive descriptor, write-back format (what the device writes): `union e1000_adv_rx_desc.wb`. */
export const AdvRxDescWb = defineStruct("e1000_adv_rx_desc_wb", 16, {
  pkt_info: u16(0), // RSS type, packet type
  hdr_info: u16(2), // header length, split header
  rss: u32(4), // RSS hash (with RXCSUM.PCSD), else IP id + checksum
  status_error: u32(8), // extended status (DD, EOP, ...) and errors
  length: u16(12), // bytes written to the packet buffer
  vlan: u16(14), // stripped VLAN tag
});

/** Advanced transmit data descriptor, read format: `union e1000_adv_tx_desc.read`. */
export const AdvTxDescRead = defineStruct("e1000_adv_tx_desc_read", 16, {
  buffer_addr: u64(0),
  cmd_type_len: u32(8), // DCMD | DTYP | DTALEN (buffer length)
  olinfo_status: u32(12), // PAYLEN << 14 | POPTS | IDX | status (DD once written back)
});

/** Advanced transmit descriptor, write-back format: `union e1000_adv_tx_desc.wb`. */
export const AdvTxDescWb = defineStruct("e1000_adv_tx_desc_wb", 16, {
  rsvd: u64(0),
  nxtseq_seed: u32(8),
  status: u32(12), // DD = bit 0
});

/** Bytes per advanced descriptor. */
export const DESC_SIZE = 16;

// Receive write-back status_error bits
/** Descriptor done. */
export const RXD_STAT_DD = 1 << 0;
/** End of packet. */
export const RXD_STAT_EOP = 1 << 1;
/** Any receive error (RXE, IPE, L4E, HBO): the error byte. */
export const RXD_ERR_MASK = 0xff000000;

// Transmit data descriptor cmd_type_len bits (82576 datasheet 7.2.2.3.2)
/** DTYP = 0011b: advanced data descriptor. */
export const TXD_DTYP_DATA = 0x3 << 20;
/** End of packet. */
export const TXD_DCMD_EOP = 1 << 24;
/** Insert FCS. */
export const TXD_DCMD_IFCS = 1 << 25;
/** Report status: write DD back when done. */
export const TXD_DCMD_RS = 1 << 27;
/** Descriptor extension: advanced format. */
export const TXD_DCMD_DEXT = 1 << 29;
/** PAYLEN position in olinfo_status. */
export const TXD_PAYLEN_SHIFT = 14;
/** Transmit write-back status: descriptor done. */
export const TXD_STAT_DD = 1 << 0;

// Per-queue control registers: bits
/** SRRCTL.BSIZEPACKET: receive buffer size in 1 KiB units (bits 6:0). */
export const SRRCTL_BSIZEPACKET_SHIFT = 10;
/** SRRCTL.DESCTYPE = 001b: advanced descriptor, one buffer. */
export const SRRCTL_DESCTYPE_ADV_ONEBUF = 1 << 25;
/** SRRCTL.DROP_EN: drop frames when the queue has no descriptor (instead of stalling every queue). */
export const SRRCTL_DROP_EN = 1 << 31;
/** RXDCTL / TXDCTL.ENABLE. */
export const QUEUE_ENABLE = 1 << 25;

/** Where a receive queue's registers are (byte offsets in the BAR). */
export interface RxQueueRegs {
  rdbal: number;
  rdbah: number;
  rdlen: number;
  srrctl: number;
  rdh: number;
  rdt: number;
  rxdctl: number;
}

/** Where a transmit queue's registers are (byte offsets in the BAR). */
export interface TxQueueRegs {
  tdbal: number;
  tdbah: number;
  tdlen: number;
  tdh: number;
  tdt: number;
  txdctl: number;
}

/** The 82576 physical function's receive queue `q` (0..15): RDBAL(n) = 0xC000 + 0x40·n, and so on. */
export function pfRxQueueRegs(q: number): RxQueueRegs {
  const b = 0xc000 + 0x40 * q;
  return { rdbal: b, rdbah: b + 4, rdlen: b + 8, srrctl: b + 0xc, rdh: b + 0x10, rdt: b + 0x18, rxdctl: b + 0x28 };
}

/** The 82576 physical function's transmit queue `q` (0..15): TDBAL(n) = 0xE000 + 0x40·n, and so on. */
export function pfTxQueueRegs(q: number): TxQueueRegs {
  const b = 0xe000 + 0x40 * q;
  return { tdbal: b, tdbah: b + 4, tdlen: b + 8, tdh: b + 0x10, tdt: b + 0x18, txdctl: b + 0x28 };
}

const TWO32 = 2 ** 32;
// Word indexes of the fields the hot paths touch (from the layouts above, not retyped)
const RX_ADDR_LO = AdvRxDescRead.layout.pkt_addr.offset / 4;
const RX_HDR_LO = AdvRxDescRead.layout.hdr_addr.offset / 4;
const RX_STATUS = AdvRxDescWb.layout.status_error.offset;
const RX_LENGTH_WORD = AdvRxDescWb.layout.length.offset / 4; // length is the low half of this word
const TX_ADDR_LO = AdvTxDescRead.layout.buffer_addr.offset / 4;
const TX_CMD = AdvTxDescRead.layout.cmd_type_len.offset / 4;
const TX_OLINFO = AdvTxDescRead.layout.olinfo_status.offset / 4;
const TX_STATUS = AdvTxDescWb.layout.status.offset;
// BSIZEPACKET counts 1 KiB units, and a pool buffer holds MAX_FRAME (1984) bytes: 2 KiB is safe because with
// RCTL.LPE clear the device drops every frame longer than 1518 bytes (1514 + FCS) before it reaches a buffer.
const RX_BUF_KIB = 2;
if (MAX_FRAME < 1518) throw new Error("igb_ring: packet buffers too small for a 1518-byte frame");
const TX_FLAGS = TXD_DTYP_DATA | TXD_DCMD_EOP | TXD_DCMD_IFCS | TXD_DCMD_RS | TXD_DCMD_DEXT;

function ringMemory(dev: Device, size: number): DmaBuffer {
  if (!Number.isInteger(size) || size < 8 || size > 4096 || size % 8 !== 0) {
    throw new VfioError(`igb ring of ${size} descriptors`, { remedy: "use a multiple of 8 from 8 to 4096" });
  }
  // 256 descriptors are one page: contiguous in every IOMMU mode; RDLEN must be a multiple of 128 bytes
  return dev.allocDma(size * DESC_SIZE, { hugepages: "never", contiguous: true });
}

function waitBit(bar: Region, reg: number, bit: number, set: boolean, what: string): void {
  const t0 = performance.now();
  while (((bar.read32(reg) & bit) !== 0) !== set) {
    if (performance.now() - t0 > 1000) throw new VfioError(`igb: ${what} did not take effect`);
  }
}

/**
 * Programs receive queue registers (82576 datasheet 4.5.9): disables the queue, sets base, length, SRRCTL (advanced
 * one-buffer descriptors, 2 KiB buffers, drop when empty), head and tail 0, and enables it (RXDCTL.ENABLE, waited
 * for). The caller then hands descriptors to the device by writing RDT.
 */
export function startRxQueue(bar: Region, regs: RxQueueRegs, ring: bigint, size: number): void {
  bar.write32(regs.rxdctl, 0);
  waitBit(bar, regs.rxdctl, QUEUE_ENABLE, false, "RXDCTL.ENABLE clear");
  bar.write32(regs.rdbal, Number(ring & 0xffffffffn));
  bar.write32(regs.rdbah, Number(ring >> 32n));
  bar.write32(regs.rdlen, size * DESC_SIZE);
  bar.write32(regs.srrctl, SRRCTL_DESCTYPE_ADV_ONEBUF | SRRCTL_DROP_EN | RX_BUF_KIB);
  bar.write32(regs.rdh, 0);
  bar.write32(regs.rdt, 0);
  bar.write32(regs.rxdctl, QUEUE_ENABLE);
  waitBit(bar, regs.rxdctl, QUEUE_ENABLE, true, "RXDCTL.ENABLE");
}

/** Programs transmit queue registers (base, length, head = tail = 0) and enables it (TXDCTL.ENABLE, waited for). */
export function startTxQueue(bar: Region, regs: TxQueueRegs, ring: bigint, size: number): void {
  bar.write32(regs.txdctl, 0);
  bar.write32(regs.tdbal, Number(ring & 0xffffffffn));
  bar.write32(regs.tdbah, Number(ring >> 32n));
  bar.write32(regs.tdlen, size * DESC_SIZE);
  bar.write32(regs.tdh, 0);
  bar.write32(regs.tdt, 0);
  bar.write32(regs.txdctl, QUEUE_ENABLE);
  waitBit(bar, regs.txdctl, QUEUE_ENABLE, true, "TXDCTL.ENABLE");
}

/**
 * One receive queue's ring: every descriptor owns a pool buffer; {@linkcode AdvRxRing.rx} takes finished frames
 * and puts fresh buffers back.
 */
export class AdvRxRing {
  /** Descriptors in the ring. */
  readonly size: number;
  /** Frames and bytes received on this queue (the driver's count). */
  packets = 0;
  bytes = 0;
  /** Frames the ring held for want of a free pool buffer (left in the ring, taken on a later call). */
  starved = 0;
  readonly #pool: PacketPool;
  readonly #mem: DmaBuffer;
  readonly #u32: Uint32Array;
  readonly #bufs: Packet[] = [];
  #bar: Region | null = null;
  #rdt = 0;
  #next = 0;

  /** Allocates the ring in DMA memory of `dev` and gives every descriptor a buffer from `pool`. */
  constructor(dev: Device, pool: PacketPool, size: number) {
    this.size = size;
    this.#pool = pool;
    this.#mem = ringMemory(dev, size);
    this.#u32 = this.#mem.u32;
    for (let i = 0; i < size; i++) {
      const p = pool.alloc();
      if (!p) throw new VfioError(`igb: a pool of ${pool.size} buffers cannot fill a ${size}-entry ring`);
      this.#bufs.push(p);
      this.#arm(i, p);
    }
  }

  /** The ring's bus address. */
  get busAddress(): bigint {
    return this.#mem.busAddress(0);
  }

  #arm(i: number, p: Packet): void {
    const w = i * 4, u32 = this.#u32;
    u32[w + RX_ADDR_LO] = p.bus % TWO32;
    u32[w + RX_ADDR_LO + 1] = Math.floor(p.bus / TWO32);
    u32[w + RX_HDR_LO] = 0; // also clears the write-back status (DD)
    u32[w + RX_HDR_LO + 1] = 0;
  }

  /**
   * Programs the queue's registers (82576 datasheet 4.5.9: base, length, SRRCTL with advanced one-buffer
   * descriptors and the buffer size, head and tail 0, RXDCTL.ENABLE and wait for it) and hands the device every
   * descriptor but one. Call with RCTL.EN set or clear; the device starts once both are on.
   */
  start(bar: Region, regs: RxQueueRegs): void {
    this.#bar = bar;
    this.#rdt = regs.rdt;
    startRxQueue(bar, regs, this.busAddress, this.size);
    this.#next = 0;
    bar.write32(regs.rdt, this.size - 1); // the device owns [RDH, RDT): one slot stays empty
  }

  /** Disables the queue (RXDCTL.ENABLE clear). */
  stop(regs: RxQueueRegs): void {
    this.#bar?.write32(regs.rxdctl, 0);
  }

  /** Whether the next descriptor holds a frame (DD set): what an interrupt-driven receive checks before sleeping. */
  ready(): boolean {
    return (this.#mem.read32(this.#next * DESC_SIZE + RX_STATUS) & RXD_STAT_DD) !== 0;
  }

  /** Takes up to `n` frames into `bufs[0..]` (the caller owns and frees them); returns how many. */
  rx(bufs: Packet[], n: number): number {
    const mem = this.#mem, u32 = this.#u32, size = this.size;
    let i = this.#next, last = -1, k = 0;
    while (k < n) {
      const status = mem.read32(i * DESC_SIZE + RX_STATUS); // deviceLoad: the device writes it
      if ((status & RXD_STAT_DD) === 0) break;
      if ((status & RXD_STAT_EOP) === 0) {
        throw new VfioError("igb: a frame spans several descriptors (jumbo frames unsupported)");
      }
      const fresh = this.#pool.alloc();
      if (!fresh) {
        this.starved++;
        break; // no buffer to put back: leave the frame in the ring for the next call
      }
      const p = this.#bufs[i];
      p.length = u32[i * 4 + RX_LENGTH_WORD] & 0xffff;
      this.bytes += p.length;
      bufs[k++] = p;
      this.#bufs[i] = fresh;
      this.#arm(i, fresh);
      last = i;
      i = (i + 1) % size;
    }
    if (last >= 0) {
      this.#next = i;
      this.packets += k;
      this.#bar!.write32(this.#rdt, last); // hand the refilled descriptors back
    }
    return k;
  }
}

/**
 * One transmit queue's ring: {@linkcode AdvTxRing.tx} queues frames as advanced data descriptors;
 * {@linkcode AdvTxRing.pending} frees what the device has sent.
 */
export class AdvTxRing {
  /** Descriptors in the ring. */
  readonly size: number;
  /** Frames and bytes queued on this queue (the driver's count). */
  packets = 0;
  bytes = 0;
  readonly #mem: DmaBuffer;
  readonly #u32: Uint32Array;
  readonly #bufs: (Packet | null)[];
  #bar: Region | null = null;
  #tdt = 0;
  #tail = 0; // next descriptor to fill
  #clean = 0; // oldest descriptor not yet cleaned

  /** Allocates an empty ring in DMA memory of `dev`. */
  constructor(dev: Device, size: number) {
    this.size = size;
    this.#mem = ringMemory(dev, size);
    this.#u32 = this.#mem.u32;
    this.#bufs = new Array(size).fill(null);
  }

  /** The ring's bus address. */
  get busAddress(): bigint {
    return this.#mem.busAddress(0);
  }

  /** Programs the queue's registers (base, length, head = tail = 0) and enables it (TXDCTL.ENABLE). */
  start(bar: Region, regs: TxQueueRegs): void {
    this.#bar = bar;
    this.#tdt = regs.tdt;
    this.#tail = this.#clean = 0;
    startTxQueue(bar, regs, this.busAddress, this.size);
  }

  /** Disables the queue (TXDCTL.ENABLE clear). */
  stop(regs: TxQueueRegs): void {
    this.#bar?.write32(regs.txdctl, 0);
  }

  #reclaim(): void {
    const mem = this.#mem, size = this.size;
    let c = this.#clean;
    while (c !== this.#tail && (mem.read32(c * DESC_SIZE + TX_STATUS) & TXD_STAT_DD) !== 0) {
      this.#bufs[c]!.free();
      this.#bufs[c] = null;
      c = (c + 1) % size;
    }
    this.#clean = c;
  }

  /** Queues `bufs[0..n)`; returns how many fit. The ring frees those once sent; the caller keeps the rest. */
  tx(bufs: Packet[], n: number): number {
    this.#reclaim();
    const u32 = this.#u32, size = this.size;
    let t = this.#tail, k = 0;
    for (; k < n; k++) {
      const next = (t + 1) % size;
      if (next === this.#clean) break; // ring full
      const p = bufs[k], w = t * 4;
      u32[w + TX_ADDR_LO] = p.bus % TWO32;
      u32[w + TX_ADDR_LO + 1] = Math.floor(p.bus / TWO32);
      u32[w + TX_CMD] = TX_FLAGS | p.length;
      u32[w + TX_OLINFO] = p.length << TXD_PAYLEN_SHIFT; // clears DD too
      this.bytes += p.length;
      this.#bufs[t] = p;
      t = next;
    }
    if (k > 0) {
      this.#tail = t;
      this.packets += k;
      this.#bar!.write32(this.#tdt, t);
    }
    return k;
  }

  /** Frees sent buffers; returns how many descriptors are still in flight. */
  pending(): number {
    this.#reclaim();
    return (this.#tail - this.#clean + this.size) % this.size;
  }
}
