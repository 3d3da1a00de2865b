/**
 * The host figures of the benchmark suite, for the runtime running it, each beside its C baseline measured in the
 * same process on the same memory: P1 register access, P2 packet forwarding over a memory-simulated NIC, P4
 * address translation. Prints a readable report on stderr and one `RESULT {json}` line on stdout
 * (`bench/all.ts` runs it on both runtimes and prints the table). P1 and P4 keep the best of `BENCH_REPEAT` runs
 * (nanosecond loops: noise only adds time); P2 runs its variants interleaved `BENCH_P2_REPEAT` times (15) over
 * `BENCH_PACKETS` packets (2 M) each and keeps every sample, summarised as medians of paired per-repetition ratios;
 * each P2 repetition is bracketed by a probe of the CPUs' cache-line round trip, and only repetitions with the
 * wanted CPU placement count (see P2 below; `BENCH_P2_PLACEMENT=any` turns that off).
 *
 * Run: `deno run -A bench/host.ts`, `bun bench/host.ts` (or everything: `deno task bench`).
 *
 * @module
 */
import process from "node:process";
import { MFD_CLOEXEC } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { pollHelper } from "../ffi/poll_helper.ts";
import { DmaMemory } from "../lib/dma/memory.ts";
import { NoiommuMapper } from "../lib/iommu/noiommu.ts";
import { Poller } from "../lib/poll.ts";
import { openMemfdRegion } from "../tests/unit/memfd_region.ts";
import { forwardIxyJs } from "./ixyjs.ts";
import { loadBenchNative } from "./native.ts";
import { forward, forwardQueue, QUEUE, SimNic } from "./nic_sim.ts";
import { repeatInPlacement, wantedPlacement } from "./placement.ts";
import { pairedRatio, rounded, summary } from "./stats.ts";

const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const log = (s: string): void => void process.stderr.write(s + "\n");
const best = (f: () => number, k = REPEAT): number => Math.min(...Array.from({ length: k }, f));
/** ns per iteration of `body` over n iterations, best of REPEAT. */
const perOp = (n: number, body: (n: number) => number): number =>
  best(() => {
    const t0 = performance.now();
    sink += body(n);
    return ((performance.now() - t0) * 1e6) / n;
  });
let sink = 0;

const c = await loadBenchNative();
const result: Record<string, unknown> = { runtime: libc.runtime, helper: pollHelper().native };

// ---------------------------------------------------------------- P1: register access on an mmapped memfd
{
  const fd = libc.memfdCreate("vfio-ts-bench-p1", MFD_CLOEXEC);
  libc.ftruncate(fd, 0x10000);
  const bar = openMemfdRegion({ fd, name: "memfd" }, 0x10000);
  const u32 = new Uint32Array(bar.unsafeArrayBuffer);
  const N = 20_000_000;
  const readApi = (n: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) s += bar.read32((i & 63) << 2);
    return s;
  };
  const writeApi = (n: number): number => {
    for (let i = 0; i < n; i++) bar.write32((i & 63) << 2, i);
    return 0;
  };
  const readRaw = (n: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) s += u32[i & 63];
    return s;
  };
  const readAtomics = (n: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) s += Atomics.load(u32, i & 63);
    return s;
  };
  const writeRaw = (n: number): number => {
    for (let i = 0; i < n; i++) u32[i & 63] = i;
    return 0;
  };
  const p1 = {
    read_api: perOp(N, readApi),
    read_atomics: perOp(N, readAtomics),
    read_raw: perOp(N, readRaw),
    read_c: best(() => c.readNs(bar.unsafeAddress, N)),
    write_api: perOp(N, writeApi),
    write_raw: perOp(N, writeRaw),
    write_c: best(() => c.writeNs(bar.unsafeAddress, N)),
  };
  log(`P1 ${libc.runtime}: ${JSON.stringify(p1, (_, v) => typeof v === "number" ? +v.toFixed(2) : v)}`);

  // Hoisting: a loop compiled while the bit is set, then left spinning while a C thread sets it 20 ms later.
  const spinApi = (off: number, max: number): number => {
    let n = 0;
    while ((bar.read32(off) & 1) === 0 && n < max) n++;
    return n;
  };
  const spinRaw = (i: number, max: number): number => {
    let n = 0;
    while ((u32[i] & 1) === 0 && n < max) n++;
    return n;
  };
  const poller = new Poller(bar);
  const seen = (name: string, off: number, spin: (max: number) => boolean): string => {
    bar.write32(off, 1);
    for (let k = 0; k < 200_000; k++) spin(10); // optimise it first
    bar.write32(off, 0);
    c.startDelayedWriter(bar.unsafeAddress + BigInt(off), 1, 20_000);
    const t0 = performance.now();
    const ok = spin(400_000_000);
    const ms = performance.now() - t0;
    const r = ok ? `seen after ${ms.toFixed(1)} ms` : `NOT seen in ${ms.toFixed(0)} ms (load hoisted)`;
    log(`P1 ${libc.runtime} hoisting, ${name}: ${r}`);
    while ((Atomics.load(u32, off >> 2) & 1) === 0) { /* let the writer finish before the next case */ }
    return r;
  };
  const hoisting = {
    read_api: seen("Region.read32", 0x1000, (max) => spinApi(0x1000, max) < max),
    poller: seen("Poller.spin32 (C helper)", 0x1040, (max) => (poller.spin32(0x1040, 1, 1, max) & 1) === 1),
    read_raw: seen("raw Uint32Array", 0x1080, (max) => spinRaw(0x1080 >> 2, max) < max),
  };
  result.p1 = { ...p1, hoisting };
  bar.close();
  libc.close(fd);
}

// ---------------------------------------------------------------- P2: packet forwarding
{
  const nic = new SimNic(c);
  const PACKETS = Number(process.env.BENCH_PACKETS ?? 2_000_000);
  const P2_REPEAT = Number(process.env.BENCH_P2_REPEAT ?? 15);
  const hz = c.tscHz(100);
  const poller = new Poller(nic.region);
  const variants: Record<string, (batch: number, n: number) => number> = {
    c: (batch, n) => c.forward(nic.address, batch, n),
    helper: (batch, n) => {
      nic.reset(false); // the queue writes the RX descriptors: not while the device runs, nor after it moved RDH
      const q = poller.queue(QUEUE);
      nic.start();
      return forwardQueue(nic, q, batch, n, c.threadCpuNs);
    },
    ts: (batch, n) => forward(nic, batch, n, c.threadCpuNs),
    ixyjs: (batch, n) => forwardIxyJs(nic, batch, n, c.threadCpuNs),
  };
  const run = (f: (batch: number, n: number) => number, batch: number, n: number): number => {
    nic.reset();
    try {
      return f(batch, n) / n;
    } finally {
      nic.stop();
    }
  };
  // The device thread and the driver exchange every descriptor and frame line, so every variant's cost follows the
  // round trip of a cache line between the two CPUs, which the host of this KVM guest changes under us
  // (`bench/placement.ts`; C at batch 32: 17 against 57 ns/packet, in any process, C alone included). Counted are
  // the repetitions in the wanted placement (`BENCH_P2_PLACEMENT`: "near" by default, "far", or "any"; near means a
  // round trip ≤ `BENCH_NEAR_NS`), and the row says which placement its figures are from (`placement`).
  const want = wantedPlacement(process.env.BENCH_P2_PLACEMENT, "near", "BENCH_P2_PLACEMENT");
  const nearNs = Number(process.env.BENCH_NEAR_NS ?? 150);
  const batches: Record<string, Record<string, unknown>> = {};
  for (const batch of (process.env.BENCH_BATCHES ?? "1,8,32,128,256").split(",").map(Number)) {
    for (const f of Object.values(variants)) run(f, batch, Math.max(PACKETS / 10, 100_000)); // warm up (JIT tiers)
    const placed = await repeatInPlacement(
      { want, count: P2_REPEAT, nearNs, probe: () => c.coreRoundTripNs(50) },
      () => {
        const rep: Record<string, number> = {};
        // interleaved, so load on the machine hits every variant alike
        for (const [name, f] of Object.entries(variants)) rep[name] = run(f, batch, PACKETS);
        return rep;
      },
    );
    const { placement, kept } = placed;
    const discarded = placed.discarded.map(({ sample, ...x }) => ({ ...x, ns: sample }));
    const ns: Record<string, number[]> = Object.fromEntries(
      Object.keys(variants).map((name) => [name, kept.map((x) => x.sample[name])]),
    );
    const probes = kept.map((x) => x.core_rt_ns);
    const row: Record<string, unknown> = {};
    for (const name of Object.keys(variants)) {
      const t = summary(ns[name]);
      row[name] = {
        ns: t,
        cycles: hz ? t.median * hz / 1e9 : null,
        mpps: 1000 / t.median,
        ratio_to_c: pairedRatio(ns[name], ns.c),
        delta_cycles: hz ? summary(ns[name].map((x, r) => (x - ns.c[r]) * hz / 1e9)) : null,
        samples_ns: ns[name],
      };
    }
    row.ixyjs_over_helper = pairedRatio(ns.ixyjs, ns.helper);
    row.ixyjs_over_ts = pairedRatio(ns.ixyjs, ns.ts);
    row.placement = placement;
    row.core_rt_ns = probes;
    row.discarded = discarded;
    batches[batch] = row;
    const brief = Object.fromEntries(
      Object.keys(variants).map((k) => [k, `${summary(ns[k]).median.toFixed(1)} ns`]),
    );
    log(
      `P2 ${libc.runtime} batch ${batch} (${row.placement}, ${discarded.length} redone): ${
        JSON.stringify(brief)
      }, helper/C ${pairedRatio(ns.helper, ns.c).median.toFixed(2)}× (q3 ${
        pairedRatio(ns.helper, ns.c).q3.toFixed(2)
      }), ixyjs/helper ${pairedRatio(ns.ixyjs, ns.helper).median.toFixed(1)}×`,
    );
  }
  result.p2 = { packets: PACKETS, repeats: P2_REPEAT, tsc_hz: hz, placement: want, near_ns: nearNs, batches };
  nic.close();
}

// ---------------------------------------------------------------- P4: no-IOMMU address translation
// What drivers do: translate a buffer's pages once (at map time), then look a bus address up per buffer. The
// library's `busAddress` against the same table lookup in C, and the one-time translation per MiB on both sides
// (for scale: one pagemap `pread` per lookup, what DPDK's `rte_mem_virt2phy` does per call).
if (libc.geteuid() === 0) {
  const MIB = 1 << 20;
  using mem = DmaMemory.alloc(MIB, { hugepages: "never" });
  using mapper = new NoiommuMapper();
  const mapNs = best(() => {
    const t0 = performance.now();
    mapper.map(mem.vaddr, mem.size).unmap();
    return (performance.now() - t0) * 1e6;
  });
  const m = mapper.map(mem.vaddr, mem.size);
  let x = 0n;
  const lookup = perOp(1_000_000, (n) => {
    for (let i = 0; i < n; i++) x ^= m.busAddress((i * 2056) & 0xfffff);
    return 0;
  });
  const buildC = best(() => c.tableBuildNs(mem.vaddr, MIB));
  const lookupC = best(() => c.tableLookupNs(MIB, 1_000_000));
  const preadC = best(() => c.pagemapNs(mem.vaddr, MIB, 20_000));
  result.p4 = {
    lookup,
    lookup_c: lookupC,
    map_ms_per_mib: mapNs / 1e6,
    map_c_ms_per_mib: buildC / 1e6,
    pread_c: preadC,
  };
  log(`P4 ${libc.runtime}: ${JSON.stringify(rounded(result.p4))}`);
  if (x === -1n) log("");
} else {
  log("P4: skipped (pagemap frame numbers need root)");
}

if (sink === 0.5) log("");
console.log("RESULT " + JSON.stringify(result));
