/**
 * One worker of `bench/scaling.ts`: forwards packets on its own simulated NIC queue pair, whose memory the main
 * thread handed over with `shareWindow`; the worker rebuilds its views with `openSharedWindow` and runs the pure-TS
 * driver of `bench/nic_sim.ts` on them, with the simulated device's work done inline between batches. With a
 * `barrier`, it warms up first (a short run), then says it is armed and sleeps in `Atomics.wait` until the main
 * thread releases every worker at once; it stamps CLOCK_MONOTONIC around its measured run.
 *
 * @module
 */
import { openSharedWindow, type SharedWindow } from "../lib/shared_window.ts";
import { loadBenchNative } from "./native.ts";
import { forward, resetRings } from "./nic_sim.ts";

/** What the main thread sends: the queue pair, and the barrier (`Int32Array` over a `SharedArrayBuffer`: [go]). */
interface Job {
  nic: SharedWindow;
  batch: number;
  packets: number;
  warmup: number;
  barrier: SharedArrayBuffer;
}
const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage(m: unknown): void;
};
const c = await loadBenchNative();
/** The views and the device pass of one queue pair. */
type Attached = { queue: Parameters<typeof forward>[0]; device: () => void };
let attached: { address: bigint; views: Attached } | undefined;
/** The first run's warm-up is split into this many calls of `forward` (see the message handler). */
const WARMUP_CALLS = 8;
/** Whether the first run's warm-up has run. */
let warmedUp = false;
/**
 * The queue pair's views, built once per queue pair and reused by every run, so that the functions `forward` calls
 * are the same objects in every run (new closures per run would give its optimised loop new call targets).
 */
function attach(nic: SharedWindow): Attached {
  if (attached?.address === nic.address) return attached.views;
  const u32 = new Uint32Array(openSharedWindow(nic));
  const queue = { u32, region: { write32: (offset: number, value: number): void => void (u32[offset >>> 2] = value) } };
  // No device thread: the simulated device's pass runs inline between batches, on this worker's core.
  const device = (): void => void c.nicStep(nic.address);
  attached = { address: nic.address, views: { queue, device } };
  return attached.views;
}
/** `forward` from the start state of the rings (the worker's warm-up calls). */
function forwardOnFreshRings(queue: Attached["queue"], batch: number, packets: number, device: () => void): void {
  resetRings(queue);
  forward(queue, batch, packets, c.threadCpuNs, device);
}
self.onmessage = (e): void => {
  const { nic, batch, packets, warmup, barrier } = e.data;
  const { queue, device } = attach(nic);
  // The same loop warms up (JIT tiers) on the same memory, on fresh rings each call; the main thread resets the
  // rings after "armed". The first worker run starts with a call too short to be optimised, so that the code after
  // the loop (`busy.total()`) runs unoptimised once and leaves type feedback (else each call's on-stack-replacement
  // code deoptimises at the loop's end: `--trace-deopt`), then splits its warm-up into several calls, so that V8
  // optimises `forward` as a whole and the measured call starts in optimised code (with one long call, a worker's
  // first two runs were at 70-80 cycles/packet instead of 56).
  const calls = warmedUp ? 1 : WARMUP_CALLS;
  if (!warmedUp) forwardOnFreshRings(queue, batch, 4 * batch, device);
  for (let i = 0; i < calls && warmup > 0; i++) forwardOnFreshRings(queue, batch, Math.ceil(warmup / calls), device);
  warmedUp = true;
  const go = new Int32Array(barrier);
  self.postMessage("armed");
  Atomics.wait(go, 0, 0); // asleep until the main thread releases all workers together
  const cpu0 = c.threadCpuNs(), startNs = c.monoNs();
  const busyNs = forward(queue, batch, packets, c.threadCpuNs, device);
  const endNs = c.monoNs(), cpuNs = c.threadCpuNs() - cpu0;
  self.postMessage({ busyNs, startNs, endNs, cpuNs });
};
// Messages posted before this module finished loading can be lost: say when ready.
self.postMessage("ready");
