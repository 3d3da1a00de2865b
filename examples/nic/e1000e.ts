/**
 * An ixy-style poll-mode driver for the Intel 82574L (8086:10d3; QEMU's `e1000e`), after the 82574 datasheet:
 * legacy receive and transmit descriptors (RFCTL.EXTEN clear), one queue each way, interrupts masked, promiscuous
 * receive; interrupt-driven receive ({@linkcode E1000e.waitRx}) through the MSI vector and ICR.RXT0. The queue pair
 * runs on the library's fast path (`fast_queue.ts`: {@linkcode Poller.queue}, the C poll helper when loaded).
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
import { type Device, IrqIndex, type IrqSet, type Region, VfioError } from "../../mod.ts";
import { type DescriptorFormat, type QueuePair, QueuePairs } from "./fast_queue.ts";
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

// Legacy descriptors (82574 datasheet 7.1.4, 7.2.10), 16 bytes. Receive: addr u64, length u16 at 8, checksum u16,
// status u8 at 12 (DD bit 0, EOP bit 1), errors u8, special u16. Transmit: addr u64, then length u16 | CSO u8 | CMD
// u8 at 8 (the fast path's txCmd | length), then STA u8 (DD bit 0) | CSS u8 | special u16 at 12. The fast path writes
// the length a second time into the word at 12, here shifted into `special`, the VLAN tag the device reads only for
// a descriptor with CMD.VLE (never set here): STA and CSS stay 0.
const RING_SIZE = 256; // 4 KiB per ring: one page, so contiguous in every IOMMU mode
const RXD_STAT_DD = 1 << 0; // descriptor done
const RXD_STAT_EOP = 1 << 1; // end of packet
const TXD_CMD_EOP = 1 << 0;
const TXD_CMD_IFCS = 1 << 1; // insert FCS
const TXD_CMD_RS = 1 << 3; // report status (write back DD)
const LEGACY: DescriptorFormat = {
  txCmd: (TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS) << 24,
  txLengthShift: 16,
  rxStatusOffset: 12,
  rxLengthOffset: 8,
  rxDone: RXD_STAT_DD,
  rxEop: RXD_STAT_EOP,
};

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
  readonly #pair: QueuePair;
  #stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };
  #irqs: IrqSet | null = null;

  /**
   * Resets and starts the port; the device is owned (and closed) by the driver from here on. The pool holds at
   * least 768 buffers (the two rings hold up to 511).
   */
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
    const store = new QueuePairs(dev, 1, Math.max(poolSize, 3 * RING_SIZE), LEGACY, RING_SIZE);
    this.pool = new PacketPool(store);
    store.attach(this.pool);
    const pair = this.#pair = store.pairs[0];
    this.stats(); // read (and so clear) the device counters, then start from zero
    this.#stats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };

    // Receive ring (every descriptor holds a buffer), then the empty transmit ring.
    for (let i = 0; i < 128; i++) bar0.write32(MTA + 4 * i, 0);
    bar0.write32(RCTL, 0);
    bar0.write32(RFCTL, 0);
    this.#ring(RDBAL, RDBAH, RDLEN, pair.rxRing);
    bar0.write32(RDH, 0);
    bar0.write32(RDT, 0);
    bar0.write32(TCTL, 0);
    this.#ring(TDBAL, TDBAH, TDLEN, pair.txRing);
    bar0.write32(TDH, 0);
    bar0.write32(TDT, 0);
    bar0.write32(TIPG, TIPG_DEFAULT);
    bar0.write32(RCTL, RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_BSIZE_2048 | RCTL_SECRC);
    pair.start(bar0, { rdt: RDT, tdt: TDT, tdh: TDH }); // the device owns [RDH, RDT): one slot stays empty
    bar0.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);

    bar0.write32(CTRL, (bar0.read32(CTRL) & ~CTRL_RST) | CTRL_SLU);
  }

  #ring(bal: number, bah: number, len: number, bus: bigint): void {
    this.#bar0.write32(bal, Number(bus & 0xffffffffn));
    this.#bar0.write32(bah, Number(bus >> 32n));
    this.#bar0.write32(len, RING_SIZE * 16);
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
    return this.#pair.rx(bufs, n);
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
    if (this.#pair.ready()) return true;
    bar0.write32(IMS, ICR_RXT0);
    try {
      return (await irqs.wait(0, { timeoutMs })) > 0 || this.#pair.ready();
    } finally {
      if (!this.closed) {
        bar0.write32(IMC, ICR_RXT0);
        bar0.read32(ICR);
      }
    }
  }

  txBatch(bufs: Packet[], n: number): number {
    this.#check();
    return this.#pair.tx(bufs, n);
  }

  txPending(): number {
    return this.stopped ? 0 : this.#pair.pending();
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
