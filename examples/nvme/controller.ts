/**
 * An NVMe controller brought up over vfio-ts (NVM Express Base Specification 1.4, 7.6.1 "Initialization"): reset
 * (CC.EN 0, wait for CSTS.RDY 0), the admin queue pair (AQA, ASQ, ACQ), enable with 4 KiB pages and 64/16-byte
 * entries, then admin commands: Identify, Set Features (number of queues), Create/Delete I/O queue pairs, and a
 * normal shutdown (CC.SHN) so written data is on the medium. `close()` stops the controller before its memory goes.
 *
 * An I/O queue pair can also be driven by a worker thread: {@linkcode Controller.createSharedIoQueuePair} creates the
 * queues in memory the controller owns and returns it with the queue's {@linkcode QueuePairSpec}; the owner posts the
 * worker windows of that memory and of BAR0 (`shareWindow`), the worker builds a `QueuePair` over them
 * (`viewSharedWindow`), and once the worker has stopped the owner deletes the queues
 * ({@linkcode Controller.deleteSharedIoQueuePair}).
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { Controller } from "./controller.ts";
 * using dev = openDevice("0000:00:04.0");
 * using ctrl = await Controller.enable(dev);
 * const id = await ctrl.identifyController();
 * console.log(id.nn, ctrl.cap.MQES + 1);
 * ```
 * @module
 */
import type { StructView } from "../../abi.ts";
import { hex } from "../../lib/hex.ts";
import { type Device, type DmaBuffer, type Region, VfioError } from "../../mod.ts";
import { type NamespaceInfo, namespaceInfo } from "./namespace.ts";
import { MAX_PRP_BYTES, PAGE } from "./prp.ts";
import {
  command,
  type Completion,
  MAX_QUEUE_DEPTH,
  queueBusAddresses,
  type QueueIrq,
  QueuePair,
  queuePairBytes,
  type QueuePairSpec,
} from "./queue.ts";
import {
  AQA,
  type Capabilities,
  CC,
  CSTS,
  decodeCap,
  getBits,
  read64,
  Reg,
  setBits,
  ShutdownNotification,
  ShutdownStatus,
  VS,
  write64,
} from "./registers.ts";
import {
  AdminOpcode,
  Cns,
  CQE_SIZE,
  CreateCqCommand,
  CreateSqCommand,
  DeleteQueueCommand,
  Feature,
  IDENTIFY_SIZE,
  IdentifyCommand,
  IdentifyController,
  IdentifyNamespace,
  NumberOfQueuesResult,
  QueueFlags,
  SetNumberOfQueuesCommand,
  SQE_SIZE,
} from "./structs.ts";

/** Options of {@linkcode Controller.enable}. */
export interface ControllerOptions {
  /** Entries per queue (admin and I/O), capped by CAP.MQES; default and most {@linkcode MAX_QUEUE_DEPTH}. */
  readonly queueDepth?: number;
  /** How long a command may take; default 10 s. */
  readonly commandTimeoutMs?: number;
}

/** Options of {@linkcode Controller.createIoQueuePair}. */
export interface IoQueueOptions {
  /** Queue identifier, 1 or more (at most what {@linkcode Controller.setNumberOfQueues} granted). */
  readonly id: number;
  /** Completion by this MSI-X vector (enable MSI-X first); polled without. */
  readonly irq?: QueueIrq;
}

/**
 * An I/O queue pair the controller created for another thread to drive: its memory (SQ page, CQ page, PRP list
 * pages, in the layout `QueuePair` uses) and what the worker passes to `new QueuePair(memory, { ...spec, bar0 })`.
 * The controller frees the memory when the queues are deleted or the controller closes.
 *
 * ```ts
 * import { shareWindow } from "../../mod.ts";
 * import type { Controller } from "./controller.ts";
 * declare const ctrl: Controller, worker: Worker;
 * const shared = await ctrl.createSharedIoQueuePair({ id: 2 });
 * worker.postMessage({ spec: shared.spec, queue: shareWindow(shared.memory), bar: shareWindow(ctrl.bar0) });
 * ```
 */
export interface SharedIoQueuePair {
  /** Queue identifier. */
  readonly id: number;
  /** The queues' memory. */
  readonly memory: DmaBuffer;
  /** Identifier, depth, doorbell stride and command timeout, as plain data. */
  readonly spec: QueuePairSpec;
}

/** The I/O queue counts a controller granted (Set Features, Number of Queues). */
export interface QueueCounts {
  /** I/O submission queues. */
  readonly submission: number;
  /** I/O completion queues. */
  readonly completion: number;
}

/** Entry sizes as powers of two, for CC.IOSQES and CC.IOCQES. */
const SQES_LOG2 = Math.log2(SQE_SIZE);
const CQES_LOG2 = Math.log2(CQE_SIZE);
/** CAP.TO counts in these. */
const TO_UNIT_MS = 500;

/** Polls CSTS until `field` reads `want`, failing on controller fatal status, all-ones (device gone) or timeout. */
async function waitStatus(
  bar0: Region,
  field: typeof CSTS[keyof typeof CSTS],
  want: number,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const csts = bar0.read32(Reg.CSTS);
    if (csts === 0xffffffff) throw new VfioError(`${what}: CSTS reads all ones (device gone or BAR disabled)`);
    if (getBits(csts, field) === want) return;
    if (getBits(csts, CSTS.CFS) && want !== 0) { // a fatal status left from before a reset is no news
      throw new VfioError(`${what}: controller fatal status (CSTS ${hex(csts)})`);
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new VfioError(`${what}: timed out after ${timeoutMs} ms (CSTS ${hex(csts)})`);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** An enabled NVMe controller with its admin queue pair. */
export class Controller {
  /** The device. */
  readonly dev: Device;
  /** BAR0: the controller registers and doorbells. */
  readonly bar0: Region;
  /** CAP by field. */
  readonly cap: Capabilities;
  /** VS as `major.minor.tertiary`. */
  readonly version: string;
  /** Entries per queue. */
  readonly depth: number;
  /** Bytes between doorbells. */
  readonly doorbellStride: number;
  /** CAP.TO in milliseconds: how long enable, reset and shutdown may take. */
  readonly readyTimeoutMs: number;
  /** The admin queue pair (id 0). */
  readonly admin: QueuePair;
  /** The largest transfer of one command: MDTS, known after {@linkcode identifyController}. */
  maxTransferBytes: number = MAX_PRP_BYTES;
  readonly #identify: DmaBuffer;
  readonly #timeoutMs: number;
  readonly #io = new Map<number, QueuePair>();
  readonly #shared = new Map<number, SharedIoQueuePair>();
  #closed = false;

  private constructor(dev: Device, admin: QueuePair, identify: DmaBuffer, cap: Capabilities, timeoutMs: number) {
    this.dev = dev;
    this.bar0 = dev.bar(0);
    this.cap = cap;
    const vs = this.bar0.read32(Reg.VS);
    this.version = `${getBits(vs, VS.MJR)}.${getBits(vs, VS.MNR)}.${getBits(vs, VS.TER)}`;
    this.depth = admin.depth;
    this.doorbellStride = 4 << cap.DSTRD;
    this.readyTimeoutMs = cap.TO * TO_UNIT_MS || TO_UNIT_MS;
    this.admin = admin;
    this.#identify = identify;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Resets the controller, sets up the admin queue pair and enables it (memory space and bus mastering on first).
   * Throws `VfioError` when the controller cannot use 4 KiB pages or does not become ready.
   */
  static async enable(dev: Device, options: ControllerOptions = {}): Promise<Controller> {
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = dev.bar(0);
    const cap = decodeCap(read64(bar0, Reg.CAP));
    if (cap.MPSMIN !== 0) {
      throw new VfioError(`the controller's smallest page is ${4 << cap.MPSMIN} KiB; this layer uses 4 KiB`);
    }
    const depth = Math.min(options.queueDepth ?? MAX_QUEUE_DEPTH, cap.MQES + 1);
    const timeoutMs = options.commandTimeoutMs ?? 10_000;
    const stride = 4 << cap.DSTRD;
    const readyMs = cap.TO * TO_UNIT_MS || TO_UNIT_MS;

    // Reset: clear CC.EN and wait for CSTS.RDY to drop (the controller forgets every queue).
    bar0.write32(Reg.CC, setBits(bar0.read32(Reg.CC), CC.EN, 0));
    await waitStatus(bar0, CSTS.RDY, 0, "controller reset", readyMs);

    using stack = new DisposableStack();
    const admin = stack.use(QueuePair.alloc(dev, { id: 0, depth, bar0, stride, timeoutMs }));
    const identify = stack.use(dev.allocDma(IDENTIFY_SIZE)); // on a 2 MiB page if one is free (not migrated)
    stack.defer(() => bar0.write32(Reg.CC, 0)); // on failure: stopped before the queues are freed

    bar0.write32(Reg.AQA, setBits(setBits(0, AQA.ASQS, depth - 1), AQA.ACQS, depth - 1));
    write64(bar0, Reg.ASQ, admin.sqBus);
    write64(bar0, Reg.ACQ, admin.cqBus);
    let cc = setBits(0, CC.IOCQES, CQES_LOG2);
    cc = setBits(cc, CC.IOSQES, SQES_LOG2);
    cc = setBits(cc, CC.MPS, 0); // 4 KiB << 0
    cc = setBits(cc, CC.CSS, 0); // the NVM command set
    bar0.write32(Reg.CC, setBits(cc, CC.EN, 1));
    await waitStatus(bar0, CSTS.RDY, 1, "controller enable", readyMs);
    const ctrl = new Controller(dev, admin, identify, cap, timeoutMs);
    stack.move();
    return ctrl;
  }

  /** Runs an admin command into the identify page and returns a copy of the 4 KiB it returned. */
  async #identifyInto(cns: number, nsid: number, what: string): Promise<Uint8Array> {
    this.#identify.fill(0);
    const data = { buffer: this.#identify, offset: 0, length: IDENTIFY_SIZE };
    await this.admin.submit(command(IdentifyCommand, what, { opc: AdminOpcode.IDENTIFY, nsid, cns }, data));
    return this.#identify.u8.slice(0, IDENTIFY_SIZE);
  }

  /** Identify Controller (CNS 01h); also sets {@linkcode maxTransferBytes} from MDTS. */
  async identifyController(): Promise<StructView<typeof IdentifyController.layout>> {
    const id = IdentifyController.view(await this.#identifyInto(Cns.CONTROLLER, 0, "identify controller"));
    // MDTS: the largest transfer is 2^MDTS minimum-size pages (0: no limit but ours).
    this.maxTransferBytes = id.mdts ? Math.min(PAGE * 2 ** id.mdts, MAX_PRP_BYTES) : MAX_PRP_BYTES;
    return id;
  }

  /** Identify Namespace (CNS 00h) of `nsid`, decoded; throws when the namespace is not active. */
  async identifyNamespace(nsid: number): Promise<NamespaceInfo> {
    if (!Number.isInteger(nsid) || nsid < 1 || nsid > 0xfffffffe) {
      throw new VfioError(`namespace ${nsid}: not a namespace id (1..0xfffffffe)`);
    }
    const id = IdentifyNamespace.view(await this.#identifyInto(Cns.NAMESPACE, nsid, "identify namespace"));
    if (id.nsze === 0n) throw new VfioError(`namespace ${nsid} is not active (identify returned zeros)`);
    return namespaceInfo(nsid, id);
  }

  /** Set Features, Number of Queues: asks for `count` I/O submission and completion queues; returns the grant. */
  async setNumberOfQueues(count: number): Promise<QueueCounts> {
    const { result } = await this.admin.submit(command(SetNumberOfQueuesCommand, "set features (number of queues)", {
      opc: AdminOpcode.SET_FEATURES,
      fid: Feature.NUMBER_OF_QUEUES,
      nsqr: count - 1,
      ncqr: count - 1,
    }));
    const granted = NumberOfQueuesResult.alloc();
    new DataView(granted.bytes.buffer).setUint32(0, result, true);
    return { submission: granted.nsqa + 1, completion: granted.ncqa + 1 };
  }

  /** The spec of I/O queue pair `id`, after checking the id is valid and free. */
  #newQueue(id: number): QueuePairSpec {
    if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new VfioError(`I/O queue id ${id}: expected 1..65535`);
    if (this.#io.has(id) || this.#shared.has(id)) throw new VfioError(`I/O queue ${id} exists already`);
    return { id, depth: this.depth, stride: this.doorbellStride, timeoutMs: this.#timeoutMs };
  }

  /** Create I/O CQ `id` at `cqBus` (on `irq`'s vector, if any), then Create I/O SQ `id` at `sqBus` feeding it. */
  async #createQueues(spec: QueuePairSpec, sqBus: bigint, cqBus: bigint, irq: QueueIrq | undefined): Promise<void> {
    const { id, depth } = spec;
    await this.admin.submit(command(CreateCqCommand, `create I/O CQ ${id}`, {
      opc: AdminOpcode.CREATE_IO_CQ,
      prp1: cqBus,
      cqid: id,
      qsize: depth - 1,
      cq_flags: QueueFlags.PC | (irq ? QueueFlags.IEN : 0),
      irq_vector: irq?.vector ?? 0,
    }));
    await this.admin.submit(command(CreateSqCommand, `create I/O SQ ${id}`, {
      opc: AdminOpcode.CREATE_IO_SQ,
      prp1: sqBus,
      sqid: id,
      qsize: depth - 1,
      sq_flags: QueueFlags.PC,
      cqid: id,
    }));
  }

  /** Delete I/O SQ `id`, then its CQ. */
  async #deleteQueues(id: number): Promise<void> {
    const del = (opc: number, what: string): Promise<Completion> =>
      this.admin.submit(command(DeleteQueueCommand, `${what} ${id}`, { opc, qid: id }));
    await del(AdminOpcode.DELETE_IO_SQ, "delete I/O SQ");
    await del(AdminOpcode.DELETE_IO_CQ, "delete I/O CQ");
  }

  /** Creates I/O completion queue `id` (with its interrupt vector, if any), then submission queue `id` feeding it. */
  async createIoQueuePair(options: IoQueueOptions): Promise<QueuePair> {
    const spec = this.#newQueue(options.id);
    const q = QueuePair.alloc(this.dev, { ...spec, bar0: this.bar0, irq: options.irq });
    try {
      await this.#createQueues(spec, q.sqBus, q.cqBus, options.irq);
    } catch (e) {
      q.close(); // a created CQ without its SQ goes with the controller's next reset
      throw e;
    }
    this.#io.set(spec.id, q);
    return q;
  }

  /** Deletes I/O submission queue `q.id`, then its completion queue, and frees their memory. */
  async deleteIoQueuePair(q: QueuePair): Promise<void> {
    if (this.#io.get(q.id) !== q) throw new VfioError(`I/O queue ${q.id} is not one of this controller's`);
    await this.#deleteQueues(q.id);
    this.#io.delete(q.id);
    q.close();
  }

  /**
   * Creates I/O queue pair `id` (polled: no interrupt vector) in memory for another thread to drive, and returns that
   * memory with the queue's spec ({@linkcode SharedIoQueuePair}). Nothing here submits on it: the worker does.
   */
  async createSharedIoQueuePair(options: { readonly id: number }): Promise<SharedIoQueuePair> {
    const spec = this.#newQueue(options.id);
    const memory = this.dev.allocDma(queuePairBytes(spec.depth));
    try {
      const { sq, cq } = queueBusAddresses(memory);
      await this.#createQueues(spec, sq, cq, undefined);
    } catch (e) {
      memory.close();
      throw e;
    }
    const shared = { id: spec.id, memory, spec };
    this.#shared.set(spec.id, shared);
    return shared;
  }

  /**
   * Deletes a shared I/O queue pair's submission and completion queues and frees its memory. Stop the worker that
   * drives it first (terminate it, or wait for its last completion): its views of the memory go with it.
   */
  async deleteSharedIoQueuePair(shared: SharedIoQueuePair): Promise<void> {
    if (this.#shared.get(shared.id) !== shared) {
      throw new VfioError(`shared I/O queue ${shared.id} is not one of this controller's`);
    }
    await this.#deleteQueues(shared.id);
    this.#shared.delete(shared.id);
    shared.memory.close();
  }

  /** A normal shutdown (CC.SHN): the controller puts written data on the medium, then reports CSTS.SHST complete. */
  async shutdown(): Promise<void> {
    this.bar0.write32(Reg.CC, setBits(this.bar0.read32(Reg.CC), CC.SHN, ShutdownNotification.NORMAL));
    await waitStatus(this.bar0, CSTS.SHST, ShutdownStatus.COMPLETE, "shutdown", this.readyTimeoutMs);
  }

  /** Stops the controller (CC 0), then frees every queue and the identify page (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    using stack = new DisposableStack();
    stack.use(this.#identify);
    stack.use(this.admin);
    for (const q of this.#io.values()) stack.use(q);
    for (const q of this.#shared.values()) stack.use(q.memory);
    this.#io.clear();
    this.#shared.clear();
    if (!this.bar0.closed) this.bar0.write32(Reg.CC, 0); // runs first: stop DMA before the memory goes
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
