/**
 * A mediated device end to end, on the kernel's `mtty` sample (samples/vfio-mdev/mtty.c: a virtual 16550 UART,
 * PCI id 4348:3253, whose "hardware" is the mtty driver): create an instance, open it through its emulated-IOMMU
 * group (same `Device` API as a PCI device), read its config space, write a string to the transmit register
 * through the I/O BAR (pread/pwrite: nothing to mmap) and read it back through the loopback FIFO, take the
 * receive interrupt via MSI and via INTx (automasked, then unmasked), and remove the instance.
 *
 *   deno run -A examples/mtty.ts [--type mtty-2] [--iommu auto|type1|iommufd|iommufd-compat] [--keep]
 *   bun examples/mtty.ts [...]
 *   deno task vm --mode iommufd examples/mtty.ts     (in the emulated guest, which loads mtty)
 *
 * Needs root and the mtty module (`modprobe mtty`). Exits non-zero when any check fails.
 * @module
 */
import { hexDigits } from "../lib/hex.ts";
import {
  createMdev,
  IrqIndex,
  type IrqSet,
  type MdevIommuChoice,
  mdevTypes,
  openMediatedDevice,
  type Region,
  removeMdev,
} from "../mod.ts";
import { programArgs, runChecks } from "./harness.ts";

// 16550 registers (offsets in BAR0, one byte each) and the bits used here
const RBR_THR = 0; // read: receive buffer; write: transmit holding register
const IER = 1; // interrupt enable
const IER_RDI = 0x01; //   receive data available
const FCR = 2; // write: FIFO control (IIR when read)
const FCR_ENABLE_AND_CLEAR = 0x07; //   enable the FIFO, clear both directions, trigger level 1
const IIR = 2; // read: interrupt identification
const IIR_RDI = 0x04;
const MCR = 4; // modem control
const MCR_LOOP = 0x10; //   loopback (mtty loops its FIFO in any case)
const LSR = 5; // line status
const LSR_DR = 0x01; //   data ready
const MTTY_ID = 0x3253_4348; // device:vendor dword at config offset 0

const USAGE = "usage: mtty.ts [--parent mtty] [--type mtty-1|mtty-2] [--iommu auto|type1|iommufd|iommufd-compat]\n" +
  "  [--keep] [--json]\n" +
  "  creates a mediated device, exercises its UART and interrupts, removes it (--keep leaves it)";
const { values, checks } = programArgs(USAGE, {
  parent: { type: "string", default: "mtty" },
  type: { type: "string", default: "mtty-2" },
  iommu: { type: "string", default: "auto" },
  keep: { type: "boolean" },
});
const check = (ok: boolean, what: string): void => checks.check(ok, what);

function send(uart: Region, text: string): void {
  for (const byte of new TextEncoder().encode(text)) uart.write8(RBR_THR, byte);
}

function receive(uart: Region, max: number): string {
  const bytes: number[] = [];
  while (bytes.length < max && (uart.read8(LSR) & LSR_DR) !== 0) bytes.push(uart.read8(RBR_THR));
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Writes one byte with IER.RDI set and waits for the interrupt it raises (0 if none); drains the FIFO again. */
async function interrupt(uart: Region, irqs: IrqSet, byte: number, timeoutMs = 2000): Promise<number> {
  const arrived = irqs.wait(0, { timeoutMs });
  uart.write8(RBR_THR, byte);
  const n = await arrived;
  receive(uart, 16);
  return n;
}

async function main(): Promise<void> {
  const parent = values.parent!;
  const type = mdevTypes(parent).find((t) => t.id === values.type);
  console.log(`${parent}: ${values.type} (${type?.name ?? "?"}), ${type?.availableInstances ?? 0} available`);
  const uuid = createMdev(parent, values.type!);
  console.log(`created ${uuid}`);
  try {
    {
      using dev = openMediatedDevice(uuid, { iommu: values.iommu as MdevIommuChoice });
      console.log(`opened through ${dev.iommu}, group type ${dev.groupType}`);
      check(dev.groupType === "emulated-iommu", `group type ${dev.groupType}: the mtty driver mediates every access`);

      const cfg = dev.config;
      const id = cfg.read32(0);
      check(id === MTTY_ID, `config: vendor:device ${hexDigits(cfg.vendorId)}:${hexDigits(cfg.deviceId)}`);
      check(cfg.read8(0x0b) === 0x07 && cfg.read8(0x09) === 0x02, "config: class 07 (serial), prog-if 02 (16550)");

      const uart = dev.bar(0);
      check(!uart.mapped && uart.size === 8, `BAR0: ${uart.size} bytes of I/O ports, through pread/pwrite`);
      uart.write8(FCR, FCR_ENABLE_AND_CLEAR);
      uart.write8(MCR, MCR_LOOP);
      const message = "hello, mdev";
      send(uart, message);
      check((uart.read8(LSR) & LSR_DR) !== 0, "LSR: data ready after writing THR");
      const echoed = receive(uart, 16);
      check(echoed === message, `loopback: wrote "${message}" to THR, read "${echoed}" from RBR`);
      check((uart.read8(LSR) & LSR_DR) === 0, "LSR: FIFO empty again");

      uart.write8(IER, IER_RDI);
      {
        using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
        const arrived = msi.wait(0, { timeoutMs: 2000 });
        uart.write8(RBR_THR, 0x41);
        const n = await arrived;
        check(n === 1 && (uart.read8(IIR) & 0x0f) === IIR_RDI, `MSI: receive interrupt delivered (${n}), IIR says RDI`);
        receive(uart, 16);
        check((await interrupt(uart, msi, 0x42)) === 1, "MSI: a second byte, a second interrupt");
      }
      {
        using intx = dev.enableIrqs(IrqIndex.INTX);
        check((await interrupt(uart, intx, 0x43)) === 1, "INTx: receive interrupt delivered");
        check((await interrupt(uart, intx, 0x44, 200)) === 0, "INTx: automasked: none while masked");
        intx.unmask(0);
        check((await interrupt(uart, intx, 0x45)) === 1, "INTx: delivered again after unmask");
      }
      uart.write8(IER, 0);
    }
  } finally {
    if (values.keep) console.log(`kept ${uuid}`);
    else {
      removeMdev(uuid);
      console.log(`removed ${uuid}`);
    }
  }
}

await runChecks("mtty", checks, main);
