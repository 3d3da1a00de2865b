/**
 * The statistics every benchmark figure uses: quartiles of a sample, and the median with its interquartile range
 * of **paired per-repetition ratios** (variant_r / baseline_r, both measured in the same repetition r, so load that
 * hits one repetition hits both sides of its ratio).
 *
 * @module
 */

/** A sample summarised: median, lower and upper quartile (linear interpolation), mean, count. */
export interface Summary {
  median: number;
  q1: number;
  q3: number;
  mean: number;
  n: number;
}

/** The q-quantile (0..1) of an ascending-sorted array, linearly interpolated. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q, lo = Math.floor(at), hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/** Median, quartiles and mean of `xs`. */
export function summary(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { median: quantile(s, 0.5), q1: quantile(s, 0.25), q3: quantile(s, 0.75), mean, n: s.length };
}

/** The summary of the paired ratios xs[r] / base[r]. */
export function pairedRatio(xs: readonly number[], base: readonly number[]): Summary {
  return summary(xs.map((x, r) => x / base[r]));
}

/** Rounds every number of a JSON-able value to `digits` decimals (for logs and stable `--json` output). */
export function rounded<T>(value: T, digits = 3): T {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "number" ? +v.toFixed(digits) : v)));
}

/** Latency figures of P3 (µs samples): p50, p90, p99 (the sample at that rank) and the mean; zeros when empty. */
export function latencyStats(
  lat: readonly number[],
): { p50_us: number; p90_us: number; p99_us: number; mean_us: number } {
  if (lat.length === 0) return { p50_us: 0, p90_us: 0, p99_us: 0, mean_us: 0 };
  const s = summary(lat), sorted = [...lat].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { p50_us: s.median, p90_us: at(0.9), p99_us: at(0.99), mean_us: s.mean };
}
