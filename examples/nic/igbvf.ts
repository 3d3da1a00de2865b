/**
 * An ixy-style poll-mode driver for an 82576 virtual function (8086:10ca; QEMU's `igbvf`), the PF staying on the
 * kernel's igb driver: reset and configuration go through the PF–VF mailbox (`igbvf_mbx.ts`), whose answer to the
 * VF's reset carries the MAC address the PF gives it; the VF then asks for another MAC address, multicast filters
 * or multicast promiscuous mode as the PF allows. One queue pair with advanced descriptors (`igb_ring.ts`),
 * interrupts masked. The PF decides what reaches the VF: frames to its MAC address, broadcast, and the multicast it
 * asked for; the kernel's igb answers only while the PF's interface is up.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { IgbVf } from "./igbvf.ts";
 * const nic = new IgbVf(openDevice("0000:00:13.0"), 1024);
 * console.log(nic.mac, nic.link());
 * nic.close();
 * ```
 * @module
 */
import { readdirSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { type Device, type Region, VfioError } from "../../mod.ts";
import { AdvRxRing, AdvTxRing, pfRxQueueRegs, pfTxQueueRegs, type RxQueueRegs, type TxQueueRegs } from "./igb_ring.ts";
import { VfMailbox } from "./igbvf_mbx.ts";
import { formatMac, type LinkStatus, type Nic, type NicStats, type Packet, PacketPool, parseMac } from "./nic.ts";

// VF registers (BAR0, 82576 datasheet 8.28)
const CTRL = 0x0000; // VF control (only RST)
const STATUS = 0x0008; // device status (the port's, read-only)
const EIMC = 0x1528; // extended interrupt mask clear
// Statistics: free-running 32-bit counters, never cleared by reads (the driver keeps the last value)
const VFGPRC = 0x0f10; // good packets received
const VFGPTC = 0x0f14; // good packets transmitted
const VFGORC = 0x0f18; // good octets received (FCS included)
const VFGOTC = 0x0f34; // good octets transmitted (FCS included)

// Register bits
const CTRL_RST = 1 << 26; // VF reset: the PF hears of it (VFLRE) and disables the VF's queues
const STATUS_LU = 1 << 1; // link up
const STATUS_SPEED_SHIFT = 6; // 00 = 10, 01 = 100, 1x = 1000 Mbit/s
const FCS_BYTES = 4;
const RESET_SETTLE_MS = 20;

/** A register block moved by `delta` bytes. */
function moved<T extends RxQueueRegs | TxQueueRegs>(regs: T, delta: number): T {
  return Object.fromEntries(Object.entries(regs).map(([k, v]) => [k, v + delta])) as T;
}

/**
 * A VF receive queue's registers (`q` = 0 or 1): the PF's block layout at RDBAL(q) = 0x2800 + 0x100·q (the VF's
 * view of its queue; the device maps it onto PF queue VF number + 8·q).
 */
export function vfRxQueueRegs(q: number): RxQueueRegs {
  const pf = pfRxQueueRegs(0);
  return moved(pf, 0x2800 + 0x100 * q - pf.rdbal);
}

/** A VF transmit queue's registers (`q` = 0 or 1): the PF's block layout at TDBAL(q) = 0x3800 + 0x100·q. */
export function vfTxQueueRegs(q: number): TxQueueRegs {
  const pf = pfTxQueueRegs(0);
  return moved(pf, 0x3800 + 0x100 * q - pf.tdbal);
}

const RING_SIZE = 256; // 4 KiB per ring: one page, contiguous in every IOMMU mode
const RXQ = vfRxQueueRegs(0);
const TXQ = vfTxQueueRegs(0);
const TWO32 = 2 ** 32;

/** Options of {@linkcode IgbVf}. */
export interface IgbVfOptions {
  /** Ask the PF for this MAC address (`52:54:00:12:34:56`) instead of the one its reset answer carries. */
  mac?: string;
  /** Multicast addresses to receive (at most 30; the PF hashes them into its multicast table). */
  multicast?: readonly string[];
  /** Ask for every multicast frame (multicast promiscuous mode). */
  allMulticast?: boolean;
  /** How long to wait for the PF at each mailbox step (default 2000 ms). */
  mailboxTimeoutMs?: number;
}

/** Where a VF's PF is, for messages: `0000:00:03.0 (eth0)`, from sysfs; `null` when not a VF. */
export function physfnOf(vf: string): string | null {
  try {
    const pf = basename(readlinkSync(`/sys/bus/pci/devices/${vf}/physfn`));
    let net: string[] = [];
    try {
      net = readdirSync(`/sys/bus/pci/devices/${pf}/net`);
    } catch {
      // no kernel driver on the PF, or no network interface
    }
    return net.length ? `${pf} (${net.join(", ")})` : pf;
  } catch {
    return null;
  }
}

/** A fresh locally administered unicast MAC address. */
function randomMac(): Uint8Array {
  const mac = crypto.getRandomValues(new Uint8Array(6));
  mac[0] = (mac[0] & 0xfe) | 0x02;
  return mac;
}

/**
 * One 82576 VF port.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { IgbVf } from "./igbvf.ts";
 * using nic = new IgbVf(openDevice("0000:00:13.0"), 1024, { allMulticast: true });
 * const p = nic.pool.alloc()!;
 * p.length = 60;
 * nic.txBatch([p], 1);
 * ```
 */
export class IgbVf implements Nic {
  readonly driver = "igbvf";
  readonly queues = 1;
  readonly address: string;
  /** The MAC address the PF agreed to. */
  readonly mac: string;
  /** The MAC address the PF's answer to the reset carried (`null`: NACK, none assigned). */
  readonly resetMac: string | null;
  readonly pool: PacketPool;
  readonly rxRingSize = RING_SIZE;
  readonly txRingSize = RING_SIZE;
  /** The mailbox to the PF (for further requests: multicast, promiscuous modes). */
  readonly mailbox: VfMailbox;
  readonly #dev: Device;
  readonly #bar0: Region;
  readonly #rx: AdvRxRing;
  readonly #tx: AdvTxRing;
  #last = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 }; // the device counters at the last read
  #stats: NicStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };
  #stopped = false;
  #closed = false;

  /**
   * Resets the VF through the PF, configures it and starts its queue pair; the driver owns `dev` from here on (and
   * closes it when the start fails).
   */
  constructor(dev: Device, poolSize: number, options: IgbVfOptions = {}) {
    this.#dev = dev;
    this.address = dev.name;
    try {
      const pf = physfnOf(dev.name);
      dev.config.enableMemory();
      dev.config.enableBusMaster();
      const bar0 = this.#bar0 = dev.bar(0);
      // STATUS is the port's and never 0 (full duplex, speed): 0 means the VF's BAR decodes nothing
      if (bar0.read32(STATUS) === 0) {
        throw new VfioError(`igbvf ${dev.name}: BAR0 reads 0 (STATUS = 0): the VF does not decode its registers`, {
          remedy: "check that SR-IOV is enabled on its PF (sriov_numvfs) with VF memory space on; QEMU 10.0.2's " +
            "emulated VFs on the root bus of q35 read 0 here (tests/integration/igbvf.test.ts)",
        });
      }
      bar0.write32(EIMC, 0x7); // the VF's three MSI-X causes: masked (polling)

      this.mailbox = new VfMailbox(bar0, {
        timeoutMs: options.mailboxTimeoutMs,
        pfHint: `the PF${pf ? ` ${pf}` : ""} must be on the kernel's igb with its interface up ` +
          `(ip link set <interface> up): the driver answers VFs only then`,
      });
      // VF reset (82576 datasheet 4.3.2.2.1): CTRL.RST, then the RESET message; the PF answers with the MAC address
      // it holds for the VF and enables the VF's receive and transmit (VFRE, VFTE).
      bar0.write32(CTRL, CTRL_RST);
      // Let the PF handle the reset event (VFLRE) before the RESET message: handled after it, the event would take
      // back the PF's "clear to send", and it ignores a VF's requests for 2 s after that (Linux's igbvf waits too).
      for (const t0 = performance.now(); performance.now() - t0 < RESET_SETTLE_MS;);
      const answer = this.mailbox.reset();
      this.resetMac = answer.mac;
      // No address from the PF (NACK): pick one, as Linux's igbvf does; the PF refuses a change of an address its
      // administrator set (PfRefusedError).
      const mac = options.mac ? parseMac(options.mac) : answer.mac ? parseMac(answer.mac) : randomMac();
      if (options.mac || !answer.mac) this.mailbox.setMac(mac);
      this.mac = formatMac(mac);
      if (options.multicast) this.mailbox.setMulticast(options.multicast.map(parseMac));
      if (options.allMulticast) this.mailbox.setPromiscuous({ multicast: true });

      this.pool = new PacketPool(dev, poolSize);
      this.#rx = new AdvRxRing(dev, this.pool, RING_SIZE);
      this.#tx = new AdvTxRing(dev, RING_SIZE);
      this.#readCounters(); // the counters run on from earlier users: start from their current values
      this.#stats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" };
      this.#rx.start(bar0, RXQ);
      this.#tx.start(bar0, TXQ);
    } catch (e) {
      dev.close(); // a failed start leaves nothing open
      throw e;
    }
  }

  #check(queue: number | undefined): void {
    if (this.#stopped) throw new VfioError(`igbvf ${this.address} is stopped`);
    if (queue) throw new VfioError(`igbvf ${this.address} has no queue ${queue}`, { remedy: "use queue 0" });
  }

  link(): LinkStatus {
    const status = this.#bar0.read32(STATUS);
    const speed = (status >>> STATUS_SPEED_SHIFT) & 3;
    return { up: (status & STATUS_LU) !== 0, speedMbps: speed === 0 ? 10 : speed === 1 ? 100 : 1000 };
  }

  rxBatch(bufs: Packet[], n: number, queue?: number): number {
    this.#check(queue);
    return this.#rx.rx(bufs, n);
  }

  txBatch(bufs: Packet[], n: number, queue?: number): number {
    this.#check(queue);
    return this.#tx.tx(bufs, n);
  }

  txPending(): number {
    return this.#stopped ? 0 : this.#tx.pending();
  }

  /** Adds what the device counted since the last read (32-bit counters that wrap) to the totals. */
  #readCounters(): void {
    const r = this.#bar0, s = this.#stats, last = this.#last;
    const now = { rxPackets: r.read32(VFGPRC), txPackets: r.read32(VFGPTC), rxBytes: r.read32(VFGORC) };
    const txBytes = r.read32(VFGOTC);
    const rx = (now.rxPackets - last.rxPackets + TWO32) % TWO32;
    const tx = (now.txPackets - last.txPackets + TWO32) % TWO32;
    s.rxPackets += rx;
    s.txPackets += tx;
    // the octet counters include each frame's FCS; the other drivers count frames without it
    s.rxBytes += (now.rxBytes - last.rxBytes + TWO32) % TWO32 - FCS_BYTES * rx;
    s.txBytes += (txBytes - last.txBytes + TWO32) % TWO32 - FCS_BYTES * tx;
    this.#last = { ...now, txBytes };
  }

  stats(): NicStats {
    if (!this.#stopped) this.#readCounters();
    return { ...this.#stats };
  }

  stop(): void {
    if (this.#stopped || this.#closed) return;
    this.#readCounters();
    this.#stopped = true;
    this.#rx.stop(RXQ);
    this.#tx.stop(TXQ);
  }

  close(): void {
    if (this.#closed) return;
    try {
      this.stop();
      this.#bar0.write32(CTRL, CTRL_RST); // tell the PF this VF is gone (it disables VFRE/VFTE for it)
    } finally {
      this.#closed = true;
      this.#dev.close(); // frees the rings and the pool with it
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
