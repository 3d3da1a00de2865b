/**
 * The poll helper bound through `Deno.dlopen`. Loaded only under Deno (see `ffi/poll_helper.ts`). Pointers are
 * passed as cached pointer objects plus a 32-bit offset (no allocation per call); 64-bit values as bigints.
 *
 * @module
 */
import type { NativePollHelper, PollBase } from "./poll_helper.ts";

/** The helper's symbols with their C prototypes. */
const symbols = {
  /** uint32_t vfio_ts_poll_abi(void); */
  vfio_ts_poll_abi: { parameters: [], result: "u32" },
  /** uint32_t vfio_ts_spin32(const volatile void *base, uint32_t limit, uint32_t offset, uint32_t mask, uint32_t want, uint32_t max); */
  vfio_ts_spin32: { parameters: ["pointer", "u32", "u32", "u32", "u32", "u32"], result: "u32" },
  /** uint64_t vfio_ts_spin64(const volatile void *base, uint32_t limit, uint32_t offset, uint64_t mask, uint64_t want, uint32_t max); */
  vfio_ts_spin64: { parameters: ["pointer", "u32", "u32", "u64", "u64", "u32"], result: "u64" },
  /** uint32_t vfio_ts_ring_ready(base, limit, stride, status_offset, ring_size, head, mask, want, budget, max_spins); */
  vfio_ts_ring_ready: {
    parameters: ["pointer", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
    result: "u32",
  },
  /** void vfio_ts_io_wmb(void); */
  vfio_ts_io_wmb: { parameters: [], result: "void" },
  /** uint32_t vfio_ts_rx_refill(volatile void *base, uint32_t limit, uint32_t state, uint32_t budget); */
  vfio_ts_rx_refill: { parameters: ["pointer", "u32", "u32", "u32"], result: "u32" },
  /** uint32_t vfio_ts_tx_post(volatile void *base, uint32_t limit, uint32_t state, uint32_t first, uint32_t n); */
  vfio_ts_tx_post: { parameters: ["pointer", "u32", "u32", "u32", "u32"], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Opens the shared object at `path` and binds the helper, refusing a build whose ABI is not `abi` (passed in, not
 * imported: `poll_helper.ts` imports this module while it is still loading).
 */
export function bind(path: string, abi: number): NativePollHelper {
  const lib = Deno.dlopen(path, symbols);
  const s = lib.symbols;
  const found = s.vfio_ts_poll_abi();
  if (found !== abi) {
    lib.close();
    throw new Error(`helper ABI ${found}, this vfio-ts expects ${abi} (rebuild: deno task build:helper)`);
  }
  type P = Deno.PointerObject;
  return {
    base: (address) => Deno.UnsafePointer.create(address) as unknown as PollBase,
    spin32: (base, limit, offset, mask, want, maxSpins) =>
      s.vfio_ts_spin32(base as unknown as P, limit, offset, mask, want, maxSpins),
    spin64: (base, limit, offset, mask, want, maxSpins) =>
      s.vfio_ts_spin64(base as unknown as P, limit, offset, mask, want, maxSpins) as bigint,
    ringReady: (base, limit, stride, statusOffset, ringSize, head, mask, want, budget, maxSpins) =>
      s.vfio_ts_ring_ready(
        base as unknown as P,
        limit,
        stride,
        statusOffset,
        ringSize,
        head,
        mask,
        want,
        budget,
        maxSpins,
      ),
    ioWmb: () => s.vfio_ts_io_wmb(),
    rxRefill: (base, limit, state, budget) => s.vfio_ts_rx_refill(base as unknown as P, limit, state, budget),
    txPost: (base, limit, state, first, n) => s.vfio_ts_tx_post(base as unknown as P, limit, state, first, n),
  };
}
