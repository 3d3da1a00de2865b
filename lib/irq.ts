/**
 * Device interrupts through VFIO: an {@linkcode IrqSet} routes a range of vectors of one IRQ index (INTx, MSI,
 * MSI-X, ERR, REQ) to one eventfd each (`VFIO_DEVICE_SET_IRQS`), and waits for them without blocking the event
 * loop, or busy-polls them for latency-critical loops.
 *
 * ```ts
 * import { IrqIndex, IrqSet } from "@vfio-ts/vfio";
 * declare const dev: import("./types.ts").DeviceFd;
 * using irqs = IrqSet.enable(dev, IrqIndex.MSIX, { count: 4 });
 * const n = await irqs.wait(2, { timeoutMs: 1000 }); // interrupts that arrived on vector 2, 0 on timeout
 * ```
 * @module
 */

import { libc } from "../ffi/libc.ts";
import {
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VfioIrqSet,
} from "./abi/vfio.ts";
import { ClosedError, OutOfRangeError, UnsupportedError, VfioError } from "./errors.ts";
import { inspectable } from "./inspect.ts";
import { IrqEventFd, type SpinOptions, type WaitOptions } from "./irq_eventfd.ts";
import { type IrqIndex, type IrqIndexName, type IrqInfo, irqInfo, irqInfoAll } from "./irq_info.ts";
import type { DeviceFd } from "./types.ts";

export { IrqEventFd, type SpinOptions, type WaitOptions } from "./irq_eventfd.ts";
export { IrqIndex, type IrqIndexName, irqIndexName, type IrqInfo, irqInfo, irqInfoAll } from "./irq_info.ts";
export type { DeviceFd } from "./types.ts";

/** Options of {@linkcode IrqSet.enable}. */
export interface IrqEnableOptions {
  /** How many vectors to route, from `start` (default: all the index offers from `start`). */
  count?: number;
  /** The first vector (default 0). */
  start?: number;
  /**
   * For automasked vectors (INTx): unmask the vector at the start of every `wait()`/`events()` step, so a loop of
   * "wait, then acknowledge the interrupt in the device" keeps receiving interrupts. Acknowledge before the next
   * wait, or a level-triggered line fires again at once. Default false.
   */
  autoUnmask?: boolean;
}

/**
 * The `VFIO_DEVICE_SET_IRQS` flags of each thing an {@linkcode IrqSet} asks: `route` vectors to eventfds (or -1 to
 * stop one), `fire` vectors from software (count 0: disable the index), `mask` and `unmask` a maskable vector.
 *
 * ```ts
 * import { IRQ_SET_FLAGS } from "./irq.ts";
 * console.log(IRQ_SET_FLAGS.unmask.toString(16)); // "11": DATA_NONE | ACTION_UNMASK
 * ```
 */
export const IRQ_SET_FLAGS = {
  route: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
  fire: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
  mask: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
  unmask: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
} as const;

/** Options of {@linkcode IrqSet.waitSync}: a timeout and an override of the set's `autoUnmask`. */
export interface IrqWaitSyncOptions {
  /** Give up after this many milliseconds and return 0 (default: wait forever; 0: just look). */
  timeoutMs?: number;
  /** Unmask the vector before waiting (automasked INTx); defaults to the set's `autoUnmask`. */
  autoUnmask?: boolean;
}

/** Options of {@linkcode IrqSet.wait}: the eventfd wait options plus an override of the set's `autoUnmask`. */
export interface IrqWaitOptions extends WaitOptions {
  /** Unmask the vector before waiting (automasked INTx); defaults to the set's `autoUnmask`. */
  autoUnmask?: boolean;
}

/** Indexes that exclude each other in vfio-pci: only one of INTx, MSI, MSI-X can be enabled at a time. */
const EXCLUSIVE = new Set<number>([0, 1, 2]);
/** Live sets per device, to refuse a second set that the kernel would reject with a bare EINVAL. */
const LIVE = new WeakMap<DeviceFd, Set<IrqSet>>();

/**
 * A range of vectors of one IRQ index, each signalling its own eventfd. Vectors are numbered as the device numbers
 * them (`start` … `start + count - 1`). Resource: `close()` disables the index and closes the eventfds; it is
 * idempotent, wakes pending waits (they reject with `ClosedError`), and any later use throws `ClosedError`.
 *
 * ```ts
 * import { IrqIndex, IrqSet } from "@vfio-ts/vfio";
 * declare const dev: import("./types.ts").DeviceFd;
 * const intx = IrqSet.enable(dev, IrqIndex.INTX, { autoUnmask: true });
 * for await (const n of intx.events()) {
 *   // read and acknowledge the device's interrupt status here, before the next step unmasks the line
 * }
 * intx.close();
 * ```
 */
export class IrqSet {
  /** The IRQ index. */
  readonly index: IrqIndex;
  /** The index's name (INTx, MSI, MSI-X, ERR, REQ). */
  readonly name: IrqIndexName;
  /** The first vector of the set. */
  readonly start: number;
  /** The number of vectors in the set. */
  readonly count: number;
  /** What the device reported for the index when the set was enabled. */
  readonly info: IrqInfo;
  readonly #dev: DeviceFd;
  readonly #efds: IrqEventFd[];
  readonly #enabled: boolean[];
  readonly #autoUnmask: boolean;
  #closed = false;

  private constructor(dev: DeviceFd, info: IrqInfo, start: number, efds: IrqEventFd[], autoUnmask: boolean) {
    this.#dev = dev;
    this.info = info;
    this.index = info.index;
    this.name = info.name;
    this.start = start;
    this.count = efds.length;
    this.#efds = efds;
    this.#enabled = efds.map(() => true);
    this.#autoUnmask = autoUnmask;
  }

  /**
   * Routes `count` vectors of `index` from `start` to fresh eventfds (`VFIO_DEVICE_SET_IRQS` with
   * `DATA_EVENTFD | ACTION_TRIGGER`). Throws `UnsupportedError` (naming what the device offers) when the device
   * lacks the index or enough vectors, and a `VfioError` when another of INTx/MSI/MSI-X is already enabled on it.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msi = IrqSet.enable(dev, IrqIndex.MSI, { count: 1 });
   * ```
   */
  static enable(dev: DeviceFd, index: IrqIndex, options: IrqEnableOptions = {}): IrqSet {
    const info = irqInfo(dev, index);
    const start = options.start ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new OutOfRangeError(`${info.name} start vector must be a non-negative integer, got ${start}`);
    }
    if (info.count === 0) {
      throw new UnsupportedError(`${dev.name} has no ${info.name} interrupts`, { remedy: offered(dev) });
    }
    const count = options.count ?? info.count - start;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new OutOfRangeError(`${info.name} vector count must be a positive integer, got ${count}`, {
        remedy: `${dev.name} offers ${info.count} ${info.name} vector${info.count === 1 ? "" : "s"}`,
      });
    }
    if (start + count > info.count) {
      throw new UnsupportedError(
        `${dev.name} has ${info.count} ${info.name} vector${info.count === 1 ? "" : "s"}, ` +
          `not enough for vectors ${start}..${start + count - 1}`,
        { remedy: `ask for at most ${info.count - start} from vector ${start}; ${offered(dev)}` },
      );
    }
    if (!info.eventfd) {
      throw new UnsupportedError(`${dev.name} cannot signal ${info.name} interrupts through an eventfd`);
    }
    const live = LIVE.get(dev);
    for (const other of live ?? []) {
      if (other.index === info.index || (EXCLUSIVE.has(other.index) && EXCLUSIVE.has(info.index))) {
        throw new VfioError(`${dev.name} already has ${other.name} interrupts enabled`, {
          remedy: other.index === info.index
            ? `use the existing ${other.name} set, or close it first`
            : `vfio-pci enables one of INTx, MSI, MSI-X at a time: close the ${other.name} set first`,
        });
      }
    }

    const efds: IrqEventFd[] = [];
    try {
      for (let v = start; v < start + count; v++) efds.push(new IrqEventFd(`${info.name} vector ${v} of ${dev.name}`));
      setIrqs(dev, info.index, IRQ_SET_FLAGS.route, start, efds.map((e) => e.fd));
    } catch (e) {
      for (const efd of efds) efd.close();
      throw e;
    }
    const set = new IrqSet(dev, info, start, efds, options.autoUnmask ?? false);
    if (live) live.add(set);
    else LIVE.set(dev, new Set([set]));
    return set;
  }

  /** Whether the set has been closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The eventfd a vector signals (e.g. to hand to your own epoll); owned by the set, do not close it. */
  eventfd(vector: number): number {
    return this.#efd(vector).fd;
  }

  /** Whether a vector currently signals its eventfd (see {@linkcode IrqSet.disableVector}). */
  isEnabled(vector: number): boolean {
    this.#efd(vector);
    return this.#enabled[vector - this.start];
  }

  /**
   * Stops one vector from signalling (its eventfd set to -1); the other vectors keep working. Idempotent.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msix = IrqSet.enable(dev, IrqIndex.MSIX, { count: 4 });
   * msix.disableVector(3);
   * msix.enableVector(3);
   * ```
   */
  disableVector(vector: number): void {
    this.#efd(vector);
    if (!this.#enabled[vector - this.start]) return;
    setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.route, vector, [-1]);
    this.#enabled[vector - this.start] = false;
  }

  /** Routes one vector to its eventfd again after {@linkcode IrqSet.disableVector}. Idempotent. */
  enableVector(vector: number): void {
    const efd = this.#efd(vector);
    if (this.#enabled[vector - this.start]) return;
    setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.route, vector, [efd.fd]);
    this.#enabled[vector - this.start] = true;
  }

  /**
   * Masks a vector (`ACTION_MASK`): the device's interrupts are held back until {@linkcode IrqSet.unmask}. Only
   * maskable indexes (INTx in vfio-pci) support it.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using intx = IrqSet.enable(dev, IrqIndex.INTX);
   * intx.mask(0);
   * intx.unmask(0);
   * ```
   */
  mask(vector = this.start): void {
    this.#maskable(vector);
    setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.mask, vector, 1);
  }

  /**
   * Unmasks a vector (`ACTION_UNMASK`). INTx is automasked: after each interrupt the line stays masked until this is
   * called. Acknowledge the interrupt in the device first, or the still-asserted line fires again at once.
   */
  unmask(vector = this.start): void {
    this.#maskable(vector);
    setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.unmask, vector, 1);
  }

  /**
   * Fires a vector from software (`DATA_NONE | ACTION_TRIGGER` for that one vector): its eventfd is signalled as if
   * the device had interrupted. For tests and wake-ups.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msix = IrqSet.enable(dev, IrqIndex.MSIX, { count: 4 });
   * msix.trigger(2);
   * console.log(await msix.wait(2, { timeoutMs: 100 })); // 1
   * ```
   */
  trigger(vector = this.start): void {
    this.#efd(vector);
    // count 1, never 0: DATA_NONE with count 0 is how the index is disabled.
    setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.fire, vector, 1);
  }

  /** Reads a vector's counter without blocking: the interrupts since the last read, or 0. */
  poll(vector = this.start): number {
    return this.#efd(vector).poll();
  }

  /**
   * Busy-polls a vector's counter up to `maxSpins` times (about 1 µs each; blocks the thread): for latency-critical
   * loops. Returns the count, or 0 when the budget runs out.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msi = IrqSet.enable(dev, IrqIndex.MSI);
   * const n = msi.spin(0, { maxSpins: 10_000 });
   * ```
   */
  spin(vector = this.start, options: SpinOptions = {}): number {
    return this.#efd(vector).spin(options);
  }

  /**
   * Waits for interrupts on a vector without blocking the event loop; resolves how many arrived, 0 on timeout.
   * Closing the set meanwhile rejects it with `ClosedError`; aborting the signal rejects it with the reason.
   * The vector can be left out: `wait({ timeoutMs: 100 })` waits on the first vector.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msi = IrqSet.enable(dev, IrqIndex.MSI);
   * const n = await msi.wait(0, { timeoutMs: 500, signal: AbortSignal.timeout(1000) });
   * ```
   */
  wait(vector?: number | IrqWaitOptions, options: IrqWaitOptions = {}): Promise<number> {
    if (typeof vector === "object") return this.wait(undefined, vector);
    try {
      const v = vector ?? this.start;
      const efd = this.#efd(v);
      if (unmasksBeforeWait(this.info, this.#autoUnmask, options.autoUnmask)) this.unmask(v);
      return efd.wait(options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Waits for interrupts on a vector **on the calling thread** (a blocking read of its eventfd, or with a timeout
   * `poll(2)` + read, as a C driver thread does; it blocks the event loop, so use it in a worker or a dedicated
   * loop); returns how many arrived, 0 on timeout. The vector can be left out: `waitSync({ timeoutMs: 100 })` waits on the first vector.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msi = IrqSet.enable(dev, IrqIndex.MSI);
   * const n = msi.waitSync(0, { timeoutMs: 500 }); // 0 if no interrupt came within 500 ms
   * ```
   */
  waitSync(vector?: number | IrqWaitSyncOptions, options: IrqWaitSyncOptions = {}): number {
    if (typeof vector === "object") return this.waitSync(undefined, vector);
    const v = vector ?? this.start;
    const efd = this.#efd(v);
    if (unmasksBeforeWait(this.info, this.#autoUnmask, options.autoUnmask)) this.unmask(v);
    return efd.waitSync(options);
  }

  /**
   * How many waits on a vector found interrupts already pending (`immediate`: answered from one read) and how many
   * slept until one arrived (`slept`).
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * using msi = IrqSet.enable(dev, IrqIndex.MSI);
   * console.log(msi.waitCounts(0)); // { immediate: 0, slept: 0 }
   * ```
   */
  waitCounts(vector = this.start): { immediate: number; slept: number } {
    return this.#efd(vector).waitCounts;
  }

  /**
   * An async iterator over a vector's interrupts: each step waits and yields how many arrived. With `autoUnmask`
   * (INTx) each step unmasks first. Ends when the set is closed; an abort ends it with the signal's reason.
   *
   * ```ts
   * import { IrqIndex, IrqSet } from "./irq.ts";
   * declare const dev: import("./types.ts").DeviceFd;
   * const msi = IrqSet.enable(dev, IrqIndex.MSI);
   * for await (const n of msi.events(0)) if (n > 0) break;
   * msi.close();
   * ```
   */
  async *events(
    vector = this.start,
    options: { signal?: AbortSignal; autoUnmask?: boolean } = {},
  ): AsyncGenerator<number, void, undefined> {
    this.#efd(vector);
    while (!this.#closed) {
      let n: number;
      try {
        n = await this.wait(vector, options);
      } catch (e) {
        if (e instanceof ClosedError && this.#closed) return;
        throw e;
      }
      if (n > 0) yield n;
    }
  }

  /**
   * Disables the index (`DATA_NONE | ACTION_TRIGGER` with count 0), then closes the eventfds; pending waits reject
   * with `ClosedError`. Idempotent; if the device is already closed, only the eventfds are closed (the kernel
   * released the interrupts with the device).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    LIVE.get(this.#dev)?.delete(this);
    let fd = -1;
    try {
      fd = this.#dev.fd;
    } catch (e) {
      if (!(e instanceof ClosedError)) throw e;
    }
    try {
      if (fd >= 0) setIrqs(this.#dev, this.index, IRQ_SET_FLAGS.fire, 0, 0);
    } finally {
      for (const efd of this.#efds) efd.close();
    }
  }

  /** Same as {@linkcode IrqSet.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(irqs)` shows: index, vectors and which of them are enabled. */
  toJSON(): IrqSetSummary {
    const vectors = this.#enabled.map((on, i) => `${this.start + i}${on ? "" : " (disabled)"}`);
    return { device: this.#dev.name, index: this.name, vectors, closed: this.#closed };
  }

  #efd(vector: number): IrqEventFd {
    if (this.#closed) throw new ClosedError(`${this.name} interrupts of ${this.#dev.name}`);
    const i = vector - this.start;
    if (!Number.isInteger(vector) || i < 0 || i >= this.count) {
      throw new OutOfRangeError(`${this.name} vector ${vector} is not in this set`, {
        remedy: this.count === 1
          ? `the set has vector ${this.start} only`
          : `use vectors ${this.start}..${this.start + this.count - 1}`,
      });
    }
    return this.#efds[i];
  }

  #maskable(vector: number): void {
    this.#efd(vector);
    if (!this.info.maskable) {
      throw new UnsupportedError(`${this.name} vectors of ${this.#dev.name} cannot be masked`, {
        remedy: "vfio-pci can mask INTx only; silence an MSI or MSI-X vector with disableVector() instead",
      });
    }
  }
}
inspectable(IrqSet);

/** {@linkcode IrqSet.toJSON}'s plain form of an IRQ set. */
export interface IrqSetSummary {
  /** The device's name. */
  device: string;
  /** INTx, MSI, MSI-X, ERR or REQ. */
  index: IrqIndexName;
  /** The set's vectors, `(disabled)` after those switched off with `disableVector()`. */
  vectors: string[];
  /** Whether the set is closed. */
  closed: boolean;
}

/**
 * Whether a wait step unmasks its vector first: when unmasking is asked for (per wait, else per set) and the kernel
 * automasks the index (INTx: the line stays masked after each interrupt until unmasked). Never for MSI/MSI-X, which
 * the kernel does not mask, whatever the option says.
 *
 * ```ts
 * import { unmasksBeforeWait } from "./irq.ts";
 * console.log(unmasksBeforeWait({ automasked: true }, true)); // true: INTx with autoUnmask
 * console.log(unmasksBeforeWait({ automasked: true }, true, false)); // false: this wait said no
 * ```
 */
export function unmasksBeforeWait(
  info: Pick<IrqInfo, "automasked">,
  setOption: boolean,
  waitOption?: boolean,
): boolean {
  return (waitOption ?? setOption) && info.automasked;
}

/**
 * The `VFIO_DEVICE_SET_IRQS` argument for vectors `[start, start + n)`: `data` is the eventfd list (DATA_EVENTFD) or
 * the count (DATA_NONE). `IrqSet.unmask` sends `DATA_NONE | ACTION_UNMASK` with count 1.
 *
 * ```ts
 * import { IRQ_SET_FLAGS, irqSetRequest } from "./irq.ts";
 * const bytes = irqSetRequest(0, IRQ_SET_FLAGS.unmask, 0, 1); // unmask INTx vector 0
 * ```
 */
export function irqSetRequest(
  index: number,
  flags: number,
  start: number,
  data: readonly number[] | number,
): Uint8Array {
  const fds = typeof data === "number" ? [] : data;
  const arg = VfioIrqSet.alloc(fds.length * 4);
  arg.argsz = VfioIrqSet.size + fds.length * 4;
  arg.flags = flags;
  arg.index = index;
  arg.start = start;
  arg.count = typeof data === "number" ? data : fds.length;
  if (fds.length > 0) {
    const tail = arg.data;
    new Int32Array(tail.buffer, tail.byteOffset, fds.length).set(fds);
  }
  return arg.bytes;
}

/** `VFIO_DEVICE_SET_IRQS` with the argument of {@linkcode irqSetRequest}. */
function setIrqs(dev: DeviceFd, index: number, flags: number, start: number, data: number[] | number): void {
  libc.ioctl(dev.fd, VFIO_DEVICE_SET_IRQS, irqSetRequest(index, flags, start, data), {
    target: "VFIO_DEVICE_SET_IRQS",
    kind: "vfio-device-ioctl",
  });
}

/** "it offers INTx (1 vector), MSI (1 vector)": what to pick instead. */
function offered(dev: DeviceFd): string {
  const have = irqInfoAll(dev).filter((i) => i.count > 0 && i.index <= VFIO_PCI_MSIX_IRQ_INDEX);
  if (have.length === 0) return `${dev.name} offers no INTx, MSI or MSI-X interrupts`;
  return `it offers ${have.map((i) => `${i.name} (${i.count} vector${i.count === 1 ? "" : "s"})`).join(", ")}`;
}
