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
import {
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../lib/abi/vfio.ts";
import type { Poller, RingLayout } from "../lib/poll.ts";
import { Region, regionName } from "../lib/region.ts";
import type { BenchNative } from "./native.ts";

// The layout, mirrored from bench/c/bench_device.c.
const REG_RDT = 0x40, REG_TDT = 0xc0;
const RX_RING = 0x1000, TX_RING = 0x3000, RING_SIZE = 512, DESC = 16;
const BUFS = 0x10000, BUF_SIZE = 2048, NBUFS = 2048;
const PKT_LEN = 60, DD = 1, CMD = (1 | 8) << 24; // EOP | RS
const SIZE = BUFS + NBUFS * BUF_SIZE;

const RX: RingLayout = { offset: RX_RING, stride: DESC, size: RING_SIZE, statusOffset: 12, mask: DD, want: DD };
const TX: RingLayout = { offset: TX_RING, stride: DESC, size: RING_SIZE, statusOffset: 12, mask: DD, want: DD };

/** The shared memory of the simulated NIC, with the device thread started by {@linkcode SimNic.reset}. */
export class SimNic {
  readonly region: Region;
  readonly u32: Uint32Array;
  readonly #fd: number;
  readonly #c: BenchNative;
  #running = false;

  constructor(c: BenchNative) {
    this.#c = c;
    this.#fd = libc.memfdCreate("vfio-ts-sim-nic", MFD_CLOEXEC);
    libc.ftruncate(this.#fd, SIZE);
    const fd = this.#fd;
    const flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    this.region = Region.open({ fd, name: "sim-nic" }, 0, {
      mmap: "required",
      info: {
        index: 0,
        name: regionName(0),
        size: SIZE,
        offset: 0,
        flags,
        readable: true,
        writable: true,
        mmappable: true,
        sparseAreas: null,
        type: null,
        msixMappable: false,
        capabilityIds: [],
      },
    });
    this.u32 = new Uint32Array(this.region.unsafeArrayBuffer);
  }

  /** The mapping's address (for the C driver). */
  get address(): bigint {
    return this.region.unsafeAddress;
  }

  /** Stops the device, puts buffers 0..511 on the RX ring, hands slots 0..510 to the device, restarts it. */
  reset(): void {
    this.stop();
    this.u32.fill(0, 0, BUFS >> 2);
    for (let i = 0; i < RING_SIZE; i++) this.u32[(RX_RING + i * DESC) >> 2] = BUFS + i * BUF_SIZE;
    this.region.write32(REG_RDT, RING_SIZE - 1);
    this.#c.nicStart(this.address);
    this.#running = true;
  }

  /** Stops the device thread. */
  stop(): void {
    if (this.#running) this.#c.nicStop(this.address);
    this.#running = false;
  }

  /** Stops the device and unmaps. */
  close(): void {
    this.stop();
    this.region.close();
    libc.close(this.#fd);
  }
}

/**
 * Forwards `packets` packets in batches of up to `batch`; returns the driver's busy time in nanoseconds: thread CPU
 * time (`cpu`, ns) minus the stretches of polling an empty RX ring (waiting for the device thread), as in the C
 * reference, so that neither thread being descheduled on a loaded machine counts. With a `poller`
 * (the C helper), one call finds how many RX descriptors are done and one how many TX descriptors completed;
 * without, each status word is read with `Atomics.load`.
 */
export function forward(nic: SimNic, batch: number, packets: number, poller: Poller | null, cpu: () => number): number {
  const u32 = nic.u32, regs = nic.region;
  const pool = new Uint32Array(NBUFS), rxBuf = new Uint32Array(RING_SIZE), txBuf = new Uint32Array(RING_SIZE);
  const pkt = new Uint32Array(RING_SIZE);
  let npool = 0, rx = 0, tx = 0, clean = 0, done = 0, idle = 0, idleSince = -1;
  for (let i = RING_SIZE; i < NBUFS; i++) pool[npool++] = BUFS + i * BUF_SIZE;
  for (let i = 0; i < RING_SIZE; i++) rxBuf[i] = BUFS + i * BUF_SIZE;
  const t0 = cpu();
  while (done < packets) {
    // RX: take up to `batch` received frames, re-arm each slot with a fresh buffer.
    let n = 0;
    const ready = poller ? poller.ringReady(RX, rx, batch, 1) : batch;
    while (n < ready) {
      const d = (RX_RING + rx * DESC) >> 2;
      if (!poller && (Atomics.load(u32, d + 3) & DD) === 0) break;
      const len = u32[d + 2] & 0xffff, nb = pool[--npool];
      if (len === 0) throw new Error("empty frame");
      pkt[n++] = rxBuf[rx];
      rxBuf[rx] = nb;
      u32[d] = nb;
      u32[d + 1] = 0;
      u32[d + 3] = 0;
      rx = rx + 1 === RING_SIZE ? 0 : rx + 1;
    }
    if (n === 0) {
      if (idleSince < 0) idleSince = cpu();
      continue;
    }
    if (idleSince >= 0) {
      idle += cpu() - idleSince;
      idleSince = -1;
    }
    regs.write32(REG_RDT, rx === 0 ? RING_SIZE - 1 : rx - 1);
    for (let i = 0; i < n; i++) u32[pkt[i] >> 2] += 1; // touch each frame, as ixy's fwd does
    // TX: recycle the buffers of completed descriptors, queue the batch, ring the doorbell once.
    if (poller) {
      const outstanding = tx >= clean ? tx - clean : tx + RING_SIZE - clean;
      const k = outstanding ? poller.ringReady(TX, clean, outstanding, 1) : 0;
      for (let i = 0; i < k; i++) {
        pool[npool++] = txBuf[clean];
        clean = clean + 1 === RING_SIZE ? 0 : clean + 1;
      }
    } else {
      while (clean !== tx && (Atomics.load(u32, ((TX_RING + clean * DESC) >> 2) + 3) & DD) !== 0) {
        pool[npool++] = txBuf[clean];
        clean = clean + 1 === RING_SIZE ? 0 : clean + 1;
      }
    }
    for (let i = 0; i < n; i++) {
      const next = tx + 1 === RING_SIZE ? 0 : tx + 1;
      if (next === clean) { // ring full: drop
        pool[npool++] = pkt[i];
        continue;
      }
      const d = (TX_RING + tx * DESC) >> 2;
      u32[d] = pkt[i];
      u32[d + 1] = 0;
      u32[d + 2] = PKT_LEN | CMD;
      u32[d + 3] = 0;
      txBuf[tx] = pkt[i];
      tx = next;
    }
    regs.write32(REG_TDT, tx);
    done += n;
  }
  return cpu() - t0 - idle;
}
