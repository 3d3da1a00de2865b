/**
 * Typed, little-endian, zero-copy views of C structs laid out in a `Uint8Array`.
 *
 * A struct is described once with {@linkcode defineStruct}: its C name, its `sizeof`, and each field's
 * C name, kind and byte offset. The description can then allocate a zeroed buffer ({@linkcode StructDef.alloc})
 * or lay a view over existing memory ({@linkcode StructDef.view}); reading or writing a field of the view reads
 * or writes the bytes in place. The same description carries the metadata the ABI test compares against the
 * kernel headers, so a layout is written down in exactly one place.
 *
 * Integer fields up to 32 bits read as `number`, 64-bit fields as `bigint`. Fixed arrays and flexible
 * trailing arrays read as `Uint8Array` windows onto the same memory, and nested structs as views.
 *
 * ```ts
 * import { defineStruct, u32, u64 } from "@vfio-ts/vfio/abi";
 * const Pair = defineStruct("pair", 16, { id: u32(0), pad: u32(4), value: u64(8) });
 * const p = Pair.alloc();
 * p.id = 7;
 * p.value = 1n << 40n;
 * console.log(p.bytes); // Uint8Array(16) [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
 * ```
 * @module
 */

/** Integer field kinds that read as `number`. */
export type NumberKind = "u8" | "u16" | "u32" | "i32";
/** Integer field kinds that read as `bigint`. */
export type BigIntKind = "u64" | "i64";

/** A field holding an integer of 32 bits or less, read and written as a `number`. */
export interface NumberField {
  /** The C integer type (`__u8` is `u8`, `__s32` is `i32`, and so on). */
  readonly kind: NumberKind;
  /** Byte offset within the struct (`offsetof`). */
  readonly offset: number;
  /** Byte width (`sizeof` of the member). */
  readonly width: number;
}

/** A 64-bit integer field, read and written as a `bigint`. */
export interface BigIntField {
  /** The C integer type (`__u64`/`__aligned_u64` is `u64`, `__s64` is `i64`). */
  readonly kind: BigIntKind;
  /** Byte offset within the struct (`offsetof`). */
  readonly offset: number;
  /** Byte width, always 8. */
  readonly width: 8;
}

/** A fixed-length byte array member (`__u8 name[N]`), read as a `Uint8Array` window. */
export interface BytesField {
  /** Marks a fixed array. */
  readonly kind: "bytes";
  /** Byte offset within the struct (`offsetof`). */
  readonly offset: number;
  /** Byte width of the whole array (`N`). */
  readonly width: number;
}

/** A flexible trailing array member (`T name[]`), read as a `Uint8Array` window from its offset to the end. */
export interface TailField {
  /** Marks a flexible array member. */
  readonly kind: "tail";
  /** Byte offset of the first element (`offsetof`). */
  readonly offset: number;
  /** `sizeof` one element. */
  readonly width: number;
}

/** A member that is itself a struct, read as a view of that struct at the member's offset. */
export interface StructField<F extends Fields = Fields> {
  /** Marks a nested struct. */
  readonly kind: "struct";
  /** Byte offset within the outer struct (`offsetof`). */
  readonly offset: number;
  /** `sizeof` the nested struct. */
  readonly width: number;
  /** The nested struct's description. */
  readonly def: StructDef<F>;
}

/** Any field description. */
export type Field = NumberField | BigIntField | BytesField | TailField | StructField;
/** A struct's fields by C member name. */
export type Fields = { readonly [name: string]: Field };

/** The JavaScript type a field reads as. */
export type FieldValue<T extends Field> = T extends NumberField ? number
  : T extends BigIntField ? bigint
  : T extends StructField<infer F> ? StructView<F>
  : Uint8Array;

/** The fields of `F` a view can assign: the integer ones. */
export type WritableKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends NumberField | BigIntField ? K : never;
}[keyof F];
/** The fields of `F` a view only reads: byte arrays, flexible arrays and nested structs. */
export type ReadonlyKeys<F extends Fields> = Exclude<keyof F, WritableKeys<F>>;

/** A live view of one struct: integer fields are read/write properties, arrays and nested structs read-only. */
export type StructView<F extends Fields> =
  & { -readonly [K in WritableKeys<F>]: FieldValue<F[K]> }
  & { readonly [K in ReadonlyKeys<F>]: FieldValue<F[K]> }
  & {
    /** The viewed memory: from the struct's first byte to the end of the buffer it was given (for an ioctl). */
    readonly bytes: Uint8Array;
  };

/** Metadata of one field, in the C names (what the ABI test checks). */
export interface FieldInfo {
  /** The C member name. */
  readonly name: string;
  /** Field kind. */
  readonly kind: Field["kind"];
  /** `offsetof` the member. */
  readonly offset: number;
  /** `sizeof` the member (for a flexible array: of one element). */
  readonly width: number;
  /** For a nested struct: its C struct name. */
  readonly structName?: string;
}

/** A struct layout: metadata plus factories for views. */
export interface StructDef<F extends Fields = Fields> {
  /** The C struct name, without the `struct` keyword. */
  readonly cName: string;
  /** `sizeof` the struct, flexible array excluded. */
  readonly size: number;
  /** Every declared field, in declaration order. */
  readonly fields: readonly FieldInfo[];
  /** Field descriptions by name, as given to {@linkcode defineStruct}. */
  readonly layout: F;
  /** Allocates a fresh zeroed buffer of `size + extraBytes` bytes and returns a view of it. */
  alloc(extraBytes?: number): StructView<F>;
  /** Views existing memory without copying; `byteLength` defaults to the rest of the buffer. */
  view(bytes: Uint8Array, byteOffset?: number, byteLength?: number): StructView<F>;
}

/** Every StructDef made by defineStruct, so {@linkcode isStructDef} cannot be fooled by look-alikes. */
const DEFINED = new WeakSet<object>();

/**
 * Whether `value` is a struct description made by {@linkcode defineStruct}.
 *
 * ```ts
 * import { defineStruct, isStructDef, u32 } from "@vfio-ts/vfio/abi";
 * isStructDef(defineStruct("s", 4, { a: u32(0) })); // true
 * isStructDef({ cName: "s", size: 4 }); // false
 * ```
 */
export function isStructDef(value: unknown): value is StructDef {
  return typeof value === "object" && value !== null && DEFINED.has(value);
}

const WIDTH: Record<NumberKind | BigIntKind, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

function offsetOk(offset: number): number {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad field offset ${offset}`);
  return offset;
}

/**
 * An unsigned 8-bit field (`__u8`) at `offset`.
 *
 * ```ts
 * import { defineStruct, u8 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 1, { bus: u8(0) });
 * ```
 */
export function u8(offset: number): NumberField {
  return { kind: "u8", offset: offsetOk(offset), width: 1 };
}

/**
 * An unsigned 16-bit field (`__u16`) at `offset`.
 *
 * ```ts
 * import { defineStruct, u16 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 2, { id: u16(0) });
 * ```
 */
export function u16(offset: number): NumberField {
  return { kind: "u16", offset: offsetOk(offset), width: 2 };
}

/**
 * An unsigned 32-bit field (`__u32`) at `offset`.
 *
 * ```ts
 * import { defineStruct, u32 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 4, { argsz: u32(0) });
 * ```
 */
export function u32(offset: number): NumberField {
  return { kind: "u32", offset: offsetOk(offset), width: 4 };
}

/**
 * A signed 32-bit field (`__s32`, e.g. a file descriptor) at `offset`.
 *
 * ```ts
 * import { defineStruct, i32 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 4, { fd: i32(0) });
 * ```
 */
export function i32(offset: number): NumberField {
  return { kind: "i32", offset: offsetOk(offset), width: 4 };
}

/**
 * An unsigned 64-bit field (`__u64` or `__aligned_u64`) at `offset`, read as `bigint`.
 *
 * ```ts
 * import { defineStruct, u64 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 8, { iova: u64(0) });
 * ```
 */
export function u64(offset: number): BigIntField {
  return { kind: "u64", offset: offsetOk(offset), width: 8 };
}

/**
 * A signed 64-bit field (`__s64`) at `offset`, read as `bigint`.
 *
 * ```ts
 * import { defineStruct, i64 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 8, { delta: i64(0) });
 * ```
 */
export function i64(offset: number): BigIntField {
  return { kind: "i64", offset: offsetOk(offset), width: 8 };
}

/**
 * A fixed byte array (`__u8 name[length]`) at `offset`, read as a `Uint8Array` window.
 *
 * ```ts
 * import { bytes, defineStruct } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 4, { reserved: bytes(1, 3) });
 * ```
 */
export function bytes(offset: number, length: number): BytesField {
  if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`bad array length ${length}`);
  return { kind: "bytes", offset: offsetOk(offset), width: length };
}

/**
 * A flexible trailing array (`T name[]`) starting at `offset`, each element `elementSize` bytes. It reads as a
 * `Uint8Array` from `offset` to the end of the viewed memory.
 *
 * ```ts
 * import { defineStruct, tail, u32 } from "@vfio-ts/vfio/abi";
 * const S = defineStruct("s", 4, { count: u32(0), data: tail(4, 1) });
 * const s = S.alloc(8);
 * s.data.length; // 8
 * ```
 */
export function tail(offset: number, elementSize: number): TailField {
  if (!Number.isSafeInteger(elementSize) || elementSize <= 0) throw new RangeError(`bad element size ${elementSize}`);
  return { kind: "tail", offset: offsetOk(offset), width: elementSize };
}

/**
 * A member that is itself a struct (e.g. a capability's `struct vfio_info_cap_header header`) at `offset`.
 *
 * ```ts
 * import { defineStruct, struct, u16, u32 } from "@vfio-ts/vfio/abi";
 * const Header = defineStruct("hdr", 8, { id: u16(0), version: u16(2), next: u32(4) });
 * const Cap = defineStruct("cap", 12, { header: struct(Header, 0), value: u32(8) });
 * Cap.alloc().header.id; // 0
 * ```
 */
export function struct<F extends Fields>(def: StructDef<F>, offset: number): StructField<F> {
  return { kind: "struct", offset: offsetOk(offset), width: def.size, def };
}

/** Base of every view class: holds the memory and makes its DataView on first use. */
class ViewBase {
  readonly bytes: Uint8Array;
  private dataView: DataView | undefined;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** The DataView over {@linkcode bytes}, made once per view. */
  dv(): DataView {
    return this.dataView ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name}: ${value} is not an integer in [${min}, ${max}]`);
  }
}

function checkBigInt(name: string, value: bigint, min: bigint, max: bigint): void {
  if (typeof value !== "bigint" || value < min || value > max) {
    throw new RangeError(`${name}: ${String(value)} is not a bigint in [${min}, ${max}]`);
  }
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function accessor(qualified: string, field: Field): PropertyDescriptor {
  const o = field.offset;
  switch (field.kind) {
    case "u8":
      return {
        get(this: ViewBase): number {
          return this.bytes[o];
        },
        set(this: ViewBase, v: number): void {
          checkInteger(qualified, v, 0, 0xff);
          this.bytes[o] = v;
        },
      };
    case "u16":
      return {
        get(this: ViewBase): number {
          return this.dv().getUint16(o, true);
        },
        set(this: ViewBase, v: number): void {
          checkInteger(qualified, v, 0, 0xffff);
          this.dv().setUint16(o, v, true);
        },
      };
    case "u32":
      return {
        get(this: ViewBase): number {
          return this.dv().getUint32(o, true);
        },
        set(this: ViewBase, v: number): void {
          checkInteger(qualified, v, 0, 0xffffffff);
          this.dv().setUint32(o, v, true);
        },
      };
    case "i32":
      return {
        get(this: ViewBase): number {
          return this.dv().getInt32(o, true);
        },
        set(this: ViewBase, v: number): void {
          checkInteger(qualified, v, -0x80000000, 0x7fffffff);
          this.dv().setInt32(o, v, true);
        },
      };
    case "u64":
      return {
        get(this: ViewBase): bigint {
          return this.dv().getBigUint64(o, true);
        },
        set(this: ViewBase, v: bigint): void {
          checkBigInt(qualified, v, 0n, U64_MAX);
          this.dv().setBigUint64(o, v, true);
        },
      };
    case "i64":
      return {
        get(this: ViewBase): bigint {
          return this.dv().getBigInt64(o, true);
        },
        set(this: ViewBase, v: bigint): void {
          checkBigInt(qualified, v, I64_MIN, I64_MAX);
          this.dv().setBigInt64(o, v, true);
        },
      };
    case "bytes": {
      const end = o + field.width;
      return {
        get(this: ViewBase): Uint8Array {
          return this.bytes.subarray(o, end);
        },
      };
    }
    case "tail":
      return {
        get(this: ViewBase): Uint8Array {
          return this.bytes.subarray(o);
        },
      };
    case "struct": {
      const def = field.def;
      return {
        get(this: ViewBase): StructView<Fields> {
          return def.view(this.bytes, o);
        },
      };
    }
  }
}

/**
 * Describes a C struct: its name, `sizeof`, and fields by C member name. Throws `RangeError` if a field does not
 * fit (only a flexible array may start at `size`) or a field is named `bytes` (reserved for the view's memory).
 *
 * ```ts
 * import { defineStruct, u32, u64 } from "@vfio-ts/vfio/abi";
 * const Info = defineStruct("vfio_region_info", 32, {
 *   argsz: u32(0), flags: u32(4), index: u32(8), cap_offset: u32(12), size: u64(16), offset: u64(24),
 * });
 * const info = Info.alloc();
 * info.argsz = Info.size;
 * const again = Info.view(info.bytes); // same memory
 * again.argsz; // 32
 * ```
 */
export function defineStruct<F extends Fields>(cName: string, size: number, layout: F): StructDef<F> {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`${cName}: bad size ${size}`);
  const View = class extends ViewBase {};
  const infos: FieldInfo[] = [];
  for (const [name, field] of Object.entries(layout)) {
    if (name === "bytes" || name === "dv" || name === "dataView") {
      throw new RangeError(`${cName}: field name "${name}" is reserved`);
    }
    const qualified = `${cName}.${name}`;
    if (
      field.kind !== "bytes" && field.kind !== "tail" && field.kind !== "struct" && field.width !== WIDTH[field.kind]
    ) {
      throw new RangeError(`${qualified}: width ${field.width} does not match ${field.kind}`);
    }
    const fits = field.kind === "tail" ? field.offset <= size : field.offset + field.width <= size;
    if (!fits) throw new RangeError(`${qualified}: does not fit in ${size} bytes`);
    Object.defineProperty(View.prototype, name, { ...accessor(qualified, field), enumerable: true });
    infos.push({
      name,
      kind: field.kind,
      offset: field.offset,
      width: field.width,
      ...(field.kind === "struct" ? { structName: field.def.cName } : {}),
    });
  }
  Object.freeze(infos);
  const def: StructDef<F> = {
    cName,
    size,
    fields: infos,
    layout,
    alloc(extraBytes = 0): StructView<F> {
      if (!Number.isSafeInteger(extraBytes) || extraBytes < 0) {
        throw new RangeError(`${cName}: bad extra ${extraBytes}`);
      }
      return new View(new Uint8Array(size + extraBytes)) as unknown as StructView<F>;
    },
    view(bytes: Uint8Array, byteOffset = 0, byteLength = bytes.length - byteOffset): StructView<F> {
      if (
        !Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteLength < size ||
        byteOffset + byteLength > bytes.length
      ) {
        throw new RangeError(
          `${cName}: needs ${size} bytes at offset ${byteOffset}, have ${byteLength} of ${bytes.length}`,
        );
      }
      return new View(bytes.subarray(byteOffset, byteOffset + byteLength)) as unknown as StructView<F>;
    },
  };
  DEFINED.add(def);
  return Object.freeze(def);
}
