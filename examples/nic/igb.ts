/**
 * An ixy-style driver for the Intel 82576 physical function (8086:10c9; QEMU's `igb`), after the 82576 datasheet
 * and the structure of ixy's ixgbe driver: reset and init (CTRL.RST, interrupts masked, EEPROM auto-read done,
 * MAC from RAL0/RAH0, link up with CTRL.SLU and a PHY auto-negotiation restart), advanced receive and transmit
 * descriptors (`igb_ring.ts`) driven through the library's fast path (`fast_queue.ts`: {@linkcode Poller.queue}, one
 * call per batch, the C poll helper when loaded), up to 4 queue pairs with RSS (MRQC, RETA, RSSRK) spreading received IPv4/IPv6 TCP/UDP flows over the receive queues,
 * per-queue counters, and interrupt-driven receive through one MSI-X vector per receive queue (GPIE, IVAR, EIAC,
 * EIMS/EIMC).
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { Igb } from "./igb.ts";
 * using nic = new Igb(openDevice("0000:00:07.0"), 1024, 2);
 * console.log(nic.mac, nic.link(), nic.queueStats());
 * ```
 * @module
 */
import { type Device, IrqIndex, type IrqSet, type Region, VfioError } from "../../mod.ts";
import { type DescriptorFormat, type QueuePair, QueuePairs } from "./fast_queue.ts";
import {
  AdvRxDescWb,
  AdvTxDescRead,
  pfRxQueueRegs,
  pfTxQueueRegs,
  RXD_STAT_DD,
  RXD_STAT_EOP,
  type RxQueueRegs,
  startRxQueue,
  startTxQueue,
  TXD_DCMD_DEXT,
  TXD_DCMD_EOP,
  TXD_DCMD_IFCS,
  TXD_DCMD_RS,
  TXD_DTYP_DATA,
  TXD_PAYLEN_SHIFT,
  type TxQueueRegs,
} from "./igb_ring.ts";
import { deviceStats } from "./intel_stats.ts";
import { formatMac, type LinkStatus, type Nic, type NicStats, type Packet, PacketPool } from "./nic.ts";
import { NicPort } from "./port.ts";

// Registers (BAR0, 82576 datasheet section 8)
const CTRL = 0x0000; // device control
const STATUS = 0x0008; // device status
const EECD = 0x0010; // EEPROM/flash control
const CTRL_EXT = 0x0018; // extended device control
const MDIC = 0x0020; // MDI (PHY register) control
const ICR = 0x1500; // interrupt cause read (legacy causes)
const IMC = 0x150c; // interrupt mask clear
const GPIE = 0x1514; // general purpose interrupt enable
const EICR = 0x1580; // extended interrupt cause (read clears; write 1 clears)
const EIMS = 0x1524; // extended interrupt mask set
const EIMC = 0x1528; // extended interrupt mask clear
const EIAC = 0x152c; // extended interrupt auto clear
const EITR0 = 0x1680; // interrupt throttle of vector n: EITR0 + 4n
const IVAR0 = 0x1700; // interrupt vector allocation: IVAR0 + 4n maps queues n and n + 8
const RCTL = 0x0100; // receive control
const TCTL = 0x0400; // transmit control
const RXCSUM = 0x5000; // receive checksum control (PCSD: the descriptor carries the RSS hash)
const MTA = 0x5200; // multicast table array, 128 words
const RAL0 = 0x5400; // receive address 0, low / high
const RAH0 = 0x5404;
const MRQC = 0x5818; // multiple receive queues command
const RETA = 0x5c00; // redirection table: 32 words, one byte per entry (128 entries)
const RSSRK = 0x5c80; // RSS random key: 10 words
const RQDPC = (q: number): number => 0xc030 + 0x40 * q; // receive queue drop packet count

// Register bits
const CTRL_LRST = 1 << 3; // link reset
const CTRL_SLU = 1 << 6; // set link up
const CTRL_RST = 1 << 26; // software reset (self-clearing)
const STATUS_LU = 1 << 1; // link up
const STATUS_SPEED_SHIFT = 6; // 00 = 10, 01 = 100, 1x = 1000 Mbit/s
const EECD_AUTO_RD = 1 << 9; // EEPROM auto-read done
const CTRL_EXT_DRV_LOAD = 1 << 28; // a driver has taken the device (firmware hands over)
const RCTL_EN = 1 << 1;
const RCTL_UPE = 1 << 3; // unicast promiscuous
const RCTL_MPE = 1 << 4; // multicast promiscuous
const RCTL_BAM = 1 << 15; // accept broadcast
const RCTL_SECRC = 1 << 26; // strip the Ethernet CRC
const TCTL_EN = 1 << 1;
const TCTL_PSP = 1 << 3; // pad short packets
const TCTL_CT = 0x0f << 4; // collision threshold
const TCTL_COLD = 0x3f << 12; // collision distance (full duplex)
const RXCSUM_PCSD = 1 << 13; // packet checksum disable: RSS needs it
const MRQC_ENABLE_RSS = 0x2; // MRQE = RSS only (no VMDq)
const MRQC_RSS_FIELDS = (1 << 16) | (1 << 17) | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 23); // TCP/IPv4, IPv4, IPv6, TCP/IPv6, UDP/IPv4, UDP/IPv6
const GPIE_MSIX_MODE = 1 << 4; // one MSI-X vector per cause group, EICR bit n = vector n
const GPIE_PBA = 1 << 31; // pending bit array support (MSI-X)
const IVAR_VALID = 0x80;
const MDIC_PHY_ADDR = 1 << 21; // the internal PHY is at MDIO address 1
const MDIC_OP_WRITE = 1 << 26;
const MDIC_READY = 1 << 28;
const MDIC_ERROR = 1 << 30;
const PHY_BMCR = 0; // PHY control register (IEEE 802.3 clause 22)
const BMCR_SPEED1000 = 1 << 6;
const BMCR_FULL_DUPLEX = 1 << 8;
const BMCR_AN_RESTART = 1 << 9;
const BMCR_AN_ENABLE = 1 << 12;

/**
 * The advanced descriptors as the fast path writes and reads them (82576 datasheet 7.1.5, 7.2.2.3): transmit
 * `cmd_type_len` = DTYP data | DEXT | EOP | IFCS | RS | length, `olinfo_status` = PAYLEN (bit 14 on), whose bit 0 is
 * DD once written back; receive read format `pkt_addr`, `hdr_addr` = 0; write-back `status_error` (DD, EOP) and
 * `length`.
 */
const ADVANCED: DescriptorFormat = {
  txCmd: TXD_DTYP_DATA | TXD_DCMD_EOP | TXD_DCMD_IFCS | TXD_DCMD_RS | TXD_DCMD_DEXT,
  txLengthShift: TXD_PAYLEN_SHIFT,
  rxStatusOffset: AdvRxDescWb.layout.status_error.offset,
  rxLengthOffset: AdvRxDescWb.layout.length.offset,
  rxDone: RXD_STAT_DD,
  rxEop: RXD_STAT_EOP,
};
if (AdvTxDescRead.layout.cmd_type_len.offset !== 8 || AdvTxDescRead.layout.olinfo_status.offset !== 12) {
  throw new Error("igb: the advanced transmit descriptor no longer has the fast path's layout");
}
const RING_SIZE = 256; // 4 KiB per ring: one page, so contiguous in every IOMMU mode
/** Most queue pairs the driver sets up (the 82576 has 16; RSS alone spreads over at most 8, 4 here is plenty). */
export const IGB_MAX_QUEUES = 4;
// A fixed RSS key (any 40 bytes work; fixed so flows land on the same queue run after run)
const RSS_KEY = [
  0x6d5a56da,
  0x255b0ec2,
  0x4167253d,
  0x43a38fb0,
  0xd0ca2bcb,
  0xae7b30b4,
  0x77cb2da3,
  0x8030f20c,
  0x6a42b73b,
  0xbeac01fa,
];

/** Per-queue counters: the driver's frames and bytes, and the device's receive drops (RQDPC). */
export interface IgbQueueStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames the device dropped on this receive queue for want of descriptors (RQDPC, accumulated). */
  rxDropped: number;
}

/**
 * One 82576 port with `queues` queue pairs.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { Igb } from "./igb.ts";
 * using nic = new Igb(openDevice("0000:00:07.0"), 2048, 2);
 * const p = nic.pool.alloc()!;
 * p.length = 60;
 * nic.txBatch([p], 1, 1); // send on transmit queue 1
 * ```
 */
export class Igb extends NicPort implements Nic {
  readonly driver = "igb";
  readonly queues: number;
  readonly mac: string;
  readonly pool: PacketPool;
  readonly rxRingSize = RING_SIZE;
  readonly txRingSize = RING_SIZE;
  readonly #bar0: Region;
  readonly #pairs: QueuePair[];
  readonly #rxRegs: RxQueueRegs[] = [];
  readonly #txRegs: TxQueueRegs[] = [];
  readonly #dropped: number[];
  #irqs: IrqSet | null = null;
  #stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };

  /**
   * Resets and starts the port with `queues` queue pairs (1..{@linkcode IGB_MAX_QUEUES}); the device is owned (and
   * closed) by the driver from here on. The pool's buffers are split between the pairs, at least 768 each (the
   * two 256-descriptor rings of a pair hold up to 511 of them).
   */
  constructor(dev: Device, poolSize: number, queues = 1) {
    super(dev);
    if (!Number.isInteger(queues) || queues < 1 || queues > IGB_MAX_QUEUES) {
      throw new VfioError(`igb: ${queues} queues`, { remedy: `ask for 1..${IGB_MAX_QUEUES}` });
    }
    this.queues = queues;
    this.#dropped = new Array(queues).fill(0);
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = this.#bar0 = dev.bar(0);

    // Reset with interrupts masked (datasheet 4.5: mask, reset, mask again, wait for the EEPROM auto-read).
    this.#maskAll();
    bar0.write32(CTRL, bar0.read32(CTRL) | CTRL_RST);
    this.#until(() => (bar0.read32(CTRL) & CTRL_RST) === 0, "CTRL.RST did not clear");
    this.#maskAll();
    // EEPROM auto-read done (EECD.AUTO_RD) within 10 ms, as Linux waits; QEMU's igb loads the MAC at reset and
    // never sets the bit, so its absence is not an error (RAL0/RAH0 hold the address either way).
    const t0 = performance.now();
    while ((bar0.read32(EECD) & EECD_AUTO_RD) === 0 && performance.now() - t0 < 10);
    bar0.write32(CTRL_EXT, bar0.read32(CTRL_EXT) | CTRL_EXT_DRV_LOAD);

    const ral = bar0.read32(RAL0), rah = bar0.read32(RAH0);
    this.mac = formatMac([ral, ral >>> 8, ral >>> 16, ral >>> 24, rah, rah >>> 8].map((b) => b & 0xff));
    const perPair = Math.max(Math.floor(poolSize / queues), 3 * RING_SIZE);
    const store = new QueuePairs(dev, queues, perPair, ADVANCED, RING_SIZE);
    this.pool = new PacketPool(store);
    store.attach(this.pool);
    this.#pairs = store.pairs;
    this.stats(); // read (and so clear) the device counters, then start from zero
    this.#stats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };
    for (let q = 0; q < queues; q++) bar0.read32(RQDPC(q));

    // Receive: filters, RSS over the queues, then each queue's ring, then RCTL.EN.
    bar0.write32(RCTL, 0);
    for (let i = 0; i < 128; i++) bar0.write32(MTA + 4 * i, 0);
    this.#setupRss();
    bar0.write32(TCTL, 0);
    this.#pairs.forEach((pair, q) => {
      this.#rxRegs.push(pfRxQueueRegs(q));
      this.#txRegs.push(pfTxQueueRegs(q));
      const rx = this.#rxRegs[q], tx = this.#txRegs[q];
      startRxQueue(bar0, rx, pair.rxRing, RING_SIZE);
      startTxQueue(bar0, tx, pair.txRing, RING_SIZE);
      pair.start(bar0, { rdt: rx.rdt, tdt: tx.tdt, tdh: tx.tdh });
    });
    bar0.write32(RCTL, RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_SECRC);
    bar0.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);

    // Link: set link up, then restart auto-negotiation in the PHY (the reset left it idle); STATUS.LU follows.
    bar0.write32(CTRL, (bar0.read32(CTRL) & ~(CTRL_RST | CTRL_LRST)) | CTRL_SLU);
    this.#writePhy(PHY_BMCR, BMCR_AN_ENABLE | BMCR_AN_RESTART | BMCR_SPEED1000 | BMCR_FULL_DUPLEX);
  }

  /** Writes a PHY register through MDIC and waits for MDIC.READY. */
  #writePhy(reg: number, value: number): void {
    const bar0 = this.#bar0;
    bar0.write32(MDIC, MDIC_OP_WRITE | MDIC_PHY_ADDR | (reg << 16) | value);
    this.#until(() => (bar0.read32(MDIC) & MDIC_READY) !== 0, `PHY register ${reg} write did not complete`);
    if (bar0.read32(MDIC) & MDIC_ERROR) throw new VfioError(`igb ${this.address}: PHY register ${reg} write failed`);
  }

  #maskAll(): void {
    const bar0 = this.#bar0;
    bar0.write32(IMC, 0xffffffff);
    bar0.write32(EIMC, 0xffffffff);
    bar0.read32(ICR);
    bar0.read32(EICR);
  }

  #until(done: () => boolean, what: string): void {
    const t0 = performance.now();
    while (!done()) {
      if (performance.now() - t0 > 1000) throw new VfioError(`igb ${this.address}: ${what}`);
    }
  }

  /** RSS (datasheet 7.1.2.8): hash IPv4/IPv6 TCP/UDP flows with a fixed key; RETA entry i → queue i mod queues. */
  #setupRss(): void {
    const bar0 = this.#bar0;
    for (let i = 0; i < RSS_KEY.length; i++) bar0.write32(RSSRK + 4 * i, RSS_KEY[i]);
    for (let w = 0; w < 32; w++) {
      let word = 0;
      for (let b = 0; b < 4; b++) word |= ((w * 4 + b) % this.queues) << (8 * b);
      bar0.write32(RETA + 4 * w, word);
    }
    bar0.write32(RXCSUM, RXCSUM_PCSD);
    bar0.write32(MRQC, this.queues > 1 ? MRQC_ENABLE_RSS | MRQC_RSS_FIELDS : 0);
  }

  #check(queue: number): void {
    this.checkRunning("igb");
    if (!(queue >= 0 && queue < this.queues && Number.isInteger(queue))) {
      throw new VfioError(`igb ${this.address}: no queue ${queue}`, { remedy: `use 0..${this.queues - 1}` });
    }
  }

  link(): LinkStatus {
    const status = this.#bar0.read32(STATUS);
    const speed = (status >>> STATUS_SPEED_SHIFT) & 3;
    return { up: (status & STATUS_LU) !== 0, speedMbps: speed === 0 ? 10 : speed === 1 ? 100 : 1000 };
  }

  rxBatch(bufs: Packet[], n: number, queue = 0): number {
    this.#check(queue);
    return this.#pairs[queue].rx(bufs, n);
  }

  txBatch(bufs: Packet[], n: number, queue = 0): number {
    this.#check(queue);
    return this.#pairs[queue].tx(bufs, n);
  }

  txPending(): number {
    if (this.stopped) return 0;
    return this.#pairs.reduce((n, pair) => n + pair.pending(), 0);
  }

  /**
   * Interrupt-driven receive on `queue`: MSI-X vector `queue` (IVAR maps the receive queue to it; EIAC clears its
   * cause when it fires). Clears a stale cause, returns at once when a frame is already there, else unmasks the
   * vector (EIMS, which fires at once for a frame that came in meanwhile), waits, and masks it again (EIMC).
   */
  async waitRx(queue: number, timeoutMs: number): Promise<boolean> {
    this.#check(queue);
    const irqs = this.#irqs ??= this.#enableMsix();
    const bit = 1 << queue, bar0 = this.#bar0;
    irqs.poll(queue); // drop a count left from an earlier wake-up
    bar0.write32(EICR, bit);
    if (this.#pairs[queue].ready()) return true;
    bar0.write32(EIMS, bit);
    try {
      return (await irqs.wait(queue, { timeoutMs })) > 0 || this.#pairs[queue].ready();
    } finally {
      if (!this.closed) bar0.write32(EIMC, bit);
    }
  }

  #enableMsix(): IrqSet {
    const irqs = this.dev.enableIrqs(IrqIndex.MSIX, { count: this.queues });
    const bar0 = this.#bar0;
    bar0.write32(GPIE, GPIE_MSIX_MODE | GPIE_PBA);
    for (let q = 0; q < this.queues; q++) {
      // IVAR0 + 4q: byte 0 = receive queue q, byte 1 = transmit queue q (left unmapped)
      bar0.write32(IVAR0 + 4 * q, IVAR_VALID | q);
      bar0.write32(EITR0 + 4 * q, 0); // no throttling: fire on every frame
    }
    bar0.write32(EIAC, (1 << this.queues) - 1);
    bar0.write32(EIMC, 0xffffffff);
    return irqs;
  }

  /** Per-queue counters since open: the driver's frames and bytes, the device's receive drops. */
  queueStats(): IgbQueueStats[] {
    return this.#pairs.map((pair, q) => {
      if (!this.stopped) this.#dropped[q] += this.#bar0.read32(RQDPC(q));
      const { rxPackets, rxBytes, txPackets, txBytes } = pair;
      return { rxPackets, rxBytes, txPackets, txBytes, rxDropped: this.#dropped[q] };
    });
  }

  stats(): NicStats {
    return deviceStats(this.#bar0, this.#stats, this.stopped);
  }

  /** Last counter reads, then receive and transmit off, every queue disabled, interrupts masked. */
  protected halt(): void {
    this.stats();
    this.queueStats();
    const bar0 = this.#bar0;
    bar0.write32(RCTL, 0);
    bar0.write32(TCTL, 0);
    this.#pairs.forEach((_, q) => {
      bar0.write32(this.#rxRegs[q].rxdctl, 0);
      bar0.write32(this.#txRegs[q].txdctl, 0);
    });
    this.#maskAll();
  }
}
