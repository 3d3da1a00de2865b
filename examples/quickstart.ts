// The README's fifteen lines: map BAR0 of QEMU's edu, DMA to it, await the interrupt that ends the DMA.
// deno run -A examples/quickstart.ts [address]   (default 0000:00:03.0, where the rig puts edu)
import { IrqIndex, openDevice } from "../mod.ts";

using dev = openDevice(process.argv[2] ?? "0000:00:03.0"); // iommufd, else type1; no-IOMMU only with { noiommu: true }
dev.config.enableMemory();
dev.config.enableBusMaster();
const bar0 = dev.bar(0); // mmapped; bounds-checked read8/16/32/64, write8/16/32/64
console.log("edu id", bar0.read32(0x00).toString(16)); // 10000ed
const buf = dev.allocDma(4096); // locked memory; busAddress() is its IOVA (or physical address)
buf.u8.set([1, 2, 3, 4]);
bar0.write64(0x80, buf.busAddress()); // DMA source
bar0.write64(0x88, 0x40000n); // destination: edu's buffer
bar0.write64(0x90, 4n); // count
using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
bar0.write64(0x98, 0b101n); // start, RAM -> device, raise an interrupt when done
console.log("interrupts:", await msi.wait(0, { timeoutMs: 1000 })); // the event loop keeps running
