/**
 * A tour of vfio-ts on QEMU's `edu` teaching device (1234:11e8; spec: QEMU docs/specs/edu.rst):
 * identify, liveness, factorial, a DMA round trip RAM -> device -> RAM, and interrupts (MSI, then INTx with its
 * unmask) awaited without blocking the event loop.
 *
 *   deno run -A examples/edu.ts [address] [--noiommu] [--json]
 *   bun examples/edu.ts [address] [--noiommu] [--json]
 *   deno task vm --mode iommu examples/edu.ts        (in the emulated guest: no hardware needed)
 *
 * Exits non-zero when any check fails.
 * @module
 */
import { hex } from "../lib/hex.ts";
import { findPciDevices, IrqIndex, openDevice, VfioError } from "../mod.ts";
import { programArgs, runChecks } from "./harness.ts";

// edu registers (BAR0)
const ID = 0x00; // 0xRRrr00ed: major, minor, 0x00ed
const LIVENESS = 0x04; // reads back the bitwise inverse of what was written
const FACTORIAL = 0x08; // write n, read n! once STATUS bit 0 clears
const STATUS = 0x20; // bit 0: factorial computing; bit 7: raise an IRQ when done
const IRQ_STATUS = 0x24; // pending interrupt bits
const IRQ_RAISE = 0x60; // write bits: raise an interrupt
const IRQ_ACK = 0x64; // write bits: acknowledge (lower the line)
const DMA_SRC = 0x80; // 64-bit: source address
const DMA_DST = 0x88; // 64-bit: destination address
const DMA_COUNT = 0x90; // 64-bit: byte count
const DMA_CMD = 0x98; // bit 0 start/busy, bit 1 direction (1 = device -> RAM), bit 2 raise IRQ when done
const DEVICE_BUFFER = 0x40000n; // edu's 4 KiB buffer in its DMA address space
const DMA_BYTES = 2048; // QEMU 7.2's edu rejects a transfer of its whole buffer (an off-by-one)

const USAGE =
  "usage: edu.ts [address] [--noiommu] [--json]\n  address: the edu device (default: the first 1234:11e8)\n" +
  "  --json: the checks as one JSON object on stdout";
const { values, positionals, checks } = programArgs(USAGE, { noiommu: { type: "boolean" } });
const check = (ok: boolean, what: string): void => checks.check(ok, what);

async function until(done: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!done()) {
    if (Date.now() - t0 > timeoutMs) throw new VfioError(`edu: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function main(): Promise<void> {
  const address = positionals[0] ?? findPciDevices("1234:11e8")[0]?.address;
  if (!address) throw new VfioError("no edu device (1234:11e8) found", { remedy: "pass its address" });
  using dev = openDevice(address, { noiommu: values.noiommu });
  console.log(`edu at ${dev.name} through ${dev.iommu}`);
  dev.config.enableMemory();
  dev.config.enableBusMaster();
  const bar0 = dev.bar(0);

  const id = bar0.read32(ID);
  check((id & 0xffff) === 0x00ed, `identification ${hex(id)} (version ${id >>> 24}.${(id >>> 16) & 0xff})`);

  bar0.write32(LIVENESS, 0xcafe0001);
  check(bar0.read32(LIVENESS) === (~0xcafe0001 >>> 0), "liveness register inverts");

  bar0.write32(FACTORIAL, 10);
  await until(() => (bar0.read32(STATUS) & 1) === 0, "the factorial");
  check(bar0.read32(FACTORIAL) === 3628800, `10! = ${bar0.read32(FACTORIAL)}`);

  // DMA: RAM -> device buffer -> another part of RAM, with bus addresses from the buffer (IOVA or physical).
  const buf = dev.allocDma(2 * 4096);
  for (let i = 0; i < DMA_BYTES; i++) buf.u8[i] = (i * 31 + 7) & 0xff;
  const dma = async (src: bigint, dst: bigint, toRam: boolean): Promise<void> => {
    bar0.write64(DMA_SRC, src); // single 8-byte writes: edu's 64-bit registers need them
    bar0.write64(DMA_DST, dst);
    bar0.write64(DMA_COUNT, BigInt(DMA_BYTES));
    bar0.write64(DMA_CMD, toRam ? 3n : 1n);
    await until(() => (bar0.read64(DMA_CMD) & 1n) === 0n, "the DMA");
  };
  await dma(buf.busAddress(0), DEVICE_BUFFER, false);
  await dma(DEVICE_BUFFER, buf.busAddress(4096), true);
  const same = buf.u8.subarray(0, DMA_BYTES).every((v, i) => buf.u8[4096 + i] === v);
  check(same, `DMA round trip of ${DMA_BYTES} bytes (bus address ${hex(buf.busAddress(0))})`);

  // MSI: raise an interrupt, await it.
  {
    using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    const t0 = performance.now();
    const arrived = msi.wait(0, { timeoutMs: 2000 });
    bar0.write32(IRQ_RAISE, 0x1);
    const n = await arrived;
    check(n >= 1, `MSI delivered (${(performance.now() - t0).toFixed(2)} ms)`);
    bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
  }

  // INTx: level-triggered and automasked: acknowledge in the device, then unmask before the next one.
  {
    using intx = dev.enableIrqs(IrqIndex.INTX);
    for (let round = 1; round <= 2; round++) {
      const arrived = intx.wait(0, { timeoutMs: 2000 });
      bar0.write32(IRQ_RAISE, 0x2);
      check((await arrived) >= 1, `INTx delivered (round ${round})`);
      bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
      intx.unmask(0);
    }
  }
}

await runChecks("edu", checks, main);
