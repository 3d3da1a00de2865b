/**
 * An ixy-style poll-mode driver for the Intel 82574L (8086:10d3; QEMU's `e1000e`), after the 82574 datasheet:
 * legacy receive and transmit descriptors (RFCTL.EXTEN clear), one queue each way, interrupts masked, promiscuous
 * receive; interrupt-driven receive ({@linkcode E1000e.waitRx}) through the MSI vector and ICR.RXT0. Descriptor status is read with `Atomics.load` (DmaBuffer.read32) so a polling loop sees the device's
 * write-backs on every runtime.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { E1000e } from "./e1000e.ts";
 * const nic = new E1000e(openDevice("0000:00:05.0"), 1024);
 * console.log(nic.mac, nic.link());
 * nic.close();
 * ```
 * @module
 */
import { type Device, type DmaBuffer, IrqIndex, type IrqSet, type Region, VfioError } from "../../mod.ts";
import { deviceStats } from "./intel_stats.ts";
import { formatMac, type LinkStatus, type Nic, type NicStats, type Packet, PacketPool } from "./nic.ts";
import { NicPort } from "./port.ts";

// Registers (BAR0, 82574 datasheet section 10)
const CTRL = 0x0000; // device control
const STATUS = 0x0008; // device status
const ICR = 0x00c0; // interrupt cause read (clears on read)
const ITR = 0x00c4; // interrupt throttling (0: none)
const IMS = 0x00d0; // interrupt mask set
const IMC = 0x00d8; // interrupt mask clear
const RCTL = 0x0100; // receive control
const TCTL = 0x0400; // transmit control
const TIPG = 0x0410; // transmit inter-packet gap
const RDBAL = 0x2800; // receive descriptor base, low / high
const RDBAH = 0x2804;
const RDLEN = 0x2808; // receive ring length in bytes (multiple of 128)
const RDH = 0x2810; // receive head (device) / tail (driver)
const RDT = 0x2818;
const TDBAL = 0x3800; // transmit descriptor base, low / high
const TDBAH = 0x3804;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;
const RFCTL = 0x5008; // receive filter control (EXTEN = extended descriptors; left clear: legacy)
const MTA = 0x5200; // multicast table array, 128 words
const RAL0 = 0x5400; // receive address 0, low / high (AV = bit 31)
const RAH0 = 0x5404;

// Register bits
const CTRL_SLU = 1 << 6; // set link up
const CTRL_RST = 1 << 26; // software reset (self-clearing)
const STATUS_LU = 1 << 1; // link up
const STATUS_SPEED_SHIFT = 6; // 00 = 10, 01 = 100, 1x = 1000 Mbit/s
const RCTL_EN = 1 << 1;
const RCTL_UPE = 1 << 3; // unicast promiscuous
const RCTL_MPE = 1 << 4; // multicast promiscuous
const RCTL_BAM = 1 << 15; // accept broadcast
const RCTL_BSIZE_2048 = 0 << 16; // with BSEX = 0
const RCTL_SECRC = 1 << 26; // strip the Ethernet CRC
const ICR_RXT0 = 1 << 7; // receiver timer interrupt: a frame was written back
const TCTL_EN = 1 << 1;
const TCTL_PSP = 1 << 3; // pad short packets
const TCTL_CT = 0x0f << 4; // collision threshold
const TCTL_COLD = 0x3f << 12; // collision distance (full duplex)
const TIPG_DEFAULT = 8 | (8 << 10) | (6 << 20); // IPGT, IPGR1, IPGR2 for copper

// Legacy descriptors: 16 bytes. Receive: addr u64, length u16, checksum u16, status u8, errors u8, special u16.
// Transmit: addr u64, length u16, cso u8, cmd u8, status u8, css u8, special u16.
const DESC_SIZE = 16;
const RING_SIZE = 256; // 4 KiB per ring: one page, so contiguous in every IOMMU mode
const RXD_STAT_DD = 1 << 0; // descriptor done
const RXD_STAT_EOP = 1 << 1; // end of packet
const TXD_CMD_EOP = 1 << 0;
const TXD_CMD_IFCS = 1 << 1; // insert FCS
const TXD_CMD_RS = 1 << 3; // report status (write back DD)
const TXD_STAT_DD = 1 << 0;
const TX_CMD = (TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS) << 24;

const TWO32 = 2 ** 32;

/**
 * One 82574 port.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { E1000e } from "./e1000e.ts";
 * using nic = new E1000e(openDevice("0000:00:05.0"), 1024);
 * const p = nic.pool.alloc()!;
 * p.length = 60;
 * nic.txBatch([p], 1);
 * ```
 */
export class E1000e extends NicPort implements Nic {
  readonly driver = "e1000e";
  readonly queues = 1;
  readonly mac: string;
  readonly pool: PacketPool;
  readonly rxRingSize = RING_SIZE;
  readonly txRingSize = RING_SIZE;
  readonly #bar0: Region;
  readonly #rx: DmaBuffer;
  readonly #tx: DmaBuffer;
  readonly #rxU32: Uint32Array;
  readonly #txU32: Uint32Array;
  readonly #rxBufs: Packet[] = [];
  readonly #txBufs: (Packet | null)[] = new Array(RING_SIZE).fill(null);
  #rxNext = 0; // next receive descriptor to look at
  #txTail = 0; // next transmit descriptor to fill
  #txClean = 0; // oldest transmit descriptor not yet cleaned
  #stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };
  #irqs: IrqSet | null = null;

  /** Resets and starts the port; the device is owned (and closed) by the driver from here on. */
  constructor(dev: Device, poolSize: number) {
    super(dev);
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = this.#bar0 = dev.bar(0);

    // Reset with interrupts masked. QEMU 7.2 resets little more than the MAC address here, so every register
    // the driver relies on is programmed below rather than assumed.
    bar0.write32(IMC, 0xffffffff);
    bar0.write32(CTRL, bar0.read32(CTRL) | CTRL_RST);
    const t0 = performance.now();
    while (bar0.read32(CTRL) & CTRL_RST) {
      if (performance.now() - t0 > 1000) throw new VfioError(`e1000e ${dev.name}: CTRL.RST did not clear`);
    }
    bar0.write32(IMC, 0xffffffff);
    bar0.read32(ICR);
    bar0.write32(ITR, 0); // an interrupt per frame when waitRx arms one

    const ral = bar0.read32(RAL0), rah = bar0.read32(RAH0);
    this.mac = formatMac([ral, ral >>> 8, ral >>> 16, ral >>> 24, rah, rah >>> 8].map((b) => b & 0xff));
    this.pool = new PacketPool(dev, poolSize);
    this.stats(); // read (and so clear) the device counters, then start from zero
    this.#stats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };

    // Receive ring: every descriptor gets a buffer; the device owns [RDH, RDT), so one slot stays empty.
    this.#rx = dev.allocDma(RING_SIZE * DESC_SIZE, { hugepages: "never", contiguous: true });
    this.#rxU32 = this.#rx.u32;
    for (let i = 0; i < RING_SIZE; i++) {
      const p = this.pool.alloc();
      if (!p) throw new VfioError(`e1000e: a pool of ${poolSize} buffers cannot fill a ${RING_SIZE}-entry ring`);
      this.#rxBufs.push(p);
      this.#setRxDesc(i, p);
    }
    for (let i = 0; i < 128; i++) bar0.write32(MTA + 4 * i, 0);
    bar0.write32(RCTL, 0);
    bar0.write32(RFCTL, 0);
    this.#ring(RDBAL, RDBAH, RDLEN, this.#rx);
    bar0.write32(RDH, 0);
    bar0.write32(RDT, 0);
    bar0.write32(RCTL, RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_BSIZE_2048 | RCTL_SECRC);
    bar0.write32(RDT, RING_SIZE - 1);

    // Transmit ring: empty (head == tail).
    this.#tx = dev.allocDma(RING_SIZE * DESC_SIZE, { hugepages: "never", contiguous: true });
    this.#txU32 = this.#tx.u32;
    bar0.write32(TCTL, 0);
    this.#ring(TDBAL, TDBAH, TDLEN, this.#tx);
    bar0.write32(TDH, 0);
    bar0.write32(TDT, 0);
    bar0.write32(TIPG, TIPG_DEFAULT);
    bar0.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);

    bar0.write32(CTRL, (bar0.read32(CTRL) & ~CTRL_RST) | CTRL_SLU);
  }

  #ring(bal: number, bah: number, len: number, ring: DmaBuffer): void {
    const bus = ring.busAddress(0);
    this.#bar0.write32(bal, Number(bus & 0xffffffffn));
    this.#bar0.write32(bah, Number(bus >> 32n));
    this.#bar0.write32(len, ring.size);
  }

  #setRxDesc(i: number, p: Packet): void {
    const w = i * 4, u32 = this.#rxU32;
    u32[w] = p.bus % TWO32;
    u32[w + 1] = Math.floor(p.bus / TWO32);
    u32[w + 2] = 0;
    u32[w + 3] = 0; // status: not done
  }

  #check(): void {
    this.checkRunning("e1000e");
  }

  link(): LinkStatus {
    const status = this.#bar0.read32(STATUS);
    const speed = (status >>> STATUS_SPEED_SHIFT) & 3;
    return { up: (status & STATUS_LU) !== 0, speedMbps: speed === 0 ? 10 : speed === 1 ? 100 : 1000 };
  }

  rxBatch(bufs: Packet[], n: number): number {
    this.#check();
    const rx = this.#rx, u32 = this.#rxU32;
    let i = this.#rxNext, last = -1, k = 0;
    while (k < n) {
      const status = rx.read32(i * DESC_SIZE + 12); // Atomics.load: the device writes it
      if ((status & RXD_STAT_DD) === 0) break;
      if ((status & RXD_STAT_EOP) === 0) {
        throw new VfioError(`e1000e ${this.address}: a frame spans several descriptors (jumbo frames unsupported)`);
      }
      const fresh = this.pool.alloc();
      if (!fresh) break; // no buffer to put back: leave the frame in the ring for the next call
      const p = this.#rxBufs[i];
      p.length = u32[i * 4 + 2] & 0xffff;
      bufs[k++] = p;
      this.#rxBufs[i] = fresh;
      this.#setRxDesc(i, fresh);
      last = i;
      i = (i + 1) % RING_SIZE;
    }
    if (last >= 0) {
      this.#rxNext = i;
      this.#bar0.write32(RDT, last); // hand the refilled descriptors back
    }
    return k;
  }

  /**
   * Interrupt-driven receive through the device's MSI vector: reads ICR (which clears stale causes), returns at
   * once when a frame is already there, else unmasks RXT0 (IMS, which fires at once for a frame that came in
   * meanwhile), waits, and masks it again (IMC).
   */
  async waitRx(queue: number, timeoutMs: number): Promise<boolean> {
    this.#check();
    if (queue !== 0) throw new VfioError(`e1000e ${this.address}: no queue ${queue}`, { remedy: "use queue 0" });
    const irqs = this.#irqs ??= this.dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    const bar0 = this.#bar0;
    irqs.poll(0); // drop a count left from an earlier wake-up
    bar0.read32(ICR);
    if (this.#ready()) return true;
    bar0.write32(IMS, ICR_RXT0);
    try {
      return (await irqs.wait(0, { timeoutMs })) > 0 || this.#ready();
    } finally {
      if (!this.closed) {
        bar0.write32(IMC, ICR_RXT0);
        bar0.read32(ICR);
      }
    }
  }

  #ready(): boolean {
    return (this.#rx.read32(this.#rxNext * DESC_SIZE + 12) & RXD_STAT_DD) !== 0;
  }

  #clean(): void {
    const tx = this.#tx;
    let c = this.#txClean;
    while (c !== this.#txTail && (tx.read32(c * DESC_SIZE + 12) & TXD_STAT_DD) !== 0) {
      this.#txBufs[c]!.free();
      this.#txBufs[c] = null;
      c = (c + 1) % RING_SIZE;
    }
    this.#txClean = c;
  }

  txBatch(bufs: Packet[], n: number): number {
    this.#check();
    this.#clean();
    const u32 = this.#txU32;
    let t = this.#txTail, k = 0;
    for (; k < n; k++) {
      const next = (t + 1) % RING_SIZE;
      if (next === this.#txClean) break; // ring full
      const p = bufs[k], w = t * 4;
      u32[w] = p.bus % TWO32;
      u32[w + 1] = Math.floor(p.bus / TWO32);
      u32[w + 2] = TX_CMD | p.length;
      u32[w + 3] = 0;
      this.#txBufs[t] = p;
      t = next;
    }
    if (k > 0) {
      this.#txTail = t;
      this.#bar0.write32(TDT, t);
    }
    return k;
  }

  txPending(): number {
    if (this.stopped) return 0;
    this.#clean();
    return (this.#txTail - this.#txClean + RING_SIZE) % RING_SIZE;
  }

  stats(): NicStats {
    return deviceStats(this.#bar0, this.#stats, this.stopped);
  }

  /** A last counter read, then receive and transmit off and every interrupt masked. */
  protected halt(): void {
    this.stats();
    this.#bar0.write32(RCTL, 0);
    this.#bar0.write32(TCTL, 0);
    this.#bar0.write32(IMC, 0xffffffff);
  }
}
