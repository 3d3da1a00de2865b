/**
 * Repetitions sorted by where the host put this guest's two vCPUs. The host of this KVM guest moves them between a
 * placement where a cache line's round trip between the two CPUs is about 50 ns ("near") and one where it is about
 * 300 ns ("far"). Figures that hand cache lines between the CPUs (P2's device thread and driver) follow it: C at batch
 * 32 costs about 17 against 57 ns/packet. A benchmark probes the round trip before and after each repetition
 * (`core_rt_ns` of `bench/c/bench_device.c`), redoes a repetition whose probes disagree or that ran in the other
 * placement, and says which placement its figures are from; every probe and every discarded repetition stays in its
 * JSON. (The scaling benchmark does not use it: the probe did not tell its good repetitions from its bad ones.)
 *
 * @module
 */

/** "near": round trip ≤ the threshold; "far": above it; "any": not sorted. */
export type Placement = "near" | "far" | "any";

/** One repetition: its probes (before, after), its placement ("unstable" when they disagree), its sample. */
export interface PlacedRepetition<T> {
  core_rt_ns: [number, number];
  placement: string;
  sample: T;
}

/** What {@linkcode repeatInPlacement} returns: the placement its kept repetitions ran in, and the rest. */
export interface PlacedRun<T> {
  placement: string;
  kept: PlacedRepetition<T>[];
  discarded: PlacedRepetition<T>[];
}

/** The wanted placement from an environment variable's value (undefined: `fallback`); throws on anything else. */
export function wantedPlacement(value: string | undefined, fallback: Placement, name: string): Placement {
  const want = value ?? fallback;
  if (want !== "near" && want !== "far" && want !== "any") throw new Error(`${name}=${want}: near, far or any`);
  return want;
}

/**
 * Runs `body` until `count` repetitions ran in the wanted placement, up to three times `count` in all. `probe`
 * returns the CPUs' cache-line round trip in ns (0 with one CPU: every repetition is "one-cpu" then). When fewer
 * than three wanted ones came, the placement with the most repetitions is kept instead, and `placement` says so.
 */
export async function repeatInPlacement<T>(
  options: { want: Placement; count: number; nearNs: number; probe: () => number },
  body: (repetition: number) => T | Promise<T>,
): Promise<PlacedRun<T>> {
  const { want, count: wanted, nearNs, probe } = options;
  const placementOf = (rt: number): string =>
    rt === 0 ? "one-cpu" : want === "any" ? "any" : rt <= nearNs ? "near" : "far";
  const reps: PlacedRepetition<T>[] = [];
  const count = (p: string): number => reps.filter((x) => x.placement === p).length;
  for (let tries = 0; count(want) < wanted && count("one-cpu") < wanted && tries < 3 * wanted; tries++) {
    const before = probe();
    const sample = await body(tries);
    const after = probe(), p = placementOf(before);
    reps.push({ core_rt_ns: [before, after], placement: p === placementOf(after) ? p : "unstable", sample });
  }
  const places = ["one-cpu", want, "near", "far"].filter((p) => count(p) > 0);
  const placement = places.find((p) => count(p) >= Math.min(3, wanted)) ??
    places.sort((x, y) => count(y) - count(x))[0] ?? "unstable";
  return {
    placement,
    kept: reps.filter((x) => x.placement === placement),
    discarded: reps.filter((x) => x.placement !== placement),
  };
}
