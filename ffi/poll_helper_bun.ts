/**
 * The poll helper bound through `bun:ffi`. Loaded only under Bun, by a dynamic import (see `ffi/poll_helper.ts`).
 * Pointers are plain numbers; 64-bit values are bigints.
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T } from "bun:ffi";
import type { NativePollHelper, PollBase } from "./poll_helper.ts";

/** The helper's symbols with their C prototypes. */
const symbols = {
  /** uint32_t vfio_ts_poll_abi(void); */
  vfio_ts_poll_abi: { args: [], returns: T.u32 },
  /** uint32_t vfio_ts_spin32(const volatile void *base, uint32_t limit, uint32_t offset, uint32_t mask, uint32_t want, uint32_t max); */
  vfio_ts_spin32: { args: [T.ptr, T.u32, T.u32, T.u32, T.u32, T.u32], returns: T.u32 },
  /** uint64_t vfio_ts_spin64(const volatile void *base, uint32_t limit, uint32_t offset, uint64_t mask, uint64_t want, uint32_t max); */
  vfio_ts_spin64: { args: [T.ptr, T.u32, T.u32, T.u64, T.u64, T.u32], returns: T.u64 },
  /** uint32_t vfio_ts_ring_ready(base, limit, stride, status_offset, ring_size, head, mask, want, budget, max_spins); */
  vfio_ts_ring_ready: {
    args: [T.ptr, T.u32, T.u32, T.u32, T.u32, T.u32, T.u32, T.u32, T.u32, T.u32],
    returns: T.u32,
  },
  /** void vfio_ts_io_wmb(void); */
  vfio_ts_io_wmb: { args: [], returns: T.void },
  /** uint32_t vfio_ts_rx_refill(volatile void *base, uint32_t limit, uint32_t state, uint32_t budget); */
  vfio_ts_rx_refill: { args: [T.ptr, T.u32, T.u32, T.u32], returns: T.u32 },
  /** uint32_t vfio_ts_tx_post(volatile void *base, uint32_t limit, uint32_t state, uint32_t first, uint32_t n); */
  vfio_ts_tx_post: { args: [T.ptr, T.u32, T.u32, T.u32, T.u32], returns: T.u32 },
};

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/**
 * Opens the shared object at `path` and binds the helper, refusing a build whose ABI is not `abi` (passed in, not
 * imported: `poll_helper.ts` imports this module while it is still loading).
 */
export function bind(path: string, abi: number): NativePollHelper {
  const lib = dlopen(path, symbols);
  const s = lib.symbols as Record<keyof typeof symbols, Fn>;
  const found = s.vfio_ts_poll_abi();
  if (found !== abi) {
    lib.close();
    throw new Error(`helper ABI ${found}, this vfio-ts expects ${abi} (rebuild: deno task build:helper)`);
  }
  const spin32 = s.vfio_ts_spin32, spin64 = s.vfio_ts_spin64, ring = s.vfio_ts_ring_ready;
  return {
    base: (address: bigint) => Number(address) as PollBase,
    spin32: (base, limit, offset, mask, want, maxSpins) => spin32(base, limit, offset, mask, want, maxSpins),
    spin64: (base, limit, offset, mask, want, maxSpins) => BigInt(spin64(base, limit, offset, mask, want, maxSpins)),
    ringReady: (base, limit, stride, statusOffset, ringSize, head, mask, want, budget, maxSpins) =>
      ring(base, limit, stride, statusOffset, ringSize, head, mask, want, budget, maxSpins),
    ioWmb: () => s.vfio_ts_io_wmb(),
    rxRefill: s.vfio_ts_rx_refill,
    txPost: s.vfio_ts_tx_post,
  };
}
