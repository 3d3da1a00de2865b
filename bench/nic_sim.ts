/**
 * P2's memory-simulated NIC and the two TypeScript drivers that forward its packets (RX -> TX, ixy's fwd shape).
 * The "NIC" is a C thread (`bench/c/bench_device.c`) working on shared memory exactly as a NIC's DMA engine works
 * on descriptor rings: it fills the RX descriptors the driver hands it (up to RDT) and completes the TX
 * descriptors the driver queues (up to TDT). Registers and rings live in one memfd mapped through `Region`, so
 * the register writes are the library's own `Region.write32`.
 *
 * @module
 */
import { MFD_CLOEXEC } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import type { PacketQueue, QueueLayout } from "../lib/poll.ts";
import type { Region } from "../lib/region.ts";
import { openMemfdRegion } from "../tests/unit/memfd_region.ts";
import type { BenchNative } from "./native.ts";

// The layout, mirrored from bench/c/bench_device.c (see there: ixy-shaped descriptors and buffer headers).
const REG_RDT = 0x40, REG_TDT = 0xc0;
const RX_RING = 0x1000, TX_RING = 0x3000, RING_SIZE = 512, DESC = 16;
const BUFS = 0x10000, BUF_SIZE = 2048, NBUFS = 2048, HDR = 64;
const DD = 1, EOP = 2, TX_CLEAN_BATCH = 32, PAYLEN_SHIFT = 14;
/** ixgbe's advanced TX data descriptor command bits: EOP | IFCS | RS | DEXT, DTYP data. */
export const TX_CMD = ((1 | 2 | 8 | 32) << 24 | 3 << 20) >>> 0;
/** The high word of every bus address (the simulated DMA memory sits at 4 GiB in bus space). */
export const BUS_HI = 1;
const SIZE = BUFS + NBUFS * BUF_SIZE;
/** The simulated NIC's layout, for the variants in other files. */
export const SIM = { REG_RDT, REG_TDT, RX_RING, TX_RING, RING_SIZE, DESC, BUFS, BUF_SIZE, NBUFS, HDR, DD, EOP, SIZE };

/** The shared memory of the simulated NIC, with the device thread started by {@linkcode SimNic.reset}. */
export class SimNic {
  readonly region: Region;
  readonly u32: Uint32Array;
  readonly #fd: number;
  readonly #c: BenchNative;
  #thread = 0n;

  constructor(c: BenchNative) {
    this.#c = c;
    this.#fd = libc.memfdCreate("vfio-ts-sim-nic", MFD_CLOEXEC);
    libc.ftruncate(this.#fd, SIZE);
    const fd = this.#fd;
    this.region = openMemfdRegion({ fd, name: "sim-nic" }, SIZE);
    this.u32 = new Uint32Array(this.region.unsafeArrayBuffer);
  }

  /** The mapping's address (for the C driver). */
  get address(): bigint {
    return this.region.unsafeAddress;
  }

  /**
   * Stops the device, writes every buffer header (bus address, mempool index), puts buffers 0..511 on the RX ring,
   * hands slots 0..510 to the device, restarts it (unless `thread` is false: the caller then runs the device
   * inline with `nicStep`).
   */
  reset(thread = true): void {
    this.stop();
    resetRings(this);
    if (thread) this.start();
  }

  /** Starts the device thread (after {@linkcode SimNic.stop}: on the rings as they are). */
  start(): void {
    if (!this.#thread) this.#thread = this.#c.nicStart(this.address);
  }

  /** Stops the device thread. */
  stop(): void {
    if (this.#thread) this.#c.nicStop(this.address, this.#thread);
    this.#thread = 0n;
  }

  /** Stops the device and unmaps. */
  close(): void {
    this.stop();
    this.region.close();
    libc.close(this.#fd);
  }
}

/**
 * Puts a queue's memory in its start state (with the device stopped): every buffer header written (bus address,
 * mempool index), buffers 0..511 on the RX ring, the registers 0 but RDT, which hands slots 0..510 to the device.
 */
export function resetRings(queue: SimQueue): void {
  const u32 = queue.u32;
  u32.fill(0, 0, BUFS >> 2);
  for (let i = 0; i < NBUFS; i++) {
    const h = (BUFS + i * BUF_SIZE) >> 2;
    u32[h] = BUFS + i * BUF_SIZE; // bus address, low word (offset in the mapping)
    u32[h + 1] = BUS_HI;
    u32[h + 2] = i; // mempool index
    u32[h + 3] = 0; // size
  }
  for (let i = 0; i < RING_SIZE; i++) {
    const d = (RX_RING + i * DESC) >> 2;
    u32[d] = BUFS + i * BUF_SIZE + HDR;
    u32[d + 1] = BUS_HI;
  }
  queue.region.write32(REG_RDT, RING_SIZE - 1);
}

/** What {@linkcode forward} drives: the NIC's memory and a way to write its registers (a `SimNic`, or a worker's views). */
export interface SimQueue {
  readonly u32: Uint32Array;
  readonly region: { write32(offset: number, value: number): void };
}

/** A queue's driver-side arrays (free stack, RX/TX slot tables, the batch): allocated once per queue, as a driver does. */
interface Scratch {
  stack: Uint32Array;
  rxBufs: Uint32Array;
  txBufs: Uint32Array;
  bufs: Uint32Array;
}
const scratches = new WeakMap<SimQueue, Scratch>();
/**
 * The queue's arrays, made on its first run and reused by the next ones. Fresh arrays per run made each run's speed
 * depend on where they landed (Deno workers: 56-128 cycles/packet from run to run, against 56-60 with reused ones).
 */
function scratchOf(nic: SimQueue): Scratch {
  let s = scratches.get(nic);
  if (!s) {
    s = {
      stack: new Uint32Array(NBUFS),
      rxBufs: new Uint32Array(RING_SIZE),
      txBufs: new Uint32Array(RING_SIZE),
      bufs: new Uint32Array(RING_SIZE),
    };
    scratches.set(nic, s);
  }
  return s;
}

/**
 * Forwards `packets` packets in batches of up to `batch` with ixy's design on typed arrays (the C reference is
 * `c_forward` in bench/c/bench_device.c, step for step); returns the driver's busy time in nanoseconds: thread CPU
 * time (`cpu`, ns) minus the stretches of polling an empty RX ring (waiting for the device thread), as in the C
 * reference, so that neither thread being descheduled on a loaded machine counts.
 *
 * Buffers are numbers (the byte offset of their header); the mempool is a stack of indices; each 64-bit bus
 * address is stored as two 32-bit descriptor words (the low word never carries: buffers are 2 KiB aligned).
 * Each RX status word is read with `Atomics.load`. TX cleaning is ixy's: one `Atomics.load` of the last status of
 * each group of 32. (With the C helper, {@linkcode forwardQueue} does the same steps.) With `device`, the simulated
 * device's pass runs inline at the top of every loop (no device thread; its time counts as busy).
 */
export function forward(
  nic: SimQueue,
  batch: number,
  packets: number,
  cpu: () => number,
  device: (() => void) | null = null,
): number {
  const u32 = nic.u32, u8 = new Uint8Array(u32.buffer, u32.byteOffset, u32.byteLength), regs = nic.region;
  const { stack, rxBufs, txBufs, bufs } = scratchOf(nic);
  let top = 0, rxi = 0, tx = 0, clean = 0, done = 0;
  for (let i = NBUFS; i-- > RING_SIZE;) stack[top++] = i;
  for (let i = 0; i < RING_SIZE; i++) rxBufs[i] = BUFS + i * BUF_SIZE;
  const busy = new BusyClock(cpu);
  while (done < packets) {
    if (device) device(); // the simulated device's work, inline (bench/scaling.ts), where there is no device thread
    // RX: take up to `batch` received frames, re-arm each slot with a fresh buffer.
    let n = 0, last = rxi;
    for (; n < batch; n++) {
      const d = (RX_RING + rxi * DESC) >> 2;
      const status = Atomics.load(u32, d + 3);
      if ((status & DD) === 0) break;
      if ((status & EOP) === 0) throw new Error("multi-segment frame");
      const b = rxBufs[rxi];
      u32[(b >> 2) + 3] = u32[d + 2] & 0xffff; // size into the header
      const nb = BUFS + stack[--top] * BUF_SIZE, nh = nb >> 2;
      u32[d] = u32[nh] + HDR; // the new buffer's bus address from its header, as two words
      u32[d + 1] = u32[nh + 1];
      u32[d + 2] = 0; // header address 0, which also clears the status word
      u32[d + 3] = 0;
      rxBufs[rxi] = nb;
      bufs[n] = b;
      last = rxi;
      rxi = rxi + 1 === RING_SIZE ? 0 : rxi + 1;
    }
    if (n === 0) {
      busy.idle();
      continue;
    }
    busy.work();
    regs.write32(REG_RDT, last);
    for (let i = 0; i < n; i++) u8[bufs[i] + HDR + 1]++; // touch each frame, as ixy's fwd does
    // TX clean: whole groups of 32 descriptors, one status read each.
    for (;;) {
      const cleanable = tx >= clean ? tx - clean : tx + RING_SIZE - clean;
      if (cleanable < TX_CLEAN_BATCH) break;
      let to = clean + TX_CLEAN_BATCH - 1;
      if (to >= RING_SIZE) to -= RING_SIZE;
      if ((Atomics.load(u32, ((TX_RING + to * DESC) >> 2) + 3) & DD) === 0) break;
      for (let i = clean;; i = i + 1 === RING_SIZE ? 0 : i + 1) {
        stack[top++] = u32[(txBufs[i] >> 2) + 2];
        if (i === to) break;
      }
      clean = to + 1 === RING_SIZE ? 0 : to + 1;
    }
    // TX: queue the batch, ring the doorbell once, free what did not fit.
    let sent = 0;
    for (; sent < n; sent++) {
      const next = tx + 1 === RING_SIZE ? 0 : tx + 1;
      if (next === clean) break;
      const b = bufs[sent], h = b >> 2, d = (TX_RING + tx * DESC) >> 2, size = u32[h + 3];
      u32[d] = u32[h] + HDR;
      u32[d + 1] = u32[h + 1];
      u32[d + 2] = (TX_CMD | size) >>> 0;
      u32[d + 3] = size << PAYLEN_SHIFT;
      txBufs[tx] = b;
      tx = next;
    }
    regs.write32(REG_TDT, tx);
    for (let i = sent; i < n; i++) stack[top++] = u32[(bufs[i] >> 2) + 2];
    done += n;
  }
  return busy.total();
}

/** Where {@linkcode QUEUE}'s state block lives in the NIC memory (after the TX ring, before the buffers). */
const STATE = 0x5000;

/** The simulated NIC's queue pair as a {@linkcode Poller.queue} layout (the C helper's RX refill and TX post). */
export const QUEUE: QueueLayout = {
  rxRing: RX_RING,
  txRing: TX_RING,
  ringSize: RING_SIZE,
  buffers: BUFS,
  bufferSize: BUF_SIZE,
  bufferCount: NBUFS,
  headroom: HDR,
  state: STATE,
  txCmd: TX_CMD,
  txLengthShift: PAYLEN_SHIFT,
  txCleanBatch: TX_CLEAN_BATCH,
  rxStatusOffset: 12,
  rxLengthOffset: 8,
  rxDone: DD,
  rxEop: EOP,
};

/**
 * {@linkcode forward} through a {@linkcode PacketQueue} (prepared by {@linkcode Poller.queue} on this NIC's memory
 * while its device thread is stopped): one `receive` per batch (RX status reads, header lengths, slot re-arming in
 * the C helper), the frame touch in TypeScript, one `transmit` per batch (TX clean in groups of 32, descriptor
 * stores, freeing what did not fit in the helper), one doorbell each.
 */
export function forwardQueue(nic: SimQueue, q: PacketQueue, batch: number, packets: number, cpu: () => number): number {
  const u8 = new Uint8Array(nic.u32.buffer, nic.u32.byteOffset, nic.u32.byteLength), regs = nic.region;
  const frames = q.frames;
  let done = 0;
  const busy = new BusyClock(cpu);
  while (done < packets) {
    const n = q.receive(batch);
    if (n === 0) {
      busy.idle();
      continue;
    }
    busy.work();
    regs.write32(REG_RDT, q.rxTail);
    for (let i = 0; i < n; i++) u8[BUFS + frames[i] * BUF_SIZE + HDR + 1]++; // touch each frame, as ixy's fwd does
    q.transmit(0, n);
    regs.write32(REG_TDT, q.txTail);
    done += n;
  }
  return busy.total();
}

/**
 * A driver's busy CPU time: thread CPU time since construction minus the stretches between the first empty poll
 * ({@linkcode BusyClock.idle}) and the next batch of work ({@linkcode BusyClock.work}).
 */
export class BusyClock {
  readonly #cpu: () => number;
  readonly #t0: number;
  #idle = 0;
  #since = -1;
  constructor(cpu: () => number) {
    this.#cpu = cpu;
    this.#t0 = cpu();
  }
  /** An empty poll: starts an idle stretch unless one is running. */
  idle(): void {
    if (this.#since < 0) this.#since = this.#cpu();
  }
  /** Work arrived: ends the idle stretch, if any. */
  work(): void {
    if (this.#since >= 0) {
      this.#idle += this.#cpu() - this.#since;
      this.#since = -1;
    }
  }
  /** Busy ns so far. */
  total(): number {
    return this.#cpu() - this.#t0 - this.#idle;
  }
}
