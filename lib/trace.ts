/**
 * A trace of what the library asks the kernel, like `strace -e ioctl` but with VFIO's names: every VFIO and iommufd
 * ioctl (its name from the ABI registry, the struct the kernel answered with, the result or errno, the time it
 * took), and the other system calls that matter for a device (open, close, mmap, munmap, eventfd, pread, pwrite,
 * mlock …). With `mmio`, every register access through a `Region` that a `Device` opened (offset, width, value).
 *
 * Switch it on with the environment, before the library is imported — `VFIO_TS_TRACE=1` (system calls) or
 * `VFIO_TS_TRACE=mmio` (system calls and register accesses), to stderr or to the file `VFIO_TS_TRACE_FILE` — or
 * from code with {@linkcode enableTrace}. Off, it costs nothing: libc's functions are the backend's own, and
 * regions are the untraced class (the traced one is chosen when a region is opened).
 *
 * ```ts
 * import { enableTrace, openDevice } from "@vfio-ts/vfio";
 * enableTrace({ mmio: true });
 * using dev = openDevice("0000:00:03.0");
 * dev.bar(0).read32(0);
 * // [vfio-ts] ioctl(5, VFIO_DEVICE_GET_INFO, {argsz=24, flags=0x3, num_regions=9, num_irqs=5, ...}) = 0 <0.021 ms>
 * // [vfio-ts] mmio 0000:00:03.0 BAR0 read32 0x0 = 0x10000ed
 * ```
 * @module
 */
import { appendFileSync } from "node:fs";
import process from "node:process";
import { interceptLibc, type Libc } from "../ffi/libc.ts";
import { ABI_CONSTANTS, ABI_STRUCTS } from "./abi/registry.ts";
import type { StructDef } from "./abi/struct.ts";
import { type CallTarget, VfioError } from "./errors.ts";
import { hex } from "./hex.ts";
import type { Region } from "./region.ts";
import { writeAllSync } from "./write_all.ts";

/** Options of {@linkcode enableTrace}. */
export interface TraceOptions {
  /** Also log register accesses through regions opened from now on (default false). */
  mmio?: boolean;
  /** Append the lines to this file instead of writing them to stderr. */
  file?: string;
  /** Receive each line instead (tests, a logger); wins over `file`. */
  sink?: (line: string) => void;
}

/**
 * The libc functions not traced: reads and writes of eventfds and pipes, polling and waiting (the hot path of
 * interrupts), and the ones that make no system call of interest. Everything else is traced: open, close, ioctl,
 * mmap, munmap, mlock, eventfd, memfd_create, ftruncate, pread, pwrite, flock.
 */
const UNTRACED: ReadonlySet<keyof Libc> = new Set<keyof Libc>([
  "read",
  "eventfdRead",
  "write",
  "poll",
  "pollIn",
  "epollCreate",
  "epollCtl",
  "epollWait",
  "waitReadable",
  "sysconf",
  "getuid",
  "geteuid",
  "getpid",
  "getrlimit",
  "arrayBuffer",
  "addressOf",
  "pipe",
  "madvise",
]);

let state: { mmio: boolean; emit: (line: string) => void } | null = null;

/**
 * Starts tracing system calls (and, with `mmio`, register accesses of regions opened from now on). Replaces an
 * earlier trace's options.
 *
 * ```ts
 * import { disableTrace, enableTrace } from "@vfio-ts/vfio";
 * const lines: string[] = [];
 * enableTrace({ sink: (l) => lines.push(l) });
 * disableTrace();
 * ```
 */
export function enableTrace(options: TraceOptions = {}): void {
  const file = options.file;
  const emit = options.sink ??
    (file ? (line: string) => appendFileSync(file, line + "\n") : (line: string) => writeAllSync(2, line + "\n"));
  state = { mmio: options.mmio ?? false, emit };
  interceptLibc((name, fn) => (UNTRACED.has(name) ? fn : traced(name, fn)));
}

/**
 * Stops tracing: libc's functions are the backend's own again; regions opened with `mmio` keep logging until closed.
 *
 * ```ts
 * import { disableTrace } from "@vfio-ts/vfio";
 * disableTrace();
 * ```
 */
export function disableTrace(): void {
  state = null;
  interceptLibc(null);
}

/**
 * Whether register accesses of newly opened regions are traced (what `Device.region()` asks).
 *
 * ```ts
 * import { mmioTraced } from "@vfio-ts/vfio";
 * console.log(mmioTraced()); // false unless VFIO_TS_TRACE=mmio
 * ```
 */
export function mmioTraced(): boolean {
  return state?.mmio ?? false;
}

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

function traced(name: keyof Libc, fn: Fn): Fn {
  return (...args: unknown[]): unknown => {
    const t0 = performance.now();
    let result: unknown;
    try {
      result = fn(...args);
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as Error).name;
      log(`${call(name, args)} = -1 ${code} <${ms(t0)}>`);
      throw e;
    }
    log(`${call(name, args)} = ${show(result)} <${ms(t0)}>`);
    return result;
  };
}

function log(line: string): void {
  state?.emit(`[vfio-ts] ${line}`);
}

function ms(t0: number): string {
  return `${(performance.now() - t0).toFixed(3)} ms`;
}

function show(v: unknown): string {
  if (typeof v === "bigint") return hex(v);
  if (typeof v === "number") return v > 0xffff ? hex(v) : String(v);
  if (v === undefined) return "0";
  if (typeof v === "string") return JSON.stringify(v);
  if (ArrayBuffer.isView(v)) return `<${v.byteLength} bytes>`;
  return String(v);
}

/** `name(args…)`, with an ioctl's request decoded and its argument shown as the kernel left it. */
function call(name: keyof Libc, args: unknown[]): string {
  if (name === "ioctl" || name === "ioctlValue") {
    const [fd, request, arg, to] = args as [number, number, unknown, CallTarget | undefined];
    const target = typeof to === "object" ? to.target : to;
    const req = ioctlName(request, target);
    const shown = name === "ioctlValue" ? show(arg) : argument(arg, req);
    const about = target && target !== req ? ` /* ${target} */` : "";
    return `ioctl(${fd}, ${req}, ${shown})${about}`;
  }
  if (name === "mmap") {
    const [length, prot, flags, fd, offset, target] = args as [number, number, number, number, number, string?];
    return `mmap(${show(length)}, prot=${prot}, flags=${flags}, ${fd}, ${show(offset)})${
      target ? ` /* ${target} */` : ""
    }`;
  }
  if (name === "pread" || name === "pwrite") {
    const [fd, buf, offset, target] = args as [number, ArrayBufferView, number, string?];
    return `${name}(${fd}, <${buf.byteLength} bytes>, ${show(offset)})${target ? ` /* ${target} */` : ""}`;
  }
  return `${name}(${args.map(show).join(", ")})`;
}

const names = new Map<number, string[]>();
const structs = new Map<string, StructDef | null>();

/**
 * The ioctl's C name: the `VFIO_*`/`IOMMU_*` constants of the registry with VFIO's type byte (`;`) and this number.
 * Numbers repeat across fd kinds (`VFIO_IOMMU_MAP_DMA` on a container is `VFIO_DEVICE_PCI_HOT_RESET` on a
 * device), so the caller's own label decides when it names one of them; else all are shown, `A|B`.
 */
function ioctlName(request: number, target?: string): string {
  if (names.size === 0) {
    for (const c of ABI_CONSTANTS) {
      if ((c.value >>> 8) !== 0x3b || !/^(VFIO|IOMMU)_/.test(c.name)) continue;
      names.set(c.value, [...(names.get(c.value) ?? []), c.name]);
    }
  }
  const known = names.get(request);
  if (!known) return hex(request);
  const label = target?.split(" ")[0];
  return label && known.includes(label) ? label : known.join("|");
}

const stem = (w: string): string => w.replace(/s$/, "");

/**
 * The registry struct an ioctl's argument is: the one whose C name shares the most words with the ioctl's name,
 * preferring one whose size is the argument's leading `argsz`/`size` (or, with a trailing array, below it).
 */
function structFor(request: string, length: number, argsz: number): StructDef | null {
  const key = `${request}:${length}:${argsz}`;
  if (structs.has(key)) return structs.get(key)!;
  const words = new Set(request.toLowerCase().split(/[_|]/).map(stem));
  let best: StructDef | null = null;
  let score = 1; // more than the shared prefix (vfio/iommu)
  for (const { def } of ABI_STRUCTS) {
    if (def.size > length) continue;
    const parts = def.cName.split("_").map(stem);
    const hasTail = def.fields.some((f) => f.kind === "tail");
    const fits = def.size === argsz ? 0.5 : hasTail && def.size < argsz ? 0.25 : 0;
    const n = parts.filter((w) => words.has(w)).length + fits - (parts.length - 1) * 0.01;
    if (n > score) [best, score] = [def, n];
  }
  structs.set(key, best);
  return best;
}

function argument(arg: unknown, request: string): string {
  if (arg === null || arg === undefined) return "NULL";
  if (!(arg instanceof Uint8Array)) {
    return ArrayBuffer.isView(arg) ? `[${Array.from(arg as unknown as ArrayLike<unknown>).join(", ")}]` : show(arg);
  }
  // A NUL-terminated name as the whole argument (VFIO_GROUP_GET_DEVICE_FD).
  const nul = arg.indexOf(0);
  if (nul > 0 && nul === arg.byteLength - 1 && arg.subarray(0, nul).every((b) => b >= 0x20 && b < 0x7f)) {
    return JSON.stringify(new TextDecoder().decode(arg.subarray(0, nul)));
  }
  const argsz = arg.byteLength >= 4 ? new DataView(arg.buffer, arg.byteOffset, 4).getUint32(0, true) : 0;
  const def = structFor(request, arg.byteLength, argsz);
  if (!def) return `<${arg.byteLength} bytes>`;
  const view = def.view(arg) as unknown as Record<string, unknown>;
  const fields = def.fields.filter((f) => f.kind !== "bytes" && f.kind !== "tail" && f.kind !== "struct").map((f) =>
    `${f.name}=${field(f.name, view[f.name])}`
  );
  return `{${fields.join(", ")}${arg.byteLength > def.size ? ", ..." : ""}}`;
}

function field(name: string, v: unknown): string {
  const asHex = name.includes("flags") || name.includes("cap");
  if (typeof v === "bigint") return asHex || v > 4096n ? hex(v) : String(v);
  if (typeof v === "number") return asHex || v > 4096 ? hex(v) : String(v);
  return String(v);
}

const ACCESSES = ["read8", "read16", "read32", "read64", "write8", "write16", "write32", "write64"] as const;

/**
 * `region` seen through a proxy that logs each register access (name, offset, width, value) and passes it on.
 * `Device.region()` returns one when {@linkcode mmioTraced}; the untraced `Region` is not touched.
 *
 * ```ts ignore
 * const bar0 = tracedRegion(dev.bar(0));
 * bar0.read32(0); // [vfio-ts] mmio 0000:00:03.0 BAR0 read32 0x0 = 0x10000ed
 * ```
 */
export function tracedRegion(region: Region): Region {
  const what = `${region.toJSON().device} ${region.name}`;
  const wrapped = new Map<PropertyKey, Fn>();
  for (const op of ACCESSES) {
    const fn = region[op] as Fn;
    const write = op.startsWith("write");
    wrapped.set(op, (offset: number, value?: number | bigint): unknown => {
      const r = fn.call(region, offset, value);
      const at = hex(offset >>> 0 === offset ? offset : Number(offset));
      log(`mmio ${what} ${op} ${at} ${write ? `<- ${hexValue(value)}` : `= ${hexValue(r)}`}`);
      return r;
    });
  }
  wrapped.set("window", (offset: number, length: number) => tracedRegion(region.window(offset, length)));
  return new Proxy(region, {
    get(target, key): unknown {
      const w = wrapped.get(key);
      if (w) return w;
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function hexValue(v: unknown): string {
  return typeof v === "number" || typeof v === "bigint" ? hex(v) : String(v);
}

/**
 * Reads `VFIO_TS_TRACE` (`1`/`ioctl`/`syscalls`, or `mmio`; empty or `0`: off) and `VFIO_TS_TRACE_FILE`.
 *
 * ```ts
 * import { traceFromEnvironment } from "./trace.ts";
 * traceFromEnvironment({ VFIO_TS_TRACE: "0" }); // off
 * ```
 */
export function traceFromEnvironment(env: Record<string, string | undefined> | null = readableEnv()): void {
  const v = env?.VFIO_TS_TRACE;
  if (v === undefined || v === "" || v === "0") return;
  if (!["1", "ioctl", "syscalls", "mmio"].includes(v)) {
    throw new VfioError(`VFIO_TS_TRACE=${v} is not a trace level`, {
      remedy: "use VFIO_TS_TRACE=1 (system calls) or VFIO_TS_TRACE=mmio (and register accesses)",
    });
  }
  enableTrace({ mmio: v === "mmio", file: env?.VFIO_TS_TRACE_FILE || undefined });
}

/** The environment, if reading it needs no permission prompt (Deno without `--allow-env`: none, trace off). */
function readableEnv(): Record<string, string | undefined> | null {
  const deno = (globalThis as { Deno?: { permissions: { querySync(d: object): { state: string } } } }).Deno;
  if (deno && deno.permissions.querySync({ name: "env", variable: "VFIO_TS_TRACE" }).state !== "granted") return null;
  return process.env;
}

traceFromEnvironment();
