/**
 * A reusable NVMe layer on vfio-ts, for QEMU's `nvme` (1b36:0010) and any NVMe controller: controller bring-up by
 * register field, admin and I/O queue pairs with several commands in flight, PRP entries and lists, Identify, and
 * read/write/flush on a namespace. `examples/nvme.ts` is a program over it.
 *
 * ```ts
 * import { IrqIndex, openDevice } from "../../mod.ts";
 * import { Controller, Namespace } from "./mod.ts";
 * using dev = openDevice("0000:00:04.0");
 * using ctrl = await Controller.enable(dev);
 * await ctrl.identifyController();
 * const ns = new Namespace(ctrl, await ctrl.identifyNamespace(1));
 * await ctrl.setNumberOfQueues(1);
 * const io = await ctrl.createIoQueuePair({ id: 1 }); // polled; { id, irq: { set, vector } } for MSI-X
 * using buf = dev.allocDma(64 * 1024);
 * await ns.read(io, buf, 0, 128);
 * await ctrl.shutdown();
 * ```
 * @module
 */
export * from "./controller.ts";
export * from "./namespace.ts";
export * from "./pattern.ts";
export * from "./prp.ts";
export * from "./queue.ts";
export * from "./registers.ts";
export * from "./status.ts";
export * from "./structs.ts";
export * from "./summary.ts";
