/**
 * One worker of `bench/scaling.ts`: forwards packets on its own simulated NIC queue pair, whose memory the main
 * thread handed over with `shareWindow`; the worker rebuilds its views with `openSharedWindow` and runs the pure-TS
 * driver of `bench/nic_sim.ts` on them, with the simulated device's work done inline between batches.
 *
 * @module
 */
import { openSharedWindow, type SharedWindow } from "../lib/shared_window.ts";
import { loadBenchNative } from "./native.ts";
import { forward } from "./nic_sim.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ nic: SharedWindow; batch: number; packets: number }>) => void) | null;
  postMessage(m: unknown): void;
};
const c = await loadBenchNative();
self.onmessage = (e): void => {
  const { nic, batch, packets } = e.data;
  const u32 = new Uint32Array(openSharedWindow(nic));
  const queue = { u32, region: { write32: (offset: number, value: number): void => void (u32[offset >>> 2] = value) } };
  // No device thread: the simulated device's pass runs inline between batches, on this worker's core.
  const device = (): void => void c.nicStep(nic.address);
  const busyNs = forward(queue, batch, packets, c.threadCpuNs, device);
  self.postMessage({ busyNs });
};
// Messages posted before this module finished loading can be lost: say when ready.
self.postMessage("ready");
