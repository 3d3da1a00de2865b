/**
 * Typed register access to one region of a VFIO device (a BAR, the ROM, config space, VGA).
 *
 * A {@linkcode Region} mmaps what the kernel lets it map (the whole region, or each area of a sparse-mmap
 * capability) and serves every access inside a mapping straight from memory: reads through `Atomics.load` (which
 * no JIT hoists out of a polling loop), writes as one plain typed-array store of the access width (a 64-bit
 * write is a single 8-byte store). Accesses outside the mappings, and whole regions the kernel will not map
 * (I/O-port BARs, config space, the ROM), go through `pread`/`pwrite` on the device fd with the same API.
 * Every access is bounds- and alignment-checked ({@linkcode OutOfRangeError}); after `close()` every access
 * throws a {@linkcode ClosedError}.
 *
 * ```ts
 * import { Region } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * using bar0 = Region.open(dev, 0);
 * console.log(bar0.read32(0x00).toString(16)); // edu: "10000ed"
 * bar0.write32(0x04, 0x12345678);
 * bar0.write64(0x80, 0x40000n);
 * ```
 * @module
 */

import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { ClosedError, OutOfRangeError, UnsupportedError, VfioError } from "./errors.ts";
import { type RegionInfo, regionInfo, type SparseMmapArea } from "./region_info.ts";
import type { DeviceFd } from "./types.ts";

export { type RegionInfo, regionInfo, regionName, type RegionType, type SparseMmapArea } from "./region_info.ts";

/** How {@linkcode Region.open} treats mmap. */
export interface RegionOptions {
  /**
   * `"auto"` (default): mmap when the kernel allows it, else (or when mmap fails) use pread/pwrite;
   * `"never"`: always pread/pwrite; `"required"`: throw when the region cannot be mmapped.
   */
  mmap?: "auto" | "never" | "required";
  /** Region info already fetched with {@linkcode regionInfo} (saves one ioctl). */
  info?: RegionInfo;
}

/** One mmapped window of a region, with its views made once at map time. */
interface Area {
  readonly offset: number;
  readonly size: number;
  readonly address: bigint;
  readonly length: number;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly u64: BigUint64Array;
}

const EMPTY = new ArrayBuffer(0);
const EMPTY_U8 = new Uint8Array(EMPTY);
const EMPTY_U16 = new Uint16Array(EMPTY);
const EMPTY_U32 = new Uint32Array(EMPTY);
const EMPTY_U64 = new BigUint64Array(EMPTY);

// Scratch for the pread/pwrite path: one buffer, one view per width (JS is single-threaded per isolate).
const SCRATCH = new ArrayBuffer(8);
const S8 = new Uint8Array(SCRATCH, 0, 1);
const S16 = new Uint16Array(SCRATCH, 0, 1);
const S32 = new Uint32Array(SCRATCH, 0, 1);
const S64 = new BigUint64Array(SCRATCH, 0, 1);

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * One region of an open VFIO device, with typed, checked, zero-copy access.
 *
 * ```ts
 * import { Region } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * const bar0 = Region.open(dev, 0);
 * let spins = 0;
 * while ((bar0.read32(0x20) & 1) !== 0) spins++; // each read reaches the device: never hoisted
 * bar0.close();
 * ```
 */
export class Region {
  readonly #dev: DeviceFd;
  readonly #info: RegionInfo;
  readonly #what: string;
  #areas: Area[];
  #closed = false;
  // Fast path: the mapped area that starts at offset 0, and how many bytes of it are in bounds for every width.
  #limit: number;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #u64: BigUint64Array;

  private constructor(dev: DeviceFd, info: RegionInfo, areas: Area[]) {
    this.#dev = dev;
    this.#info = info;
    this.#what = `${dev.name} ${info.name}`;
    this.#areas = areas;
    const first = areas.find((a) => a.offset === 0);
    this.#u8 = first?.u8 ?? EMPTY_U8;
    this.#u16 = first?.u16 ?? EMPTY_U16;
    this.#u32 = first?.u32 ?? EMPTY_U32;
    this.#u64 = first?.u64 ?? EMPTY_U64;
    this.#limit = first ? Math.floor(Math.min(first.size, info.size) / 8) * 8 : 0;
  }

  /**
   * Opens region `index` of a device: fetches its info, and mmaps it (whole, or each sparse area) when allowed.
   *
   * ```ts
   * import { Region } from "./region.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * using bar0 = Region.open(dev, 0);
   * using io = Region.open(dev, 0, { mmap: "never" }); // pread/pwrite only
   * ```
   */
  static open(dev: DeviceFd, index: number, options: RegionOptions = {}): Region {
    const info = options.info ?? regionInfo(dev, index);
    const mode = options.mmap ?? "auto";
    if (info.size === 0) {
      throw new UnsupportedError(`${dev.name} has no ${info.name} (size 0)`, {
        remedy: "pick a region the device implements; regionInfo() reports each one's size",
      });
    }
    if (mode === "never") return new Region(dev, info, []);
    if (!info.mmappable) {
      if (mode === "required") {
        throw new UnsupportedError(`${dev.name} ${info.name} cannot be mmapped`, {
          remedy: 'the kernel does not allow it (I/O-port BAR, ROM, config); use { mmap: "auto" } for pread/pwrite',
        });
      }
      return new Region(dev, info, []);
    }
    let areas: Area[] = [];
    try {
      areas = mapAreas(dev, info);
    } catch (e) {
      if (mode === "required") throw e;
    }
    if (areas.length === 0 && mode === "required") {
      throw new UnsupportedError(`${dev.name} ${info.name}: the kernel offers no area to mmap`);
    }
    return new Region(dev, info, areas);
  }

  /** The region index. */
  get index(): number {
    return this.#info.index;
  }
  /** `"BAR0"` … `"BAR5"`, `"ROM"`, `"config"`, `"VGA"` or `"region N"`. */
  get name(): string {
    return this.#info.name;
  }
  /** Size in bytes. */
  get size(): number {
    return this.#info.size;
  }
  /** What the kernel reported about the region. */
  get info(): RegionInfo {
    return this.#info;
  }
  /** Whether any part of the region is mmapped (accesses there skip the system call). */
  get mapped(): boolean {
    return this.#areas.length > 0;
  }
  /** The mmapped windows, in bytes from the region's start (empty when everything goes through pread/pwrite). */
  get mappedAreas(): readonly SparseMmapArea[] {
    return this.#areas.map((a) => ({ offset: a.offset, size: a.size }));
  }
  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * **UNSAFE**: the raw `ArrayBuffer` over the mapping that starts at offset 0. It is invalid after `close()`:
   * touching it then crashes the process. Plain typed-array reads of it may be hoisted out of loops by the JIT
   * (use `Atomics.load`), and nothing checks widths or bounds. Throws when nothing is mapped at offset 0.
   *
   * ```ts
   * import { Region } from "./region.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * const bar0 = Region.open(dev, 0);
   * const regs = new Uint32Array(bar0.unsafeArrayBuffer);
   * Atomics.load(regs, 0);
   * ```
   */
  get unsafeArrayBuffer(): ArrayBuffer {
    return this.#firstArea("unsafeArrayBuffer").u8.buffer as ArrayBuffer;
  }

  /** **UNSAFE**: the virtual address of the mapping that starts at offset 0 (for C helpers); invalid after close. */
  get unsafeAddress(): bigint {
    return this.#firstArea("unsafeAddress").address;
  }

  /** Reads the byte at `offset`. */
  read8(offset: number): number {
    if ((offset >>> 0) === offset && offset < this.#limit) return Atomics.load(this.#u8, offset);
    return this.#read8(offset);
  }
  /** Reads the 16-bit little-endian register at `offset` (2-byte aligned). */
  read16(offset: number): number {
    if ((offset >>> 0) === offset && (offset & 1) === 0 && offset < this.#limit) {
      return Atomics.load(this.#u16, offset >>> 1);
    }
    return this.#read16(offset);
  }
  /** Reads the 32-bit little-endian register at `offset` (4-byte aligned). */
  read32(offset: number): number {
    if ((offset >>> 0) === offset && (offset & 3) === 0 && offset < this.#limit) {
      return Atomics.load(this.#u32, offset >>> 2);
    }
    return this.#read32(offset);
  }
  /** Reads the 64-bit little-endian register at `offset` (8-byte aligned) with one 8-byte load. */
  read64(offset: number): bigint {
    if ((offset >>> 0) === offset && (offset & 7) === 0 && offset < this.#limit) {
      return Atomics.load(this.#u64, offset >>> 3);
    }
    return this.#read64(offset);
  }

  /** Writes the byte at `offset` (the value is taken modulo 2^8). */
  write8(offset: number, value: number): void {
    if ((offset >>> 0) === offset && offset < this.#limit) this.#u8[offset] = value;
    else this.#write8(offset, value);
  }
  /** Writes the 16-bit register at `offset` (2-byte aligned; the value is taken modulo 2^16). */
  write16(offset: number, value: number): void {
    if ((offset >>> 0) === offset && (offset & 1) === 0 && offset < this.#limit) this.#u16[offset >>> 1] = value;
    else this.#write16(offset, value);
  }
  /** Writes the 32-bit register at `offset` (4-byte aligned; the value is taken modulo 2^32). */
  write32(offset: number, value: number): void {
    if ((offset >>> 0) === offset && (offset & 3) === 0 && offset < this.#limit) this.#u32[offset >>> 2] = value;
    else this.#write32(offset, value);
  }
  /** Writes the 64-bit register at `offset` (8-byte aligned) with one 8-byte store (modulo 2^64). */
  write64(offset: number, value: bigint): void {
    if ((offset >>> 0) === offset && (offset & 7) === 0 && offset < this.#limit) this.#u64[offset >>> 3] = value;
    else this.#write64(offset, value);
  }

  /**
   * Copies `length` bytes starting at `offset` into a new array (a memory copy inside a mapping, one pread
   * otherwise). Not for registers with read side effects: the copy's access widths are unspecified.
   */
  readBytes(offset: number, length: number): Uint8Array {
    const area = this.#check(offset, length, 1, "readBytes");
    if (area) return area.u8.slice(offset - area.offset, offset - area.offset + length);
    const out = new Uint8Array(length);
    if (length > 0) this.#pread(out, offset, "readBytes");
    return out;
  }

  /** Writes `bytes` starting at `offset` (a memory copy inside a mapping, one pwrite otherwise). */
  writeBytes(offset: number, bytes: Uint8Array): void {
    const area = this.#check(offset, bytes.byteLength, 1, "writeBytes");
    if (area) area.u8.set(bytes, offset - area.offset);
    else if (bytes.byteLength > 0) this.#pwrite(bytes, offset, "writeBytes");
  }

  /** Unmaps the region; idempotent. Every later access throws a {@linkcode ClosedError}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Swap the views out before unmapping, so no access can reach the memory that is about to go.
    this.#limit = 0;
    this.#u8 = EMPTY_U8;
    this.#u16 = EMPTY_U16;
    this.#u32 = EMPTY_U32;
    this.#u64 = EMPTY_U64;
    const areas = this.#areas;
    this.#areas = [];
    unmapAll(areas);
  }

  /** Same as {@linkcode close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // ----- slow paths: validation, other mapped areas, pread/pwrite -----

  #read8(offset: number): number {
    const a = this.#check(offset, 1, 1, "read8");
    if (a) return Atomics.load(a.u8, offset - a.offset);
    this.#pread(S8, offset, "read8");
    return S8[0];
  }
  #read16(offset: number): number {
    const a = this.#check(offset, 2, 2, "read16");
    if (a) return Atomics.load(a.u16, (offset - a.offset) / 2);
    this.#pread(S16, offset, "read16");
    return S16[0];
  }
  #read32(offset: number): number {
    const a = this.#check(offset, 4, 4, "read32");
    if (a) return Atomics.load(a.u32, (offset - a.offset) / 4);
    this.#pread(S32, offset, "read32");
    return S32[0];
  }
  #read64(offset: number): bigint {
    const a = this.#check(offset, 8, 8, "read64");
    if (a) return Atomics.load(a.u64, (offset - a.offset) / 8);
    this.#pread(S64, offset, "read64");
    return S64[0];
  }
  #write8(offset: number, value: number): void {
    const a = this.#check(offset, 1, 1, "write8");
    if (a) a.u8[offset - a.offset] = value;
    else {
      S8[0] = value;
      this.#pwrite(S8, offset, "write8");
    }
  }
  #write16(offset: number, value: number): void {
    const a = this.#check(offset, 2, 2, "write16");
    if (a) a.u16[(offset - a.offset) / 2] = value;
    else {
      S16[0] = value;
      this.#pwrite(S16, offset, "write16");
    }
  }
  #write32(offset: number, value: number): void {
    const a = this.#check(offset, 4, 4, "write32");
    if (a) a.u32[(offset - a.offset) / 4] = value;
    else {
      S32[0] = value;
      this.#pwrite(S32, offset, "write32");
    }
  }
  #write64(offset: number, value: bigint): void {
    const a = this.#check(offset, 8, 8, "write64");
    if (a) a.u64[(offset - a.offset) / 8] = value;
    else {
      S64[0] = value;
      this.#pwrite(S64, offset, "write64");
    }
  }

  /** Validates an access and returns the mapped area that holds all of it, or null for pread/pwrite. */
  #check(offset: number, length: number, align: number, op: string): Area | null {
    if (this.#closed) throw new ClosedError(`Region ${this.#what}`);
    const size = this.#info.size;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new OutOfRangeError(`${this.#what} ${op} at ${offset}: the offset must be a non-negative integer`, {
        remedy: "offsets are byte offsets from the start of the region",
      });
    }
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new OutOfRangeError(`${this.#what} ${op} of ${length} bytes: the length must be a non-negative integer`);
    }
    if (offset + length > size) {
      throw new OutOfRangeError(
        `${this.#what} ${op} at ${hex(offset)}: beyond the region's ${hex(size)} bytes`,
        { remedy: `valid offsets for this access are 0 to ${hex(Math.max(0, size - Math.max(length, 1)))}` },
      );
    }
    if (offset % align !== 0) {
      throw new OutOfRangeError(
        `${this.#what} ${op} at ${hex(offset)}: misaligned: ${align * 8}-bit access must be ${align}-byte aligned`,
        { remedy: `use an offset that is a multiple of ${align}, or a narrower access` },
      );
    }
    for (const a of this.#areas) {
      if (offset >= a.offset && offset + length <= a.offset + a.size) return a;
    }
    const allowed = op.startsWith("read") ? this.#info.readable : this.#info.writable;
    if (!allowed) {
      throw new UnsupportedError(
        `${this.#what} ${op}: the kernel does not allow ${op.startsWith("read") ? "reads" : "writes"}`,
        {
          remedy: "check regionInfo().readable / .writable",
        },
      );
    }
    return null;
  }

  #pread(buf: Uint8Array | Uint16Array | Uint32Array | BigUint64Array, offset: number, op: string): void {
    const n = libc.pread(this.#dev.fd, buf, this.#info.offset + offset, `${this.#what} ${op} at ${hex(offset)}`);
    if (n !== buf.byteLength) {
      throw new VfioError(`${this.#what} ${op} at ${hex(offset)}: short read (${n} of ${buf.byteLength} bytes)`);
    }
  }

  #pwrite(buf: Uint8Array | Uint16Array | Uint32Array | BigUint64Array, offset: number, op: string): void {
    const n = libc.pwrite(this.#dev.fd, buf, this.#info.offset + offset, `${this.#what} ${op} at ${hex(offset)}`);
    if (n !== buf.byteLength) {
      throw new VfioError(`${this.#what} ${op} at ${hex(offset)}: short write (${n} of ${buf.byteLength} bytes)`);
    }
  }

  #firstArea(op: string): Area {
    if (this.#closed) throw new ClosedError(`Region ${this.#what}`);
    const first = this.#areas.find((a) => a.offset === 0);
    if (!first) {
      throw new UnsupportedError(`${this.#what} ${op}: nothing is mmapped at offset 0`, {
        remedy: "the region goes through pread/pwrite; use the typed read/write methods",
      });
    }
    return first;
  }
}

/** mmaps the whole region, or each sparse area; unmaps what it mapped if any step fails. */
function mapAreas(dev: DeviceFd, info: RegionInfo): Area[] {
  // A mapping without PROT_WRITE (or PROT_READ) would fault on the fast path: keep such regions on pread/pwrite.
  if (!info.readable || !info.writable) return [];
  const wanted = (info.sparseAreas ?? [{ offset: 0, size: info.size }]).filter((a) => a.size > 0);
  const prot = PROT_READ | PROT_WRITE;
  const areas: Area[] = [];
  try {
    for (const want of wanted) {
      if (want.offset < 0 || want.offset + want.size > info.size) {
        throw new VfioError(
          `${dev.name} ${info.name}: sparse area ${hex(want.offset)}+${hex(want.size)} is outside it`,
        );
      }
      const length = Math.ceil(want.size / libc.pageSize) * libc.pageSize;
      const address = libc.mmap(
        length,
        prot,
        MAP_SHARED,
        dev.fd,
        info.offset + want.offset,
        `${dev.name} ${info.name}`,
      );
      const buffer = libc.arrayBuffer(address, length);
      areas.push({
        offset: want.offset,
        size: want.size,
        address,
        length,
        u8: new Uint8Array(buffer),
        u16: new Uint16Array(buffer),
        u32: new Uint32Array(buffer),
        u64: new BigUint64Array(buffer),
      });
    }
  } catch (e) {
    unmapAll(areas);
    throw e;
  }
  return areas;
}

function unmapAll(areas: readonly Area[]): void {
  let first: unknown = null;
  for (const a of areas) {
    try {
      libc.munmap(a.address, a.length);
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== null) throw first;
}
