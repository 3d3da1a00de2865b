/**
 * How the library's resources print: one helper that gives a class a `Deno.inspect` and a `node:util` `inspect`
 * (Bun's `console.log`) form built from its `toJSON()`, so `console.log(dev)` shows the address, IOMMU path,
 * regions, bus addresses or vectors instead of `Device {}`.
 *
 * ```ts
 * import { inspect } from "node:util";
 * import { inspectable } from "./inspect.ts";
 * class Thing {
 *   toJSON(): object {
 *     return { size: 4096, closed: false };
 *   }
 * }
 * inspectable(Thing);
 * console.log(inspect(new Thing())); // Thing { size: 4096, closed: false }
 * ```
 * @module
 */
import { inspect as nodeInspect, type InspectOptions } from "node:util";
import { hex } from "./hex.ts";

/** The symbol `Deno.inspect` (and Deno's `console.log`) looks up on an object. */
export const DENO_INSPECT: unique symbol = Symbol.for("Deno.customInspect") as never;
/** The symbol `node:util`'s `inspect` (and Bun's and Node's `console.log`) looks up on an object. */
export const NODE_INSPECT: unique symbol = Symbol.for("nodejs.util.inspect.custom") as never;

type Inspect = (value: unknown, options?: InspectOptions) => string;

/** `size` as people read it: `4 KiB`, `16 MiB`, or bytes when it is not a whole number of KiB (`256 B`). */
export function byteSize(size: number | bigint): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(size);
  let u = 0;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

/**
 * Makes instances of `cls` print as `Name { …toJSON()… }` under `Deno.inspect` and `node:util`'s `inspect` (so in
 * `console.log` on Deno, Bun and Node). `toJSON()` must not throw, also after `close()`.
 */
export function inspectable(cls: { readonly prototype: { toJSON(): object }; readonly name: string }): void {
  const name = cls.name;
  Object.defineProperty(cls.prototype, DENO_INSPECT, {
    value(this: { toJSON(): object }, inspect: Inspect, options?: InspectOptions): string {
      return `${name} ${(inspect ?? nodeInspect)(this.toJSON(), options)}`;
    },
    configurable: true,
  });
  Object.defineProperty(cls.prototype, NODE_INSPECT, {
    value(this: { toJSON(): object }, _depth: number, options?: InspectOptions, inspect?: Inspect): string {
      return `${name} ${(inspect ?? nodeInspect)(this.toJSON(), options)}`;
    },
    configurable: true,
  });
}

/** The plain form of an IOVA space (a type1 container or an iommufd IOAS) that `toJSON()` gives. */
export interface AddressSpaceSummary {
  /** The container's node (type1/no-IOMMU containers). */
  path?: string;
  /** The IOAS id (iommufd). */
  id?: number;
  /** The IOMMU model: `type1 (n)`, `noiommu`, `iommufd`, or `unset` before a group is attached. */
  iommu: string;
  /** Groups attached (containers). */
  groups?: number;
  /** Whether it is closed. */
  closed: boolean;
  /** The usable IOVA ranges, once the kernel has been asked. */
  iovaRanges?: string[];
  /** How many DMA mappings are made, and their total size. */
  mappings: { count: number; total: string };
}

/** Builds an {@linkcode AddressSpaceSummary} from what a container or IOAS knows without asking the kernel. */
export function spaceSummary(
  head: { path?: string; id?: number; iommu: string; groups?: number },
  closed: boolean,
  ranges: readonly { start: bigint; end: bigint }[] | undefined,
  mappings: ReadonlyMap<bigint, number>,
): AddressSpaceSummary {
  let total = 0;
  for (const size of mappings.values()) total += size;
  return {
    ...head,
    closed,
    ...(ranges ? { iovaRanges: ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`) } : {}),
    mappings: { count: mappings.size, total: byteSize(total) },
  };
}
