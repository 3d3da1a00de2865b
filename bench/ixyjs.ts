/**
 * P2's `ixyjs` variant: the design of ixy.js (github.com/ixy-languages/ixy.js, `src/IXYclass.js` rx_batch /
 * tx_batch, `src/descriptors.js`, `src/packets.js`, `src/mempool.js`, `forward.js`), re-implemented here on the
 * simulated NIC so that "how much faster than an ixy.js-style driver" is measured, not quoted. What it keeps from
 * that design, because that is where its time goes:
 * - a descriptor object made per descriptor visited, whose `upper()` / `wb()` return a fresh object of closures;
 * - 64-bit descriptor stores through a `BigUint64Array` with `bigint` bus addresses;
 * - one `Packet` object per buffer (with its own DataView / Uint8Array / Uint32Array), buffers kept in JS arrays,
 *   the mempool a JS `Array` free stack;
 * - `new Array(batch)` per forward call and `slice` for the frames TX did not take.
 * Only the register writes differ: they go through `Region.write32` like every other variant (ixy.js calls a
 * native addon), and the descriptor field offsets follow the simulated NIC's write-back layout.
 *
 * @module
 */
import { BUS_HI, BusyClock, SIM, type SimNic, TX_CMD } from "./nic_sim.ts";

const { REG_RDT, REG_TDT, RX_RING, TX_RING, RING_SIZE, BUFS, BUF_SIZE, NBUFS, HDR, DD, EOP } = SIM;
const TX_CLEAN_BATCH = 32, PAYLEN_SHIFT = 14;

interface MemView {
  d16: Uint16Array;
  d32: Uint32Array;
  d64: BigUint64Array;
}

/** What ixy.js's two descriptor classes share: the ring's views and the descriptor's byte offset. */
class Descriptor {
  memView: MemView;
  offset: number;
  constructor(memView: MemView, index: number) {
    this.memView = memView;
    this.offset = index * 16;
  }
}

class RxDescriptor extends Descriptor {
  upper(): { status_error: () => number; length: () => number } {
    return {
      status_error: () => this.memView.d32[3 + this.offset / 4],
      length: () => this.memView.d16[4 + this.offset / 2],
    };
  }
}

class TxDescriptor extends Descriptor {
  wb(): { status: () => number } {
    return { status: () => this.memView.d32[3 + this.offset / 4] };
  }
}

interface Mempool {
  free_stack: number[];
  free_stack_top: number;
  pkt_buffers: Packet[];
}

class Packet {
  mempool: Mempool;
  mempool_idx: number;
  size = 0;
  buf_addr_phy = 0n;
  mem: DataView;
  mem8: Uint8Array;
  mem32: Uint32Array;
  constructor(mempool: Mempool, index: number, memory: ArrayBuffer) {
    this.mempool = mempool;
    this.mempool_idx = index;
    const at = BUFS + index * BUF_SIZE;
    this.mem = new DataView(memory, at, BUF_SIZE);
    this.mem8 = new Uint8Array(memory, at, BUF_SIZE);
    this.mem32 = new Uint32Array(memory, at, BUF_SIZE / 4);
  }
  free(): void {
    this.mempool.free_stack[this.mempool.free_stack_top++] = this.mempool_idx;
  }
}

function allocBatch(mempool: Mempool, bufs: Packet[]): void {
  const n = Math.min(bufs.length, mempool.free_stack_top);
  for (let i = 0; i < n; i++) bufs[i] = mempool.pkt_buffers[mempool.free_stack[--mempool.free_stack_top]];
}

function alloc(mempool: Mempool): Packet {
  const bufs = new Array<Packet>(1);
  allocBatch(mempool, bufs);
  return bufs[0];
}

const wrap = (i: number): number => (i + 1) & (RING_SIZE - 1);

interface Queue {
  descriptors: MemView;
  index: number;
  clean_index: number;
  virtual_addresses: Packet[];
}

/** The ixy.js-style driver on a {@linkcode SimNic} freshly reset (buffers 0..511 on the RX ring). */
export class IxyJsDriver {
  readonly #nic: SimNic;
  readonly #pool: Mempool;
  readonly #rx: Queue;
  readonly #tx: Queue;

  constructor(nic: SimNic) {
    this.#nic = nic;
    const memory = nic.u32.buffer as ArrayBuffer;
    const view = (at: number): MemView => ({
      d16: new Uint16Array(memory, at, RING_SIZE * 8),
      d32: new Uint32Array(memory, at, RING_SIZE * 4),
      d64: new BigUint64Array(memory, at, RING_SIZE * 2),
    });
    const pool: Mempool = { free_stack: new Array(NBUFS), free_stack_top: 0, pkt_buffers: new Array(NBUFS) };
    for (let i = 0; i < NBUFS; i++) {
      const p = new Packet(pool, i, memory);
      p.buf_addr_phy = (BigInt(BUS_HI) << 32n) + BigInt(BUFS + i * BUF_SIZE + HDR);
      pool.pkt_buffers[i] = p;
    }
    for (let i = NBUFS; i-- > RING_SIZE;) pool.free_stack[pool.free_stack_top++] = i;
    this.#pool = pool;
    this.#rx = { descriptors: view(RX_RING), index: 0, clean_index: 0, virtual_addresses: new Array(RING_SIZE) };
    this.#tx = { descriptors: view(TX_RING), index: 0, clean_index: 0, virtual_addresses: new Array(RING_SIZE) };
    for (let i = 0; i < RING_SIZE; i++) this.#rx.virtual_addresses[i] = pool.pkt_buffers[i];
  }

  rxBatch(bufs: Packet[], num: number): number {
    const queue = this.#rx;
    let rx = queue.index, last = rx, n: number;
    for (n = 0; n < num; n++) {
      const desc = new RxDescriptor(queue.descriptors, rx);
      const status = desc.upper().status_error();
      if (!(status & DD)) break;
      if (!(status & EOP)) throw new Error("multi-segment packets are not supported");
      const buf = queue.virtual_addresses[rx];
      buf.size = desc.upper().length();
      const fresh = alloc(this.#pool);
      if (!fresh) throw new Error("mempool empty");
      desc.memView.d64[0 + desc.offset / 8] = fresh.buf_addr_phy;
      desc.memView.d64[1 + desc.offset / 8] = 0n;
      queue.virtual_addresses[rx] = fresh;
      bufs[n] = buf;
      last = rx;
      rx = wrap(rx);
    }
    if (rx !== last) {
      this.#nic.region.write32(REG_RDT, last);
      queue.index = rx;
    }
    return n;
  }

  txBatch(bufs: Packet[], num: number): number {
    const queue = this.#tx;
    let clean = queue.clean_index, cur = queue.index;
    for (;;) {
      let cleanable = cur - clean;
      if (cleanable < 0) cleanable += RING_SIZE;
      if (cleanable < TX_CLEAN_BATCH) break;
      let to = clean + TX_CLEAN_BATCH - 1;
      if (to >= RING_SIZE) to -= RING_SIZE;
      const txd = new TxDescriptor(queue.descriptors, to);
      if (!(txd.wb().status() & DD)) break;
      for (let i = clean;; i = wrap(i)) {
        queue.virtual_addresses[i].free();
        if (i === to) break;
      }
      clean = wrap(to);
    }
    queue.clean_index = clean;
    let sent: number;
    for (sent = 0; sent < num; sent++) {
      const next = wrap(cur);
      if (clean === next) break;
      const buf = bufs[sent];
      queue.virtual_addresses[cur] = buf;
      queue.index = wrap(queue.index);
      const txd = new TxDescriptor(queue.descriptors, cur);
      txd.memView.d64[0 + txd.offset / 8] = buf.buf_addr_phy;
      txd.memView.d32[2 + txd.offset / 4] = (TX_CMD | buf.size) >>> 0;
      txd.memView.d32[3 + txd.offset / 4] = buf.size << PAYLEN_SHIFT;
      cur = next;
    }
    this.#nic.region.write32(REG_TDT, queue.index);
    return sent;
  }

  /** One call of ixy.js's forward loop body: a fresh array, RX, touch, TX, free what TX did not take. */
  forwardOnce(batch: number): number {
    const bufs = new Array<Packet>(batch);
    const n = this.rxBatch(bufs, batch);
    if (n > 0) {
      for (let i = 0; i < n; i++) bufs[i].mem8[HDR + 1] += 1;
      const sent = this.txBatch(bufs, n);
      for (const buf of bufs.slice(sent, n)) buf.free();
    }
    return n;
  }
}

/** {@linkcode forward}'s contract for the ixyjs variant: busy driver CPU time (ns) for `packets` packets. */
export function forwardIxyJs(nic: SimNic, batch: number, packets: number, cpu: () => number): number {
  const driver = new IxyJsDriver(nic);
  const busy = new BusyClock(cpu);
  for (let done = 0; done < packets;) {
    const n = driver.forwardOnce(batch);
    if (n === 0) busy.idle();
    else {
      busy.work();
      done += n;
    }
  }
  return busy.total();
}
