/**
 * One NVMe queue pair: a submission queue and its completion queue, each a page of DMA memory, with up to
 * `depth - 1` commands in flight. A command is written into the SQ slot at the tail, with a free command id, and the
 * tail doorbell rung; the controller posts a completion entry carrying that id, whose phase tag flips on every pass
 * through the CQ (an entry is new while its phase equals ours). Completions arrive in any order and settle the
 * promise of the command whose id they carry.
 *
 * Completions are collected by MSI-X interrupt when the queue has a vector, else by polling the phase tag. Every read
 * of a completion entry is a `deviceLoad`: no JIT hoists it out of the loop, and it never writes the entry back (Bun
 * compiles `Atomics.load` to a locked read-modify-write, which under QEMU's single-vCPU TCG could put the old phase
 * tag back over a completion the controller had just posted: a command that never completes). Collection runs while
 * commands are in flight.
 *
 * A queue pair works over any {@linkcode BusMemory} and rings any {@linkcode Doorbells}: {@linkcode QueuePair.alloc}
 * allocates a `DmaBuffer` and uses BAR0's `Region`; a worker thread builds one from shared windows of memory and BAR0
 * the owner posted to it (`viewSharedWindow`), for queues the owner created with `createSharedIoQueuePair`.
 *
 * ```ts
 * import { command, type QueuePair } from "./queue.ts";
 * import { NvmOpcode, ReadWriteCommand } from "./structs.ts";
 * declare const io: QueuePair;
 * const reads = [0n, 8n, 16n].map((slba) =>
 *   io.submit(command(ReadWriteCommand, "read", { opc: NvmOpcode.READ, nsid: 1, slba, nlb: 7 }))
 * );
 * await Promise.all(reads); // three commands in flight at once (no data pointers: a sketch)
 * ```
 * @module
 */
import { setImmediate } from "node:timers";
import type { Fields, FieldValue, StructDef, StructView, WritableKeys } from "../../abi.ts";
import { hex } from "../../lib/hex.ts";
import { ClosedError, type Device, deviceLoad, type IrqSet, OutOfRangeError, VfioError } from "../../mod.ts";
import { type BusMemory, type DataRange, PAGE, prpEntries } from "./prp.ts";
import { cqHeadDoorbell, getBits, Reg, sqTailDoorbell } from "./registers.ts";
import { NvmeCommandError } from "./status.ts";
import { CompletionEntry, CQE_SIZE, CQE_STATUS, SQE_SIZE, STATUS_PHASE } from "./structs.ts";

/** The most entries per queue: one page of 64-byte submission entries, so each queue is one contiguous page. */
export const MAX_QUEUE_DEPTH = PAGE / SQE_SIZE;

/** Values for the writable fields of a command struct. */
export type CommandFields<F extends Fields> = { [K in WritableKeys<F>]?: FieldValue<F[K]> };

/** A command to submit: its struct, its field values, its data (if any) and a description for errors. */
export interface Command<F extends Fields = Fields> {
  /** The command's layout (a 64-byte submission entry). */
  readonly def: StructDef<F>;
  /** Field values; the rest stay zero. `cid`, `prp1` and `prp2` are filled in by the queue. */
  readonly fields: CommandFields<F>;
  /** What the command does, for error messages ("read of blocks 8+8 on queue 1"). */
  readonly what: string;
  /** The data the command transfers, if any: the queue builds its PRP entries. */
  readonly data?: DataRange;
}

/**
 * A {@linkcode Command} from its struct, description, field values and optional data.
 *
 * ```ts
 * import { command } from "./queue.ts";
 * import { AdminOpcode, DeleteQueueCommand } from "./structs.ts";
 * const del = command(DeleteQueueCommand, "delete I/O SQ 1", { opc: AdminOpcode.DELETE_IO_SQ, qid: 1 });
 * ```
 */
export function command<F extends Fields>(
  def: StructDef<F>,
  what: string,
  fields: CommandFields<F>,
  data?: DataRange,
): Command<F> {
  return { def, what, fields, data };
}

/** What a successful completion entry says. */
export interface Completion {
  /** The command id. */
  readonly cid: number;
  /** The command specific result (dword 0). */
  readonly result: number;
}

/** The MSI-X vector a completion queue interrupts on. */
export interface QueueIrq {
  /** The enabled MSI-X vectors. */
  readonly set: IrqSet;
  /** The vector of this queue. */
  readonly vector: number;
}

/**
 * The 32-bit register access a queue pair needs to BAR0 (its doorbells, and CSTS in timeout messages): what a
 * `Region` and a worker's `SharedWindowView` both are.
 *
 * ```ts
 * import { viewSharedWindow, type SharedWindow } from "../../mod.ts";
 * import type { Doorbells } from "./queue.ts";
 * declare const bar0: SharedWindow;
 * const doorbells: Doorbells = viewSharedWindow(bar0); // in a worker
 * ```
 */
export interface Doorbells {
  /** Reads the register at byte `offset`. */
  read32(offset: number): number;
  /** Writes the register at byte `offset`. */
  write32(offset: number, value: number): void;
}

/** What identifies a queue pair, as plain data (a worker receives it by `postMessage`). */
export interface QueuePairSpec {
  /** Queue identifier: 0 for the admin queue pair. */
  readonly id: number;
  /** Entries per queue, 2..{@linkcode MAX_QUEUE_DEPTH}. */
  readonly depth: number;
  /** Bytes between doorbells (`4 << CAP.DSTRD`). */
  readonly stride: number;
  /** How long to wait for the next completion before failing every command in flight. */
  readonly timeoutMs: number;
}

/** How to build a {@linkcode QueuePair}. */
export interface QueuePairOptions extends QueuePairSpec {
  /** BAR0, where the doorbells are. */
  readonly bar0: Doorbells;
  /** Completion by interrupt on this vector; polled without. */
  readonly irq?: QueueIrq;
}

interface Pending {
  readonly what: string;
  resolve(c: Completion): void;
  reject(e: unknown): void;
}

/** Dword indexes of the completion entry words the queue reads: dword 3 holds the command id and the status. */
const CQE_DW = { result: CompletionEntry.layout.result.offset / 4, cidStatus: CompletionEntry.layout.cid.offset / 4 };
const CQE_DWORDS = CQE_SIZE / 4;

/** Pages of a queue pair's memory. */
const SQ_PAGE = 0, CQ_PAGE = 1, LISTS_PAGE = 2;

/**
 * The bytes of memory a queue pair of `depth` entries uses: the SQ page, the CQ page, then one PRP list page per
 * command id.
 *
 * ```ts
 * import { queuePairBytes } from "./queue.ts";
 * queuePairBytes(64); // 65 pages
 * ```
 */
export function queuePairBytes(depth: number): number {
  return PAGE * (LISTS_PAGE + depth - 1);
}

/**
 * The bus addresses of the submission and completion queues in a queue pair's memory (for Create I/O SQ/CQ, or ASQ
 * and ACQ).
 *
 * ```ts
 * import type { DmaBuffer } from "../../mod.ts";
 * import { queueBusAddresses } from "./queue.ts";
 * declare const memory: DmaBuffer;
 * const { sq, cq } = queueBusAddresses(memory);
 * ```
 */
export function queueBusAddresses(memory: BusMemory): { sq: bigint; cq: bigint } {
  return { sq: memory.busAddress(SQ_PAGE * PAGE), cq: memory.busAddress(CQ_PAGE * PAGE) };
}

/** Spins without a completion between two looks at the clock (and a turn of the event loop). */
const SPINS_PER_CHECK = 0x3fff;

/** A submission/completion queue pair with several commands in flight, matched by command id. */
export class QueuePair {
  /** Queue identifier. */
  readonly id: number;
  /** Entries per queue. */
  readonly depth: number;
  /** Its interrupt vector, if it completes by interrupt. */
  readonly irq?: QueueIrq;
  /** Interrupts counted so far. */
  interrupts = 0;
  readonly #memory: BusMemory; // page 0: the SQ, page 1: the CQ, then one PRP list page per command id
  readonly #owned: Disposable | undefined; // what close() frees: memory this queue pair allocated
  readonly #bar0: Doorbells;
  readonly #stride: number;
  readonly #timeoutMs: number;
  readonly #sqViews = new Map<StructDef, StructView<Fields>[]>();
  readonly #cq32: Uint32Array; // the CQ, read only with deviceLoad (the controller writes it behind our back)
  readonly #sq32: Uint32Array;
  readonly #free: number[];
  readonly #pending: (Pending | undefined)[];
  #inFlight = 0;
  #sqTail = 0;
  #cqHead = 0;
  #phase = 1;
  #collecting = false;
  #failed: Error | undefined;

  /**
   * Allocates the queues' DMA memory on `dev` ({@linkcode queuePairBytes}) and builds a queue pair over it that frees
   * it on {@linkcode close}.
   *
   * ```ts
   * import type { Device, Region } from "../../mod.ts";
   * import { QueuePair } from "./queue.ts";
   * declare const dev: Device, bar0: Region;
   * using admin = QueuePair.alloc(dev, { id: 0, depth: 64, bar0, stride: 4, timeoutMs: 10_000 });
   * ```
   */
  static alloc(dev: Device, options: QueuePairOptions): QueuePair {
    checkDepth(options);
    // One allocation: on a 2 MiB page when one is free (never migrated, what no-IOMMU DMA wants), else 4 KiB pages,
    // each queue within one page (so physically contiguous) and each page's bus address asked for on its own.
    const memory = dev.allocDma(queuePairBytes(options.depth));
    try {
      return new QueuePair(memory, options, memory);
    } catch (e) {
      memory.close();
      throw e;
    }
  }

  /**
   * A queue pair over `memory` (at least {@linkcode queuePairBytes}, page aligned, the CQ page zero as fresh memory
   * is), ringing the doorbells of `options.bar0`. `owned`, if given, is disposed by {@linkcode close}; without it the
   * memory stays its owner's (a worker's queue pair over a shared window).
   */
  constructor(memory: BusMemory, options: QueuePairOptions, owned?: Disposable) {
    const { id, depth } = options;
    checkDepth(options);
    if (!(memory.size >= queuePairBytes(depth)) || memory.busAddress(0) % BigInt(PAGE) !== 0n) {
      throw new OutOfRangeError(
        `queue ${id}: ${memory.size} bytes of memory at bus address ${hex(memory.busAddress(0))} for depth ${depth}`,
        { remedy: `give it at least queuePairBytes(${depth}) = ${queuePairBytes(depth)} bytes starting on a page` },
      );
    }
    this.id = id;
    this.depth = depth;
    this.irq = options.irq;
    this.#bar0 = options.bar0;
    this.#stride = options.stride;
    this.#timeoutMs = options.timeoutMs;
    this.#memory = memory;
    this.#owned = owned;
    const cq = this.#memory.u8.subarray(CQ_PAGE * PAGE, (CQ_PAGE + 1) * PAGE);
    this.#cq32 = new Uint32Array(cq.buffer, cq.byteOffset, PAGE / 4);
    this.#sq32 = new Uint32Array(this.#memory.u8.buffer, this.#memory.u8.byteOffset + SQ_PAGE * PAGE, PAGE / 4);
    this.#free = Array.from({ length: depth - 1 }, (_, i) => depth - 2 - i); // pop() hands out 0 first
    this.#pending = new Array(depth - 1).fill(undefined);
  }

  /** The submission queue's bus address (for Create I/O SQ or ASQ). */
  get sqBus(): bigint {
    return queueBusAddresses(this.#memory).sq;
  }

  /** The completion queue's bus address (for Create I/O CQ or ACQ). */
  get cqBus(): bigint {
    return queueBusAddresses(this.#memory).cq;
  }

  /** The most commands in flight at once (`depth - 1`: a full queue keeps one slot empty). */
  get capacity(): number {
    return this.depth - 1;
  }

  /** Commands submitted and not yet completed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Writes `cmd` into the next SQ slot with a free command id and rings the tail doorbell; the promise settles
   * with its completion, or rejects with {@linkcode NvmeCommandError} for a non-zero status. Throws at once when
   * {@linkcode capacity} commands are in flight, for bad field values or data outside its buffer.
   */
  submit<F extends Fields>(cmd: Command<F>): Promise<Completion> {
    if (this.#failed) throw this.#failed;
    const cid = this.#free.pop();
    if (cid === undefined) {
      throw new VfioError(`${cmd.what}: queue ${this.id} has ${this.capacity} commands in flight`, {
        remedy: "await a completion before submitting more",
      });
    }
    try {
      const prp = cmd.data ? prpEntries(cmd.data, this.#memory, (LISTS_PAGE + cid) * PAGE) : undefined;
      const entry = this.#slot(cmd.def, this.#sqTail);
      entry.bytes.fill(0);
      Object.assign(entry, cmd.fields);
      if (prp) Object.assign(entry, prp);
      (entry as StructView<Fields> & { cid: number }).cid = cid;
      // Dword 0 again as a sequentially consistent store: no store of the entry may move past it (or the doorbell).
      const dword0 = (this.#sqTail * SQE_SIZE) / 4;
      Atomics.store(this.#sq32, dword0, this.#sq32[dword0]);
    } catch (e) {
      this.#free.push(cid);
      throw e;
    }
    const { promise, resolve, reject } = Promise.withResolvers<Completion>();
    this.#pending[cid] = { what: cmd.what, resolve, reject };
    this.#inFlight++;
    this.#sqTail = (this.#sqTail + 1) % this.depth;
    this.#bar0.write32(sqTailDoorbell(this.id, this.#stride), this.#sqTail);
    if (!this.#collecting) {
      this.#collecting = true;
      queueMicrotask(() => void this.#collect()); // after the caller's other submissions of this turn
    }
    return promise;
  }

  /**
   * Takes every new completion entry, settles its command's promise and rings the CQ head doorbell once; returns how
   * many it took. Collection runs by itself while commands are in flight: call this only to poll by hand.
   */
  reap(): number {
    let n = 0;
    let stray: number | undefined;
    for (;;) {
      const at = this.#cqHead * CQE_DWORDS;
      const dw3 = deviceLoad(this.#cq32, at + CQE_DW.cidStatus); // cid 15:0, status (with the phase tag) 31:16
      const status = dw3 >>> 16;
      if ((status & STATUS_PHASE) !== this.#phase) break;
      const cid = dw3 & 0xffff;
      // deviceLoad for the result too: a JIT may reuse a plain load of the same slot from the previous pass.
      const result = deviceLoad(this.#cq32, at + CQE_DW.result);
      this.#cqHead = (this.#cqHead + 1) % this.depth;
      if (this.#cqHead === 0) this.#phase ^= STATUS_PHASE;
      n++;
      const pending = this.#pending[cid];
      if (!pending) {
        stray = cid;
        continue;
      }
      this.#pending[cid] = undefined;
      this.#free.push(cid);
      this.#inFlight--;
      const field = getBits(status, CQE_STATUS);
      if (field === 0) pending.resolve({ cid, result });
      else pending.reject(new NvmeCommandError(pending.what, field));
    }
    if (n) this.#bar0.write32(cqHeadDoorbell(this.id, this.#stride), this.#cqHead);
    if (stray !== undefined) {
      throw this.#fail(new VfioError(`queue ${this.id}: completion for command ${stray}, not in flight`));
    }
    return n;
  }

  /** Collects completions until nothing is in flight: by interrupt, or polling. Fails everything on a timeout. */
  async #collect(): Promise<void> {
    try {
      let deadline = Date.now() + this.#timeoutMs;
      let spins = 0;
      while (this.#inFlight > 0) {
        if (this.irq) {
          const left = deadline - Date.now();
          if (left <= 0) throw this.#timeout();
          this.interrupts += await this.irq.set.wait(this.irq.vector, { timeoutMs: left });
        }
        if (this.reap() > 0) {
          deadline = Date.now() + this.#timeoutMs;
          await null; // the settled commands' continuations run (and may submit more) before we look again
        } else if (!this.irq && (++spins & SPINS_PER_CHECK) === 0) {
          if (Date.now() > deadline) throw this.#timeout();
          await new Promise((r) => setImmediate(r)); // let other queues and timers run
        }
      }
    } catch (e) {
      this.#fail(e instanceof Error ? e : new VfioError(String(e)));
    } finally {
      this.#collecting = false;
    }
  }

  #timeout(): VfioError {
    const oldest = this.#pending.find((p) => p !== undefined);
    const next = deviceLoad(this.#cq32, this.#cqHead * CQE_DWORDS + CQE_DW.cidStatus) >>> 16;
    const state = `SQ tail ${this.#sqTail}, CQ head ${this.#cqHead}, phase ${this.#phase}, next entry's status ` +
      `${hex(next)}, ${this.#inFlight} in flight, CSTS ${hex(this.#bar0.read32(Reg.CSTS))}`;
    return new VfioError(
      `${oldest?.what ?? "command"}: no completion within ${this.#timeoutMs} ms on queue ${this.id} (${state})`,
    );
  }

  /** Marks the queue unusable and rejects every command in flight with `e`. */
  #fail(e: Error): Error {
    this.#failed ??= e;
    for (const [cid, p] of this.#pending.entries()) {
      if (!p) continue;
      this.#pending[cid] = undefined;
      p.reject(e);
    }
    this.#inFlight = 0;
    return e;
  }

  /** The submission entry at `slot` viewed as `def` (views are made once per struct and slot). */
  #slot<F extends Fields>(def: StructDef<F>, slot: number): StructView<F> {
    let views = this.#sqViews.get(def);
    if (!views) {
      views = Array.from(
        { length: this.depth },
        (_, i) => def.view(this.#memory.u8, SQ_PAGE * PAGE + i * SQE_SIZE, SQE_SIZE),
      );
      this.#sqViews.set(def, views);
    }
    return views[slot] as StructView<F>;
  }

  /**
   * Fails what is in flight with `ClosedError` and frees the queues' memory if this queue pair allocated it
   * (idempotent). Stop the controller, or delete the queues, first.
   */
  close(): void {
    if (!this.#failed) this.#fail(new ClosedError(`NVMe queue pair ${this.id}`));
    this.#owned?.[Symbol.dispose]();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Throws unless the depth is one a queue pair of this layer can have. */
function checkDepth({ id, depth }: QueuePairSpec): void {
  if (!Number.isInteger(depth) || depth < 2 || depth > MAX_QUEUE_DEPTH) {
    throw new VfioError(`queue ${id}: depth ${depth} is not in 2..${MAX_QUEUE_DEPTH}`);
  }
}
