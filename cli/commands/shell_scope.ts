/**
 * What `vfio shell` puts in scope around an open device: `dev`, its BARs (`bar0` … `bar5`, opened on first use),
 * the library (`lib`, and its exports by name), and helpers to dump memory as hex, read and write registers,
 * allocate DMA memory and take interrupts.
 *
 * ```ts ignore
 * import { shellScope } from "./shell_scope.ts";
 * const scope = shellScope(dev);
 * console.log(scope.hexdump(scope.bar0, 0, 32));
 * ```
 * @module
 */
import type { Device } from "../../lib/device.ts";
import type { DmaBuffer } from "../../lib/dma/buffer.ts";
import { VfioError } from "../../lib/errors.ts";
import { hexDigits } from "../../lib/hex.ts";
import { IrqIndex, type IrqSet } from "../../lib/irq.ts";
import type { Region } from "../../lib/region.ts";
import * as lib from "../../mod.ts";

/** Something `hexdump` can read: a region (read 32 bits at a time) or a DMA buffer / byte array. */
export type Dumpable = Region | DmaBuffer | Uint8Array;

/** The helpers' one-line descriptions, what `help()` prints. */
export const HELP = `in scope:
  dev                         the open Device (dev.config, dev.info(), dev.reset(), dev.hotResetInfo() ...)
  bar0 .. bar5                its BARs as Regions, opened on first use: bar0.read32(0), bar0.write32(0x60, 1)
  lib                         the whole library (also each export by name: IrqIndex, openDevice, ...)
  hexdump(what, off, len)     hex and ASCII of a BAR (32-bit reads), a DMA buffer or bytes (default 0, 64)
  read(bar, off, width)       a register (width 8/16/32/64, default 32), as a number (bigint for 64)
  write(bar, off, v, width)   writes one
  dma(size)                   a DMA buffer for the device (buf.busAddress(), buf.u8), freed with it
  irqs(index, count)          enable interrupts ("INTx", "MSI", "MSI-X" or IrqIndex; default MSI, 1 vector)
  wait(set, vector, ms)       await an interrupt (default vector 0, 1000 ms): the count, 0 on timeout
  help()                      this text
  .exit (or end of input)     close the device and everything made on it, and leave`;

const WIDTHS = [8, 16, 32, 64];

function bytesOf(what: Dumpable, offset: number, length: number): Uint8Array {
  if (what instanceof Uint8Array) return what.subarray(offset, offset + length);
  if (what instanceof lib.DmaBuffer) return what.view(offset, Math.min(length, what.size - offset)).u8.slice();
  const region = what as Region;
  const end = Math.min(offset + length, region.size);
  const out = new Uint8Array(Math.max(0, end - offset));
  const dv = new DataView(out.buffer);
  let at = offset;
  for (; at + 4 <= end && (at & 3) === 0; at += 4) dv.setUint32(at - offset, region.read32(at), true);
  for (; at < end; at++) out[at - offset] = region.read8(at);
  return out;
}

/**
 * `length` bytes of `what` from `offset`, 16 to a line: offset, hex bytes, printable ASCII.
 *
 * ```ts
 * import { hexdump } from "./shell_scope.ts";
 * hexdump(new Uint8Array([0x56, 0x46, 0x49, 0x4f]), 0, 4); // "00000000  56 46 49 4f  VFIO"
 * ```
 */
export function hexdump(what: Dumpable, offset = 0, length = 64): string {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new VfioError(`hexdump: offset ${offset} and length ${length} must be non-negative integers`);
  }
  const bytes = bytesOf(what, offset, length);
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const hex = [...row].map((b) => hexDigits(b, 2)).join(" ");
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${hexDigits(offset + i, 8)}  ${hex.padEnd(47)}  ${text}`);
  }
  return lines.join("\n");
}

function width(w: number): 8 | 16 | 32 | 64 {
  if (!WIDTHS.includes(w)) throw new VfioError(`width ${w} is not a register width`, { remedy: "use 8, 16, 32 or 64" });
  return w as 8 | 16 | 32 | 64;
}

function irqIndex(index: string | number): IrqIndex {
  if (typeof index === "number") return index as IrqIndex; // the kernel refuses an index the device lacks
  const byName: Record<string, IrqIndex> = { intx: IrqIndex.INTX, msi: IrqIndex.MSI, "msi-x": IrqIndex.MSIX };
  const n = byName[index.toLowerCase()];
  if (n === undefined) throw new VfioError(`unknown IRQ index "${index}"`, { remedy: 'use "INTx", "MSI" or "MSI-X"' });
  return n;
}

/** The scope of a shell on `dev`: the names above, as one object (BARs are getters that open on first use). */
export function shellScope(dev: Device): Record<string, unknown> {
  const bar = (i: number | Region): Region => (typeof i === "number" ? dev.bar(i) : i);
  const scope: Record<string, unknown> = {
    ...lib,
    lib,
    dev,
    hexdump,
    read(b: number | Region, offset: number, w = 32): number | bigint {
      const r = bar(b);
      switch (width(w)) {
        case 8:
          return r.read8(offset);
        case 16:
          return r.read16(offset);
        case 32:
          return r.read32(offset);
        default:
          return r.read64(offset);
      }
    },
    write(b: number | Region, offset: number, value: number | bigint, w = 32): void {
      const r = bar(b);
      const ww = width(w);
      if (ww === 64) return r.write64(offset, BigInt(value));
      const n = Number(value);
      if (ww === 8) r.write8(offset, n);
      else if (ww === 16) r.write16(offset, n);
      else r.write32(offset, n);
    },
    dma: (size: number): DmaBuffer => dev.allocDma(size),
    irqs: (index: string | number = "MSI", count = 1): IrqSet => dev.enableIrqs(irqIndex(index), { count }),
    wait: (set: IrqSet, vector = 0, timeoutMs = 1000): Promise<number> => set.wait(vector, { timeoutMs }),
    help: (): string => HELP,
  };
  for (let i = 0; i < 6; i++) {
    Object.defineProperty(scope, `bar${i}`, { get: () => dev.bar(i), enumerable: true, configurable: true });
  }
  return scope;
}
