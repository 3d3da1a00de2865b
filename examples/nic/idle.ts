/**
 * What a poll loop does when it runs dry, for any driver: ixy's interrupt design (poll while busy; after `emptyRounds`
 * rounds without work, arm the receive queues' interrupts through {@linkcode Nic.waitRx}, `await` one of them, then
 * poll again), or, without interrupts, {@linkcode Backoff}'s 1 ms nap (or pure busy polling).
 *
 * Each watched receive queue has at most one `waitRx` in flight: a sleep arms the queues that are not already armed
 * and waits for the first to fire (or the timeout); the others stay armed and resolve on their own. Call
 * {@linkcode IdleLoop.settle} before stopping the ports, so no wait is left pending on a closed device.
 *
 * ```ts
 * import { IdleLoop } from "./idle.ts";
 * import type { Nic, Packet } from "./nic.ts";
 * declare const nic: Nic;
 * const idle = new IdleLoop([{ nic, queue: 0 }], { interrupts: nic.waitRx !== undefined });
 * const bufs: Packet[] = new Array(32);
 * for (let round = 0; round < 1000; round++) {
 *   const n = nic.rxBatch(bufs, 32, 0);
 *   for (let i = 0; i < n; i++) bufs[i].free();
 *   if (idle.idle(n > 0)) await idle.sleep(100);
 * }
 * await idle.settle();
 * ```
 * @module
 */
import { UnsupportedError } from "../../mod.ts";
import { Backoff, type Nic } from "./nic.ts";

/** A receive queue of a port. */
export interface RxQueue {
  nic: Nic;
  queue: number;
}

/** Options of {@linkcode IdleLoop}. */
export interface IdleOptions {
  /** Sleep on the receive queues' interrupts (every port's driver must implement `waitRx`). */
  interrupts?: boolean;
  /** Without interrupts: never sleep (ixy's pure busy polling); default false (Backoff's 1 ms nap). */
  busy?: boolean;
  /** With interrupts: empty rounds in a row before sleeping (default 16). */
  emptyRounds?: number;
}

/** Counters of an {@linkcode IdleLoop}. */
export interface IdleStats {
  /** Sleeps taken. */
  sleeps: number;
  /** Sleeps that ended by an interrupt (a frame), not by the timeout. */
  wakeups: number;
}

/**
 * Decides when a poll loop sleeps, and sleeps: on receive interrupts, or by napping.
 *
 * ```ts
 * import { IdleLoop } from "./idle.ts";
 * import type { Nic } from "./nic.ts";
 * declare const a: Nic, b: Nic;
 * const idle = new IdleLoop([{ nic: a, queue: 0 }, { nic: b, queue: 0 }], { interrupts: true });
 * if (idle.idle(false)) await idle.sleep(50);
 * await idle.settle();
 * ```
 */
export class IdleLoop {
  readonly #queues: RxQueue[];
  readonly #interrupts: boolean;
  readonly #emptyRounds: number;
  readonly #backoff: Backoff;
  readonly #pending: (Promise<boolean> | null)[];
  #empty = 0;
  /** Sleeps taken, and how many of them an interrupt ended. */
  readonly stats: IdleStats = { sleeps: 0, wakeups: 0 };

  /** Watches `queues`; throws `UnsupportedError` when interrupts are asked of a driver without `waitRx`. */
  constructor(queues: RxQueue[], options: IdleOptions = {}) {
    this.#queues = queues;
    this.#interrupts = options.interrupts ?? false;
    this.#emptyRounds = options.emptyRounds ?? 16;
    this.#backoff = new Backoff({ busy: options.busy });
    this.#pending = queues.map(() => null);
    if (this.#interrupts) {
      for (const { nic } of queues) {
        if (!nic.waitRx) {
          throw new UnsupportedError(`${nic.driver} ${nic.address} has no interrupt-driven receive`, {
            remedy: "leave out --interrupts for this port",
          });
        }
      }
    }
  }

  /** Records one round of the loop; true when the caller should {@linkcode sleep}. */
  idle(didWork: boolean): boolean {
    if (!this.#interrupts) return this.#backoff.idle(didWork);
    if (didWork) {
      this.#empty = 0;
      return false;
    }
    return ++this.#empty >= this.#emptyRounds;
  }

  /**
   * Sleeps until a watched receive queue's interrupt fires or `timeoutMs` passes (with interrupts), or naps 1 ms
   * (without). The caller polls again afterwards either way.
   */
  async sleep(timeoutMs = 100): Promise<void> {
    this.stats.sleeps++;
    this.#empty = 0;
    if (!this.#interrupts) return await this.#backoff.pause();
    const waits: Promise<boolean>[] = [];
    for (let i = 0; i < this.#queues.length; i++) {
      let p = this.#pending[i];
      if (!p) {
        const { nic, queue } = this.#queues[i];
        p = this.#pending[i] = nic.waitRx!(queue, timeoutMs).finally(() => this.#pending[i] = null);
        p.catch(() => {}); // a port closed under a wait; settle() reports nothing more
      }
      waits.push(p);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((r) => timer = setTimeout(() => r(false), timeoutMs));
    try {
      if (await Promise.race([...waits, timeout])) this.stats.wakeups++;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for every armed receive queue's wait to end (they end by their timeout at the latest). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.#pending.filter((p) => p !== null));
  }
}
