/**
 * The NVMe controller registers in BAR0 (NVM Express Base Specification, section 3.1 "Register definition") and
 * their fields by name: a {@linkcode BitField} says where a field sits in its register, {@linkcode getBits} and
 * {@linkcode setBits} read and write it, {@linkcode decodeCap} turns the 64-bit CAP register into named numbers.
 *
 * ```ts
 * import { CC, getBits, setBits } from "./registers.ts";
 * let cc = 0;
 * cc = setBits(cc, CC.IOSQES, 6); // 2^6 = 64-byte submission entries
 * getBits(cc, CC.IOSQES); // 6
 * ```
 * @module
 */
import type { Region } from "../../mod.ts";

/** Register offsets in BAR0. 64-bit registers are accessed as two 32-bit halves, low first. */
export const Reg = {
  /** Controller Capabilities (64-bit, read-only). */
  CAP: 0x00,
  /** Version: major 31:16, minor 15:8, tertiary 7:0. */
  VS: 0x08,
  /** Controller Configuration. */
  CC: 0x14,
  /** Controller Status. */
  CSTS: 0x1c,
  /** Admin Queue Attributes: both admin queue sizes. */
  AQA: 0x24,
  /** Admin Submission Queue base address (64-bit, page aligned). */
  ASQ: 0x28,
  /** Admin Completion Queue base address (64-bit, page aligned). */
  ACQ: 0x30,
  /** The first doorbell: queue y's SQ tail at `DOORBELLS + 2y * stride`, its CQ head at `+ (2y + 1) * stride`. */
  DOORBELLS: 0x1000,
} as const;

/** Where a field sits in a register: its lowest bit and its width in bits. */
export interface BitField {
  /** The field's lowest bit. */
  readonly shift: number;
  /** Its width in bits. */
  readonly width: number;
}

const bits = (shift: number, width: number): BitField => ({ shift, width });

/** Fields of CAP (a 64-bit register: shifts above 31 are in its high half). */
export const CAP = {
  /** Maximum Queue Entries Supported, 0-based. */
  MQES: bits(0, 16),
  /** Contiguous Queues Required. */
  CQR: bits(16, 1),
  /** Timeout: worst-case time for CSTS.RDY to change, in 500 ms units. */
  TO: bits(24, 8),
  /** Doorbell Stride: doorbells are `4 << DSTRD` bytes apart. */
  DSTRD: bits(32, 4),
  /** Command Sets Supported (bit 0: the NVM command set). */
  CSS: bits(37, 8),
  /** Memory Page Size Minimum: `4 KiB << MPSMIN`. */
  MPSMIN: bits(48, 4),
  /** Memory Page Size Maximum: `4 KiB << MPSMAX`. */
  MPSMAX: bits(52, 4),
} as const;

/** Fields of CC. */
export const CC = {
  /** Enable. */
  EN: bits(0, 1),
  /** I/O Command Set Selected (0: the NVM command set). */
  CSS: bits(4, 3),
  /** Memory Page Size: `4 KiB << MPS`. */
  MPS: bits(7, 4),
  /** Arbitration Mechanism Selected (0: round robin). */
  AMS: bits(11, 3),
  /** Shutdown Notification ({@linkcode ShutdownNotification}). */
  SHN: bits(14, 2),
  /** I/O Submission Queue Entry Size, as a power of two. */
  IOSQES: bits(16, 4),
  /** I/O Completion Queue Entry Size, as a power of two. */
  IOCQES: bits(20, 4),
} as const;

/** Values of CC.SHN. */
export const ShutdownNotification = { NONE: 0, NORMAL: 1, ABRUPT: 2 } as const;

/** Fields of CSTS. */
export const CSTS = {
  /** Ready: the controller processes commands. */
  RDY: bits(0, 1),
  /** Controller Fatal Status. */
  CFS: bits(1, 1),
  /** Shutdown Status ({@linkcode ShutdownStatus}). */
  SHST: bits(2, 2),
} as const;

/** Values of CSTS.SHST. */
export const ShutdownStatus = { NORMAL: 0, OCCURRING: 1, COMPLETE: 2 } as const;

/** Fields of AQA (both 0-based). */
export const AQA = {
  /** Admin Submission Queue Size. */
  ASQS: bits(0, 12),
  /** Admin Completion Queue Size. */
  ACQS: bits(16, 12),
} as const;

/** Fields of VS. */
export const VS = { TER: bits(0, 8), MNR: bits(8, 8), MJR: bits(16, 16) } as const;

/** Reads field `f` of a 32-bit register value. */
export function getBits(value: number, f: BitField): number {
  return Math.floor(value / 2 ** f.shift) % 2 ** f.width;
}

/** Returns `value` with field `f` replaced by `field` (which must fit in the field's width). */
export function setBits(value: number, f: BitField, field: number): number {
  const size = 2 ** f.width;
  if (!Number.isInteger(field) || field < 0 || field >= size) {
    throw new RangeError(`register field of ${f.width} bits at bit ${f.shift}: ${field} does not fit`);
  }
  return (value - getBits(value, f) * 2 ** f.shift + field * 2 ** f.shift) >>> 0;
}

/** CAP decoded: every field by name, in the register's own units. */
export type Capabilities = { readonly [K in keyof typeof CAP]: number } & {
  /** The raw 64-bit register. */
  readonly raw: bigint;
};

/** Decodes the 64-bit CAP register into its fields. */
export function decodeCap(raw: bigint): Capabilities {
  const field = (f: BitField): number => Number((raw >> BigInt(f.shift)) & ((1n << BigInt(f.width)) - 1n));
  const out: Record<string, number | bigint> = { raw };
  for (const [name, f] of Object.entries(CAP)) out[name] = field(f);
  return out as Capabilities;
}

/** Reads a 64-bit register as two 32-bit reads (what every controller accepts), low half first. */
export function read64(bar0: Region, offset: number): bigint {
  return BigInt(bar0.read32(offset)) | (BigInt(bar0.read32(offset + 4)) << 32n);
}

/** Writes a 64-bit register as two 32-bit writes, low half first. */
export function write64(bar0: Region, offset: number, value: bigint): void {
  bar0.write32(offset, Number(value & 0xffffffffn));
  bar0.write32(offset + 4, Number(value >> 32n));
}

/** The byte offset of queue `qid`'s submission queue tail doorbell. */
export function sqTailDoorbell(qid: number, stride: number): number {
  return Reg.DOORBELLS + 2 * qid * stride;
}

/** The byte offset of queue `qid`'s completion queue head doorbell. */
export function cqHeadDoorbell(qid: number, stride: number): number {
  return Reg.DOORBELLS + (2 * qid + 1) * stride;
}
