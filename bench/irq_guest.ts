/**
 * P3, run in the guest (by `bench/all.ts` through `tests/vm/vm.ts`): QEMU's edu raises an MSI, the library's
 * handler resumes. Measures raise -> resume latency and interrupts per second for `await wait()` (event loop
 * free) and `spin()` (busy-polling the eventfd), with the same loop as the C baseline `bench/c/irq_guest.c`:
 * write the raise register, wait, acknowledge. Prints `RESULT {json}`.
 *
 * @module
 */
import process from "node:process";
import { IrqIndex, openDevice } from "../mod.ts";

const IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64;
const ROUNDS = Number(process.argv[2] ?? 2000);
const address = (process.env.VFIO_TS_EDU ?? "").split(",")[0];
if (!address) throw new Error("no edu device: run in the guest (VFIO_TS_EDU)");

using dev = openDevice(address);
dev.config.enableMemory();
dev.config.enableBusMaster();
const bar0 = dev.bar(0);
using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });

async function measure(kind: "wait" | "spin"): Promise<{ median_us: number; p90_us: number; per_s: number }> {
  const lat: number[] = [];
  const warm = ROUNDS / 10;
  let start = 0;
  for (let i = -warm; i < ROUNDS; i++) {
    if (i === 0) start = performance.now();
    const t0 = performance.now();
    bar0.write32(IRQ_RAISE, 1);
    const n = kind === "wait" ? await msi.wait(0, { timeoutMs: 1000 }) : msi.spin(0, { maxSpins: 10_000_000 });
    if (i >= 0) lat.push((performance.now() - t0) * 1000);
    if (n < 1) throw new Error(`${kind}: no interrupt in round ${i}`);
    bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
  }
  const total = performance.now() - start;
  lat.sort((a, b) => a - b);
  return { median_us: lat[lat.length >> 1], p90_us: lat[Math.floor(lat.length * 0.9)], per_s: ROUNDS / (total / 1000) };
}

const wait = await measure("wait");
const spin = await measure("spin");
console.log("RESULT " + JSON.stringify({ runtime: "Bun" in globalThis ? "bun" : "deno", wait, spin }));
