/**
 * The busy-poll C helper (`ffi/poll_helper.c`), **loaded on first use** from the object embedded in
 * `ffi/poll_helper_blob.ts` (linux-x86_64, linux-aarch64): its bytes are written to a `memfd_create` file and
 * `dlopen`ed as `/proc/self/fd/N`, so it needs no file next to this module and works however the library was
 * imported (`file:`, `https:`, JSR, npm). Address-level and **unsafe**: it reads whatever memory it is given.
 * Library code uses it through `lib/poll.ts` (`Poller`, `spinUntil`), which validates every address and falls back
 * to an `Atomics.load` loop when the helper is unavailable.
 *
 * Importing this module loads nothing and needs no permission. `VFIO_TS_POLL_HELPER=off` disables the helper (pure
 * TypeScript everywhere); it is read at first use, and under Deno only when env access to it is granted (without
 * it the variable is not read: no permission prompt). No other value is accepted: the library never loads a shared
 * object named by the environment (that would run the object's constructors in every process that imports
 * vfio-ts). To try another build of the helper, rebuild the embedded one: `bash tools/build-helper.sh`.
 *
 * ```ts
 * import { pollHelper } from "./poll_helper.ts";
 * const helper = pollHelper();
 * if (helper.native) console.log("C poll helper:", helper.source);
 * else console.log("pure TypeScript polling:", helper.reason);
 * ```
 *
 * @module
 */
import process from "node:process";
import { SystemError, UnsupportedError } from "../lib/errors.ts";
import { MFD_CLOEXEC, MFD_EXEC } from "./constants.ts";
import { libc } from "./libc.ts";
import { POLL_HELPER_OBJECTS } from "./poll_helper_blob.ts";
import { bind as bindDeno } from "./poll_helper_deno.ts";

/** The helper ABI version this loader speaks (`vfio_ts_poll_abi()` in the C source). */
export const POLL_HELPER_ABI = 3;

/** What `ringReady`, `rxRefill` and `txPost` return for arguments the C helper refuses (it then reads nothing). */
export const POLL_HELPER_REFUSED = 0xffffffff;

/** What `rxRefill` ORs into its count when it stopped at a frame without end-of-packet. */
export const RX_NOT_EOP = 0x80000000;

/** An address prepared for the helper (a cached pointer object under Deno, a number under Bun). Opaque. */
export type PollBase = { readonly __pollBase: unique symbol } | number;

/**
 * The bound helper functions. Every call is **unsafe**: each is told the length of the mapping at `base` (`limit`)
 * and the C code reads nothing outside it (a refused spin returns 0, a refused ring `POLL_HELPER_REFUSED`), but
 * nothing can check that those `limit` bytes are mapped. Validate before calling (`lib/poll.ts` does). Every number
 * is passed as a C `uint32_t`: callers pass integers in range, or the FFI wraps them.
 */
export interface NativePollHelper {
  /** Prepares `address` for the calls below; make it once per mapping (it allocates under Deno). */
  base(address: bigint): PollBase;
  /** Reads the u32 at base + offset until `(v & mask) === want` or `maxSpins` reads; returns the last value. */
  spin32(base: PollBase, limit: number, offset: number, mask: number, want: number, maxSpins: number): number;
  /** The same on a u64 (one 8-byte load per read). */
  spin64(base: PollBase, limit: number, offset: number, mask: bigint, want: bigint, maxSpins: number): bigint;
  /**
   * Spins on descriptor `head` of a ring (status u32 at `base + statusOffset + i * stride`) until done, then
   * counts consecutive done descriptors (wrapping at `ringSize`, at most `budget`); 0 if none within `maxSpins`.
   */
  ringReady(
    base: PollBase,
    limit: number,
    stride: number,
    statusOffset: number,
    ringSize: number,
    head: number,
    mask: number,
    want: number,
    budget: number,
    maxSpins: number,
  ): number;
  /** Orders earlier stores before later ones (descriptors before a doorbell); a no-op on x86-64. */
  ioWmb(): void;
  /**
   * A prepared NIC queue's RX step on the queue block at `base + state` (see `lib/poll.ts`, `Poller.queue`):
   * takes up to `budget` received frames and re-arms their slots; returns the count (`| RX_NOT_EOP` when it
   * stopped at a frame without end-of-packet), or `POLL_HELPER_REFUSED` for a block that does not fit.
   */
  rxRefill(base: PollBase, limit: number, state: number, budget: number): number;
  /**
   * The TX step: frees whole cleaned groups, queues frames `first .. first + n` of the frame list and frees those
   * that did not fit; returns how many it queued, or `POLL_HELPER_REFUSED`.
   */
  txPost(base: PollBase, limit: number, state: number, first: number, n: number): number;
}

/** The helper as loaded (or not) in this process. */
export interface PollHelper {
  /** True when the C helper is loaded. */
  readonly native: boolean;
  /** Which object was loaded or looked for (e.g. `embedded linux-x86_64 object, 4864 bytes`). */
  readonly source: string;
  /** Why the helper is not loaded (null when it is). */
  readonly reason: string | null;
  /** The bound functions, or null. */
  readonly functions: NativePollHelper | null;
}

/** One embedded object: its size and its non-zero stretches (byte offset, base64), zeros elsewhere. */
export interface EmbeddedObject {
  /** The object's size in bytes. */
  readonly size: number;
  /** `[offset, base64]` stretches; the bytes between them are zero. */
  readonly parts: readonly (readonly [number, string])[];
}

/** The embedded objects' names, by Node-style (`process.arch`) and kernel-style architecture names. */
const ARCHES: Readonly<Record<string, string>> = {
  x64: "linux-x86_64",
  x86_64: "linux-x86_64",
  arm64: "linux-aarch64",
  aarch64: "linux-aarch64",
};

/**
 * The bytes of the embedded helper object for an architecture (`process.arch` or kernel name), or null when none
 * is embedded for it. The unit test compares them with a fresh build; the start-up benchmark's C baseline loads
 * them from a file.
 *
 * ```ts
 * import { embeddedHelper } from "./poll_helper.ts";
 * console.log(embeddedHelper("x86_64")?.length);
 * ```
 */
export function embeddedHelper(arch: string = process.arch): Uint8Array | null {
  const blob = POLL_HELPER_OBJECTS[ARCHES[arch] ?? `linux-${arch}`];
  if (!blob) return null;
  const bytes = new Uint8Array(blob.size);
  for (const [at, text] of blob.parts) {
    const raw = atob(text);
    for (let i = 0; i < raw.length; i++) bytes[at + i] = raw.charCodeAt(i);
  }
  return bytes;
}

/**
 * The Bun binding's module, under Bun only (its static `bun:ffi` import would break Deno); importing it opens
 * nothing.
 */
const bunBinding: { bind(path: string, abi: number): NativePollHelper } | undefined = "Bun" in globalThis
  ? await import("./poll_helper_bun.ts")
  : undefined;

const SETTING = "VFIO_TS_POLL_HELPER";

/** `VFIO_TS_POLL_HELPER`, when it may be read without asking for a permission. */
function setting(): string {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno && deno.permissions.querySync({ name: "env", variable: SETTING }).state !== "granted") return "";
  return process.env[SETTING] ?? "";
}

/** Creates an executable memfd (`MFD_EXEC` where the kernel knows it, so `vm.memfd_noexec=1` does not seal it). */
function memfd(name: string): number {
  try {
    return libc.memfdCreate(name, MFD_CLOEXEC | MFD_EXEC);
  } catch (e) {
    if (e instanceof SystemError && e.code === "EINVAL") return libc.memfdCreate(name, MFD_CLOEXEC); // before 6.3
    if (e instanceof SystemError && e.code === "EACCES") {
      throw new UnsupportedError("this system forbids executable memfds (sysctl vm.memfd_noexec = 2)", {
        remedy: "polling runs in pure TypeScript; vm.memfd_noexec 0 or 1 allows the C helper",
      });
    }
    throw e;
  }
}

/** Writes the object to a memfd and binds it through `/proc/self/fd/N`; the memfd is closed either way. */
function bindEmbedded(bytes: Uint8Array): NativePollHelper {
  const fd = memfd("vfio-ts-poll-helper");
  try {
    for (let done = 0; done < bytes.length;) {
      const n = libc.write(fd, bytes.subarray(done), "the poll helper memfd");
      if (n <= 0) throw new Error(`short write to the poll helper memfd (${done} of ${bytes.length} bytes)`);
      done += n;
    }
    const path = `/proc/self/fd/${fd}`;
    return bunBinding ? bunBinding.bind(path, POLL_HELPER_ABI) : bindDeno(path, POLL_HELPER_ABI);
  } finally {
    libc.close(fd, "the poll helper memfd");
  }
}

function load(): PollHelper {
  const value = setting();
  const name = ARCHES[process.arch] ?? `linux-${process.arch}`;
  const source = `embedded ${name} object`;
  const off = (reason: string): PollHelper => ({ native: false, source, reason, functions: null });
  if (value === "off") return off(`disabled by ${SETTING}=off`);
  if (value !== "") return off(`${SETTING}=${value} is not supported: only "off" (no other object is ever loaded)`);
  const bytes = process.platform === "linux" ? embeddedHelper() : null;
  if (!bytes) return off(`no embedded helper for ${process.platform}/${process.arch} (x86_64 and aarch64 Linux)`);
  try {
    const functions = bindEmbedded(bytes);
    return { native: true, source: `${source}, ${bytes.length} bytes`, reason: null, functions };
  } catch (e) {
    return off(`cannot load the ${source}: ${(e as Error).message}`);
  }
}

let loaded: PollHelper | undefined;

/**
 * The process-wide helper, loaded by the first call (later calls return the same answer).
 *
 * ```ts
 * import { pollHelper } from "./poll_helper.ts";
 * console.log(pollHelper().native);
 * ```
 */
export function pollHelper(): PollHelper {
  return loaded ??= load();
}

/**
 * The bound helper, or an `UnsupportedError` saying why it is missing.
 *
 * ```ts
 * import { requirePollHelper } from "./poll_helper.ts";
 * const c = requirePollHelper();
 * ```
 */
export function requirePollHelper(): NativePollHelper {
  const helper = pollHelper();
  if (helper.functions) return helper.functions;
  throw new UnsupportedError(`the C poll helper is not loaded: ${helper.reason}`, {
    remedy: "unset VFIO_TS_POLL_HELPER, grant FFI access, or poll in pure TypeScript ({ native: false })",
  });
}
