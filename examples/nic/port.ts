/**
 * The life cycle every example port shares: a port owns its device; {@linkcode NicPort.stop} turns the device's
 * receive and transmit off once; {@linkcode NicPort.close} stops the port and then closes the device once, the
 * errors of both steps reported together (a `SuppressedError` when both throw), and is idempotent, as is
 * `[Symbol.dispose]`. A driver supplies {@linkcode NicPort.halt}, the device-specific part of stopping.
 *
 * ```ts
 * import type { Device } from "../../mod.ts";
 * import { NicPort } from "./port.ts";
 * class Quiet extends NicPort {
 *   protected halt(): void {} // e.g. RCTL = 0, TCTL = 0, mask every interrupt
 * }
 * declare const dev: Device;
 * using port = new Quiet(dev);
 * console.log(port.address, port.stopped);
 * ```
 * @module
 */
import { type Device, VfioError } from "../../mod.ts";

/** A port that owns its device: stop once, close once, errors of both reported. */
export abstract class NicPort implements Disposable {
  /** PCI address. */
  readonly address: string;
  /** The device (closed with the port; its DMA memory and interrupts go with it). */
  protected readonly dev: Device;
  #stopped = false;
  #closed = false;

  /** Takes ownership of `dev`. */
  constructor(dev: Device) {
    this.dev = dev;
    this.address = dev.name;
  }

  /** Whether {@linkcode NicPort.stop} has run. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Whether {@linkcode NicPort.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The device-specific part of {@linkcode NicPort.stop} (receive and transmit off, interrupts masked), run once,
   * while {@linkcode NicPort.stopped} is still false (so a last read of the device counters still counts).
   */
  protected abstract halt(): void;

  /** Throws when the port is stopped; `what` names the driver in the message. */
  protected checkRunning(what: string): void {
    if (this.#stopped) throw new VfioError(`${what} ${this.address} is stopped`);
  }

  /** Stops receiving and sending (idempotent; stopped even when the device-specific part throws). */
  stop(): void {
    if (this.#stopped) return;
    try {
      this.halt();
    } finally {
      this.#stopped = true;
    }
  }

  /** Stops the port, then closes its device (idempotent); an error of each step is reported. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    using steps = new DisposableStack();
    steps.defer(() => this.dev.close()); // last
    steps.defer(() => this.stop()); // first
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
