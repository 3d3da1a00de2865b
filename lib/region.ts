/**
 * Typed register access to one region of a VFIO device (a BAR, the ROM, config space, VGA).
 *
 * A {@linkcode Region} mmaps what the kernel lets it map (the whole region, or each area of a sparse-mmap
 * capability) and serves every access inside a mapping straight from memory: reads through {@linkcode deviceLoad} (which
 * no JIT hoists out of a polling loop, and which never writes the register back), writes as one plain typed-array store of the access width (a 64-bit
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
import { deviceLoad } from "./device_load.ts";
import { ClosedError, OutOfRangeError, SizeLimitError, UnsupportedError, VfioError } from "./errors.ts";
import { hex } from "./hex.ts";
import { byteSize, inspectable } from "./inspect.ts";
import { checkIntWidth } from "./int_width.ts";
import { type RegionInfo, regionInfo, type SparseMmapArea } from "./region_info.ts";
import type { DeviceFd } from "./types.ts";
import { detachPieces, pieceFor, subPiece, type ViewPiece, viewPieces } from "./views.ts";

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

/** One mmap of a region (the whole region, or one sparse area). */
interface Mapping {
  readonly offset: number;
  readonly size: number;
  readonly address: bigint;
  readonly length: number;
}

const EMPTY = new ArrayBuffer(0);
const EMPTY_U8 = new Uint8Array(EMPTY);
const EMPTY_U16 = new Uint16Array(EMPTY);
const EMPTY_U32 = new Uint32Array(EMPTY);
const EMPTY_U64 = new BigUint64Array(EMPTY);
const U64_MAX = 0xffffffffffffffffn;

// Scratch for the pread/pwrite path: one buffer, one view per width (JS is single-threaded per isolate).
const SCRATCH = new ArrayBuffer(8);
const S8 = new Uint8Array(SCRATCH, 0, 1);
const S16 = new Uint16Array(SCRATCH, 0, 1);
const S32 = new Uint32Array(SCRATCH, 0, 1);
const S64 = new BigUint64Array(SCRATCH, 0, 1);

/** Forgets windows the program dropped without closing them. */
const windowsGone = new FinalizationRegistry<{ set: Set<WeakRef<Region>>; ref: WeakRef<Region> }>(
  ({ set, ref }) => set.delete(ref),
);

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
  // A window is a Region over [#base, #base + #size) of the region #root owns the mappings of.
  readonly #base: number;
  readonly #size: number;
  readonly #root: Region | null;
  #maps: Mapping[];
  #pieces: ViewPiece[];
  readonly #windows = new Set<WeakRef<Region>>();
  #ref: WeakRef<Region> | null = null;
  #closed = false;
  // Fast path: the piece that starts at offset 0, and how many bytes of it are in bounds for every width.
  #limit: number;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #u64: BigUint64Array;

  private constructor(
    dev: DeviceFd,
    info: RegionInfo,
    maps: Mapping[],
    pieces: ViewPiece[],
    window: { root: Region; base: number; size: number } | null = null,
  ) {
    this.#dev = dev;
    this.#info = info;
    this.#base = window?.base ?? 0;
    this.#size = window?.size ?? info.size;
    this.#root = window?.root ?? null;
    this.#what = window
      ? `${dev.name} ${info.name}[${hex(this.#base)}+${hex(this.#size)}]`
      : `${dev.name} ${info.name}`;
    this.#maps = maps;
    this.#pieces = pieces;
    const first = pieces.find((p) => p.offset === 0);
    this.#u8 = first?.u8 ?? EMPTY_U8;
    this.#u16 = first?.u16 ?? EMPTY_U16;
    this.#u32 = first?.u32 ?? EMPTY_U32;
    this.#u64 = first?.u64 ?? EMPTY_U64;
    this.#limit = first ? Math.floor(Math.min(first.size, this.#size) / 8) * 8 : 0;
  }

  /**
   * Opens region `index` of a device: fetches its info, and mmaps it (whole, or each sparse area) when allowed.
   * A region longer than the runtime's largest typed array (4 GiB on Bun) is still mapped whole and reached by
   * offset everywhere; {@linkcode window} gives fast views of a part of it.
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
    if (!Number.isSafeInteger(info.size) || !Number.isSafeInteger(info.offset)) {
      throw new SizeLimitError(`${dev.name} ${info.name}`, info.size, Number.MAX_SAFE_INTEGER, {
        remedy: "regions beyond 2^53 bytes cannot be addressed with JavaScript numbers",
      });
    }
    if (mode === "never") return new Region(dev, info, [], []);
    if (!info.mmappable) {
      if (mode === "required") {
        throw new UnsupportedError(`${dev.name} ${info.name} cannot be mmapped`, {
          remedy: 'the kernel does not allow it (I/O-port BAR, ROM, config); use { mmap: "auto" } for pread/pwrite',
        });
      }
      return new Region(dev, info, [], []);
    }
    let mapped: { maps: Mapping[]; pieces: ViewPiece[] } = { maps: [], pieces: [] };
    try {
      mapped = mapAreas(dev, info);
    } catch (e) {
      if (mode === "required") throw e;
    }
    if (mapped.maps.length === 0 && mode === "required") {
      throw new UnsupportedError(`${dev.name} ${info.name}: the kernel offers no area to mmap`);
    }
    return new Region(dev, info, mapped.maps, mapped.pieces);
  }

  /** The region index. */
  get index(): number {
    return this.#info.index;
  }
  /** `"BAR0"` … `"BAR5"`, `"ROM"`, `"config"`, `"VGA"` or `"region N"`. */
  get name(): string {
    return this.#info.name;
  }
  /** Size in bytes (of the window, for a {@linkcode window}). */
  get size(): number {
    return this.#size;
  }
  /** Where a {@linkcode window} starts in its region (0 for a whole region). */
  get windowOffset(): number {
    return this.#base;
  }
  /** What the kernel reported about the region. */
  get info(): RegionInfo {
    return this.#info;
  }
  /** Whether any part of the region is mmapped (accesses there skip the system call). */
  get mapped(): boolean {
    return this.#pieces.length > 0;
  }
  /** The mmapped windows, in bytes from the region's start (empty when everything goes through pread/pwrite). */
  get mappedAreas(): readonly SparseMmapArea[] {
    const out: SparseMmapArea[] = [];
    for (const m of (this.#root ?? this).#maps) {
      const start = Math.max(m.offset, this.#base);
      const end = Math.min(m.offset + m.size, this.#base + this.#size);
      if (start < end) out.push({ offset: start - this.#base, size: end - start });
    }
    return out;
  }
  /** Whether `close()` was called (or, for a window, its region was closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * **UNSAFE**: the raw `ArrayBuffer` over the mapping that starts at offset 0 (on Bun at most its first 4 GiB). It
   * is detached by `close()`. Plain typed-array reads of it may be hoisted out of loops by the JIT (use
   * {@linkcode deviceLoad}, not `Atomics.load`, which Bun compiles to a write), and nothing checks widths or bounds. Throws when nothing is mapped at offset 0, and for a
   * window (which has no buffer of its own: use {@linkcode unsafeAddress}).
   *
   * ```ts
   * import { Region } from "./region.ts";
   * import { deviceLoad } from "./device_load.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * const bar0 = Region.open(dev, 0);
   * const regs = new Uint32Array(bar0.unsafeArrayBuffer);
   * deviceLoad(regs, 0);
   * ```
   */
  get unsafeArrayBuffer(): ArrayBuffer {
    const first = this.#firstPiece("unsafeArrayBuffer");
    if (first.u8.byteOffset !== 0 || first.u8.byteLength !== first.u8.buffer.byteLength) {
      throw new UnsupportedError(`${this.#what} unsafeArrayBuffer: a window shares its region's buffer`, {
        remedy: "use the window's typed accessors, or unsafeAddress",
      });
    }
    return first.u8.buffer as ArrayBuffer;
  }

  /** **UNSAFE**: the virtual address of the mapping that starts at offset 0 (for C helpers); invalid after close. */
  get unsafeAddress(): bigint {
    return this.#firstPiece("unsafeAddress").address;
  }

  /**
   * A window over `[offset, offset + length)` of this region: a `Region` with its own bounds (offsets are from the
   * window's start) and its own fast path, sharing this region's mappings. This is how a program reaches the far
   * end of a region longer than the runtime's largest typed array (Bun: 4 GiB) at full speed. A window is closed
   * with its region (or on its own: closing it unmaps nothing). `offset` must be a multiple of 8.
   *
   * ```ts
   * import { Region } from "./region.ts";
   * import type { DeviceFd } from "./types.ts";
   * declare const dev: DeviceFd;
   * using bar2 = Region.open(dev, 2); // 16 GiB
   * using tail = bar2.window(bar2.size - 4096, 4096);
   * tail.write32(0xffc, 0x12345678);
   * console.log(tail.read32(0xffc) === bar2.read32(bar2.size - 4)); // true
   * ```
   */
  window(offset: number, length: number): Region {
    if (this.#closed) throw new ClosedError(`Region ${this.#what}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 8 !== 0) {
      throw new OutOfRangeError(`${this.#what} window at ${offset}: the offset must be a non-negative multiple of 8`);
    }
    if (!Number.isSafeInteger(length) || length <= 0 || offset + length > this.#size) {
      throw new OutOfRangeError(
        `${this.#what} window of ${length} bytes at ${hex(offset)}: outside the ${hex(this.#size)}-byte region`,
        { remedy: "give a positive length that ends inside the region" },
      );
    }
    const pieces: ViewPiece[] = [];
    for (const p of this.#pieces) {
      const start = Math.max(p.offset, offset);
      const end = Math.min(p.offset + p.size, offset + length);
      if (start < end) pieces.push(subPiece(p, start, end, offset));
    }
    const root = this.#root ?? this;
    const w = new Region(this.#dev, this.#info, [], pieces, { root, base: this.#base + offset, size: length });
    const ref = new WeakRef(w);
    w.#ref = ref;
    root.#windows.add(ref);
    windowsGone.register(w, { set: root.#windows, ref }, ref);
    return w;
  }

  /** Reads the byte at `offset`. */
  read8(offset: number): number {
    if ((offset >>> 0) === offset && offset < this.#limit) return deviceLoad(this.#u8, offset);
    return this.#read8(offset);
  }
  /** Reads the 16-bit little-endian register at `offset` (2-byte aligned). */
  read16(offset: number): number {
    if ((offset >>> 0) === offset && (offset & 1) === 0 && offset < this.#limit) {
      return deviceLoad(this.#u16, offset >>> 1);
    }
    return this.#read16(offset);
  }
  /** Reads the 32-bit little-endian register at `offset` (4-byte aligned). */
  read32(offset: number): number {
    if ((offset >>> 0) === offset && (offset & 3) === 0 && offset < this.#limit) {
      return deviceLoad(this.#u32, offset >>> 2);
    }
    return this.#read32(offset);
  }
  /** Reads the 64-bit little-endian register at `offset` (8-byte aligned) with one 8-byte load. */
  read64(offset: number): bigint {
    if ((offset >>> 0) === offset && (offset & 7) === 0 && offset < this.#limit) {
      return deviceLoad(this.#u64, offset >>> 3);
    }
    return this.#read64(offset);
  }

  /** Writes the byte at `offset`; `value` is an integer from -128 to 255 (else an {@linkcode OutOfRangeError}). */
  write8(offset: number, value: number): void {
    if ((offset >>> 0) === offset && offset < this.#limit && (value & 0xff) === value) this.#u8[offset] = value;
    else this.#write8(offset, value);
  }
  /** Writes the 16-bit register at `offset` (2-byte aligned); `value` is an integer from -2^15 to 2^16-1. */
  write16(offset: number, value: number): void {
    if ((offset >>> 0) === offset && (offset & 1) === 0 && offset < this.#limit && (value & 0xffff) === value) {
      this.#u16[offset >>> 1] = value;
    } else this.#write16(offset, value);
  }
  /** Writes the 32-bit register at `offset` (4-byte aligned); `value` is an integer from -2^31 to 2^32-1. */
  write32(offset: number, value: number): void {
    if ((offset >>> 0) === offset && (offset & 3) === 0 && offset < this.#limit && (value >>> 0) === value) {
      this.#u32[offset >>> 2] = value;
    } else this.#write32(offset, value);
  }
  /** Writes the 64-bit register at `offset` (8-byte aligned) with one 8-byte store; a bigint from -2^63 to 2^64-1. */
  write64(offset: number, value: bigint): void {
    if (
      (offset >>> 0) === offset && (offset & 7) === 0 && offset < this.#limit && typeof value === "bigint" &&
      value >= 0n && value <= U64_MAX
    ) {
      this.#u64[offset >>> 3] = value;
    } else this.#write64(offset, value);
  }

  /**
   * Copies `length` bytes starting at `offset` into a new array (a memory copy inside a mapping, one pread
   * otherwise). Not for registers with read side effects: the copy's access widths are unspecified.
   */
  readBytes(offset: number, length: number): Uint8Array {
    const pieces = this.#check(offset, length, 1, "readBytes");
    const out = new Uint8Array(length);
    if (pieces) {
      for (const p of pieces) {
        const start = Math.max(offset, p.offset);
        const end = Math.min(offset + length, p.offset + p.size);
        out.set(p.u8.subarray(start - p.offset, end - p.offset), start - offset);
      }
    } else if (length > 0) this.#pread(out, offset, "readBytes");
    return out;
  }

  /** Writes `bytes` starting at `offset` (a memory copy inside a mapping, one pwrite otherwise). */
  writeBytes(offset: number, bytes: Uint8Array): void {
    const pieces = this.#check(offset, bytes.byteLength, 1, "writeBytes");
    if (pieces) {
      for (const p of pieces) {
        const start = Math.max(offset, p.offset);
        const end = Math.min(offset + bytes.byteLength, p.offset + p.size);
        p.u8.set(bytes.subarray(start - offset, end - offset), start - p.offset);
      }
    } else if (bytes.byteLength > 0) this.#pwrite(bytes, offset, "writeBytes");
  }

  /**
   * Unmaps the region and closes its windows; idempotent. Every later access throws a {@linkcode ClosedError}.
   * Closing a window unmaps nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Swap the views out before unmapping, so no access can reach the memory that is about to go.
    this.#limit = 0;
    this.#u8 = EMPTY_U8;
    this.#u16 = EMPTY_U16;
    this.#u32 = EMPTY_U32;
    this.#u64 = EMPTY_U64;
    const pieces = this.#pieces;
    this.#pieces = [];
    if (this.#root) {
      if (this.#ref) {
        this.#root.#windows.delete(this.#ref);
        windowsGone.unregister(this.#ref);
      }
      return;
    }
    for (const ref of this.#windows) ref.deref()?.close();
    detachPieces(pieces);
    const maps = this.#maps;
    this.#maps = [];
    unmapAll(maps);
  }

  /** Same as {@linkcode close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(region)` shows: device, region, size, access flags, how it is reached. */
  toJSON(): RegionSummary {
    const i = this.#info;
    const flags = [i.readable && "read", i.writable && "write", i.mmappable && "mmap"].filter(Boolean).join(",");
    const sparseAreas = i.sparseAreas?.map((a) => `${hex(a.offset)}+${byteSize(a.size)}`);
    return {
      device: this.#dev.name,
      name: i.name,
      index: i.index,
      size: byteSize(this.#size),
      ...(this.#root ? { windowOffset: hex(this.#base) } : {}),
      flags,
      access: this.#closed ? "closed" : this.#pieces.length ? "mmap" : "pread/pwrite",
      ...(sparseAreas ? { sparseAreas } : {}),
    };
  }

  // ----- slow paths: validation, other mapped pieces, pread/pwrite -----

  #read8(offset: number): number {
    const p = this.#at(offset, 1, "read8");
    if (p) return deviceLoad(p.u8, offset - p.offset);
    this.#pread(S8, offset, "read8");
    return S8[0];
  }
  #read16(offset: number): number {
    const p = this.#at(offset, 2, "read16");
    if (p) return deviceLoad(p.u16, (offset - p.offset) / 2);
    this.#pread(S16, offset, "read16");
    return S16[0];
  }
  #read32(offset: number): number {
    const p = this.#at(offset, 4, "read32");
    if (p) return deviceLoad(p.u32, (offset - p.offset) / 4);
    this.#pread(S32, offset, "read32");
    return S32[0];
  }
  #read64(offset: number): bigint {
    const p = this.#at(offset, 8, "read64");
    if (p) return deviceLoad(p.u64, (offset - p.offset) / 8);
    this.#pread(S64, offset, "read64");
    return S64[0];
  }
  #write8(offset: number, value: number): void {
    checkIntWidth(value, 8, `${this.#what} write8`);
    const p = this.#at(offset, 1, "write8");
    if (p) p.u8[offset - p.offset] = value;
    else {
      S8[0] = value;
      this.#pwrite(S8, offset, "write8");
    }
  }
  #write16(offset: number, value: number): void {
    checkIntWidth(value, 16, `${this.#what} write16`);
    const p = this.#at(offset, 2, "write16");
    if (p) p.u16[(offset - p.offset) / 2] = value;
    else {
      S16[0] = value;
      this.#pwrite(S16, offset, "write16");
    }
  }
  #write32(offset: number, value: number): void {
    checkIntWidth(value, 32, `${this.#what} write32`);
    const p = this.#at(offset, 4, "write32");
    if (p) p.u32[(offset - p.offset) / 4] = value;
    else {
      S32[0] = value;
      this.#pwrite(S32, offset, "write32");
    }
  }
  #write64(offset: number, value: bigint): void {
    if (typeof value !== "bigint" || value < -(1n << 63n) || value > U64_MAX) {
      throw new OutOfRangeError(`${this.#what} write64 of ${String(value)}: not a 64-bit value`, {
        remedy: "pass a bigint from -2n ** 63n to 2n ** 64n - 1n",
      });
    }
    const p = this.#at(offset, 8, "write64");
    if (p) p.u64[(offset - p.offset) / 8] = value;
    else {
      S64[0] = value;
      this.#pwrite(S64, offset, "write64");
    }
  }

  /** Refuses a value that is not an integer of `bits` bits (signed or unsigned). */
  /** Validates a register access and returns the mapped piece that holds it, or null for pread/pwrite. */
  #at(offset: number, width: number, op: string): ViewPiece | null {
    return this.#check(offset, width, width, op)?.[0] ?? null;
  }

  /** Validates an access and returns the mapped pieces that hold all of it (in order), or null for pread/pwrite. */
  #check(offset: number, length: number, align: number, op: string): ViewPiece[] | null {
    if (this.#closed) throw new ClosedError(`Region ${this.#what}`);
    const size = this.#size;
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
    const one = pieceFor(this.#pieces, offset, length);
    if (one) return [one];
    // A copy may span consecutive pieces of one mapping (a region longer than the runtime's views).
    const span = this.#pieces.filter((p) => p.offset < offset + length && p.offset + p.size > offset);
    let covered = offset;
    for (const p of span) if (p.offset <= covered) covered = Math.max(covered, p.offset + p.size);
    if (length > 0 && span.length > 1 && covered >= offset + length) return span;
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
    const at = this.#info.offset + this.#base + offset;
    const n = libc.pread(this.#dev.fd, buf, at, `${this.#what} ${op} at ${hex(offset)}`);
    if (n !== buf.byteLength) {
      throw new VfioError(`${this.#what} ${op} at ${hex(offset)}: short read (${n} of ${buf.byteLength} bytes)`);
    }
  }

  #pwrite(buf: Uint8Array | Uint16Array | Uint32Array | BigUint64Array, offset: number, op: string): void {
    const at = this.#info.offset + this.#base + offset;
    const n = libc.pwrite(this.#dev.fd, buf, at, `${this.#what} ${op} at ${hex(offset)}`);
    if (n !== buf.byteLength) {
      throw new VfioError(`${this.#what} ${op} at ${hex(offset)}: short write (${n} of ${buf.byteLength} bytes)`);
    }
  }

  #firstPiece(op: string): ViewPiece {
    if (this.#closed) throw new ClosedError(`Region ${this.#what}`);
    const first = this.#pieces.find((p) => p.offset === 0);
    if (!first) {
      throw new UnsupportedError(`${this.#what} ${op}: nothing is mmapped at offset 0`, {
        remedy: "the region goes through pread/pwrite; use the typed read/write methods",
      });
    }
    return first;
  }
}
inspectable(Region);

/** {@linkcode Region.toJSON}'s plain form of a region. */
export interface RegionSummary {
  /** The device's name. */
  device: string;
  /** `BAR0` … `config`. */
  name: string;
  /** The region index. */
  index: number;
  /** Size, e.g. `4 KiB` (of the window, for a window). */
  size: string;
  /** Where a window starts in its region (windows only). */
  windowOffset?: string;
  /** The kernel's `read`/`write`/`mmap` flags. */
  flags: string;
  /** `mmap`, `pread/pwrite`, or `closed`. */
  access: string;
  /** The mmappable areas of a sparse region. */
  sparseAreas?: string[];
}

/**
 * mmaps the whole region, or each sparse area, and makes the typed views over each (several per mapping when it is
 * longer than the runtime's largest view); unmaps what it mapped if any step fails.
 */
function mapAreas(dev: DeviceFd, info: RegionInfo): { maps: Mapping[]; pieces: ViewPiece[] } {
  // A mapping without PROT_WRITE (or PROT_READ) would fault on the fast path: keep such regions on pread/pwrite.
  if (!info.readable || !info.writable) return { maps: [], pieces: [] };
  const wanted = (info.sparseAreas ?? [{ offset: 0, size: info.size }]).filter((a) => a.size > 0);
  for (const want of wanted) {
    if (!Number.isSafeInteger(want.offset) || want.offset < 0 || want.offset + want.size > info.size) {
      throw new VfioError(`${dev.name} ${info.name}: sparse area ${hex(want.offset)}+${hex(want.size)} is outside it`);
    }
  }
  const prot = PROT_READ | PROT_WRITE;
  const maps: Mapping[] = [];
  const pieces: ViewPiece[] = [];
  using undo = new DisposableStack(); // on a failure: detach and unmap what was made, keeping every error
  undo.defer(() => unmapAll(maps));
  undo.defer(() => detachPieces(pieces));
  for (const want of wanted) {
    const length = Math.ceil(want.size / libc.pageSize) * libc.pageSize;
    const address = libc.mmap(length, prot, MAP_SHARED, dev.fd, info.offset + want.offset, `${dev.name} ${info.name}`);
    // Recorded before anything else can throw, so that a failure below unmaps it too.
    maps.push({ offset: want.offset, size: want.size, address, length });
    pieces.push(...viewPieces(address, want.size, want.offset));
  }
  undo.move();
  return { maps, pieces };
}

/** Unmaps every mapping, each even when another fails; several failures arrive as a SuppressedError chain. */
function unmapAll(maps: readonly Mapping[]): void {
  using stack = new DisposableStack();
  for (const m of maps) stack.defer(() => libc.munmap(m.address, m.length));
}
